// Search under load: a mixed query set — hot repeated questions, one-off questions and
// filtered ones — against POST /v1/search.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=32 -e DURATION=1m loadtest/k6/search.js
import { Counter } from 'k6/metrics';
import { QUESTIONS, header, jsonBody, postJson, requireSuccess, scenario, verify } from './lib.js';

const cacheHits = new Counter('ragway_cache_hits');

export const options = {
  scenarios: { search: scenario('search') },
  thresholds: Object.assign(
    {
      http_req_failed: ['rate<0.01'],
      checks: ['rate>0.99'],
      'http_req_duration{kind:hot}': ['p(95)<100'],
      'http_req_duration{kind:cold}': ['p(95)<250'],
      'http_req_duration{kind:filtered}': ['p(95)<250'],
    },
    requireSuccess(['search']),
  ),
};

export function search() {
  const roll = Math.random();
  let body;
  let kind;
  if (roll < 0.5) {
    kind = 'hot';
    body = { query: QUESTIONS[Math.floor(Math.random() * QUESTIONS.length)], k: 10 };
  } else if (roll < 0.8) {
    kind = 'cold';
    body = { query: `${QUESTIONS[Math.floor(Math.random() * QUESTIONS.length)]} ${__VU}-${__ITER}`, k: 10 };
  } else {
    kind = 'filtered';
    body = { query: QUESTIONS[Math.floor(Math.random() * QUESTIONS.length)], k: 5, filter: { package: { $in: ['lru-cache', 'fastify', 'undici'] } } };
  }
  const response = postJson('/v1/search', body, { tags: { kind } });
  if (header(response, 'X-Ragway-Cache') === 'hit') cacheHits.add(1);
  const json = jsonBody(response);
  verify(response, {
    'status is 200': (r) => r.status === 200,
    'has results and coverage': () => json !== undefined && Array.isArray(json.results) && json.coverage !== undefined && json.coverage.shards_total > 0,
    'coverage is complete': () => json !== undefined && json.coverage !== undefined && json.coverage.partial === false,
  });
}
