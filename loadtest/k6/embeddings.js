// OpenAI-compatible embeddings: batches of 1 and of 32 inputs.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=16 -e DURATION=1m -e MODEL=glove-sif-100d loadtest/k6/embeddings.js
import { QUESTIONS, jsonBody, postJson, requireSuccess, scenario, verify } from './lib.js';

const MODEL = __ENV.MODEL || 'glove-sif-100d';

export const options = {
  scenarios: {
    single: scenario('single'),
    batch32: scenario('batch32'),
  },
  thresholds: Object.assign(
    {
      http_req_failed: ['rate<0.01'],
      checks: ['rate>0.99'],
      'http_req_duration{batch:1}': ['p(95)<50'],
      'http_req_duration{batch:32}': ['p(95)<200'],
    },
    requireSuccess(['single', 'batch32']),
  ),
};

function embed(inputs, tag) {
  const response = postJson('/v1/embeddings', { model: MODEL, input: inputs, encoding_format: 'float' }, { tags: { batch: tag } });
  const body = jsonBody(response);
  verify(response, {
    'status is 200': (r) => r.status === 200,
    'one embedding per input, in order': () => {
      const data = body && body.data;
      return Array.isArray(data) && data.length === inputs.length && data.every((d, i) => d.index === i && Array.isArray(d.embedding));
    },
  });
}

export function single() {
  embed([`${QUESTIONS[__ITER % QUESTIONS.length]} ${__VU}`], '1');
}

export function batch32() {
  const inputs = [];
  for (let i = 0; i < 32; i += 1) inputs.push(`${QUESTIONS[(__ITER + i) % QUESTIONS.length]} ${__VU}-${i}`);
  embed(inputs, '32');
}
