// Writers and readers at once: one scenario ingests documents (re-ingesting some, which
// replaces them and invalidates cached results), another searches.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=16 -e DURATION=1m -e WRITERS=2 loadtest/k6/ingest-while-query.js
import { check } from 'k6';
import { DURATION, QUESTIONS, VUS, postJson } from './lib.js';

const WRITERS = parseInt(__ENV.WRITERS || '2', 10);
const NAMESPACE = __ENV.NAMESPACE || 'loadtest';

export const options = {
  scenarios: {
    writers: { executor: 'constant-vus', vus: WRITERS, duration: DURATION, exec: 'write' },
    readers: { executor: 'constant-vus', vus: VUS, duration: DURATION, exec: 'read', startTime: '2s' },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    'http_req_duration{scenario:readers}': ['p(95)<250'],
    'http_req_duration{scenario:writers}': ['p(95)<2000'],
  },
};

export function write() {
  const documents = [];
  for (let i = 0; i < 8; i += 1) {
    // Ids repeat across iterations, so some writes replace earlier documents.
    const id = `doc-${__VU}-${(__ITER * 8 + i) % 200}`;
    documents.push({ id, text: `${QUESTIONS[(__ITER + i) % QUESTIONS.length]}. Written by VU ${__VU} at iteration ${__ITER}.`, metadata: { writer: __VU } });
  }
  const response = postJson('/v1/documents', { namespace: NAMESPACE, documents });
  check(response, { 'ingest 200': (r) => r.status === 200, 'chunks written': (r) => r.json('chunks_total') >= documents.length });
}

export function read() {
  const response = postJson('/v1/search', { query: QUESTIONS[__ITER % QUESTIONS.length], namespace: NAMESPACE, k: 5 });
  // Before the first write lands the namespace does not exist yet: 404 is expected then.
  check(response, { 'search 200 (or 404 before the first write)': (r) => r.status === 200 || r.status === 404 });
}
