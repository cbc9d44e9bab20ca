// Finds the saturation point of /v1/search: the arrival rate ramps up until latency or
// errors break the thresholds (k6 then exits non-zero; the last good stage is the answer).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e START_RATE=100 -e MAX_RATE=5000 -e STAGE=30s loadtest/k6/saturation.js
import { QUESTIONS, jsonBody, postJson, requireSuccess, verify } from './lib.js';

const START = parseInt(__ENV.START_RATE || '100', 10);
const MAX = parseInt(__ENV.MAX_RATE || '3000', 10);
const STAGE = __ENV.STAGE || '30s';
const STEPS = 6;

const stages = [];
for (let i = 1; i <= STEPS; i += 1) stages.push({ target: Math.round(START + ((MAX - START) * i) / STEPS), duration: STAGE });

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-arrival-rate',
      startRate: START,
      timeUnit: '1s',
      preAllocatedVUs: 64,
      maxVUs: parseInt(__ENV.MAX_VUS || '512', 10),
      stages,
    },
  },
  thresholds: Object.assign(
    {
      http_req_failed: [{ threshold: 'rate<0.01', abortOnFail: true, delayAbortEval: '10s' }],
      http_req_duration: [{ threshold: 'p(99)<500', abortOnFail: true, delayAbortEval: '10s' }],
      dropped_iterations: ['count<1000'],
    },
    requireSuccess(['ramp']),
  ),
};

export default function () {
  const response = postJson('/v1/search', { query: `${QUESTIONS[__ITER % QUESTIONS.length]} ${__ITER % 97}`, k: 10 });
  const json = jsonBody(response);
  verify(response, {
    'status is 200': (r) => r.status === 200,
    'has results': () => json !== undefined && Array.isArray(json.results),
  });
}
