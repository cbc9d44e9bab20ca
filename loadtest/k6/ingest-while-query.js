// Writers and readers at once: one scenario ingests documents (re-ingesting some, which
// replaces them and invalidates cached results), another searches.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=16 -e DURATION=1m -e WRITERS=2 loadtest/k6/ingest-while-query.js
import http from 'k6/http';
import { DURATION, QUESTIONS, VUS, jsonBody, postJson, requireSuccess, verify } from './lib.js';

const WRITERS = parseInt(__ENV.WRITERS || '2', 10);
const NAMESPACE = __ENV.NAMESPACE || 'loadtest';
// Before the first write lands the namespace does not exist yet, so a reader's 404 is an
// expected answer: told so, k6 leaves it out of http_req_failed (and tags it
// expected_response:true), and a slow first write cannot trip `rate<0.01`.
const SEARCH_STATUSES = http.expectedStatuses(200, 404);

export const options = {
  scenarios: {
    writers: { executor: 'constant-vus', vus: WRITERS, duration: DURATION, exec: 'write' },
    readers: { executor: 'constant-vus', vus: VUS, duration: DURATION, exec: 'read', startTime: '2s' },
  },
  thresholds: Object.assign(
    {
      http_req_failed: ['rate<0.01'],
      checks: ['rate>0.99'],
      'http_req_duration{scenario:readers}': ['p(95)<250'],
      'http_req_duration{scenario:writers}': ['p(95)<2000'],
    },
    requireSuccess(['writers', 'readers']),
  ),
};

export function write() {
  const documents = [];
  for (let i = 0; i < 8; i += 1) {
    // Ids repeat across iterations, so some writes replace earlier documents.
    const id = `doc-${__VU}-${(__ITER * 8 + i) % 200}`;
    documents.push({ id, text: `${QUESTIONS[(__ITER + i) % QUESTIONS.length]}. Written by VU ${__VU} at iteration ${__ITER}.`, metadata: { writer: __VU } });
  }
  const response = postJson('/v1/documents', { namespace: NAMESPACE, documents });
  const json = jsonBody(response);
  verify(response, {
    'ingest 200': (r) => r.status === 200,
    'chunks written': () => json !== undefined && json.chunks_total >= documents.length,
  });
}

export function read() {
  const response = postJson('/v1/search', { query: QUESTIONS[__ITER % QUESTIONS.length], namespace: NAMESPACE, k: 5 }, { responseCallback: SEARCH_STATUSES });
  const json = jsonBody(response);
  // Only a 200 with results counts as a successful read: a run that never sees the
  // namespace (every write failed) must not pass on 404s alone.
  verify(
    response,
    {
      'search 200 (or 404 before the first write)': (r) => r.status === 200 || r.status === 404,
      'results on a 200': (r) => r.status === 404 || (json !== undefined && Array.isArray(json.results)),
    },
    response.status === 200,
  );
}
