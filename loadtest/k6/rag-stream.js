// Streamed answers: POST /v1/query with stream:true and POST /v1/chat/completions with
// stream:true, checking the event order, exactly one finish_reason and the final [DONE].
// k6's http module buffers the whole body, so time to first byte (http_req_waiting) is the
// closest client-side view of time-to-first-token; the server's own `first_token_ms` (from
// the `done` event of /v1/query) is recorded as a custom trend.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=8 -e DURATION=1m -e MODEL=ragway-extractive loadtest/k6/rag-stream.js
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { QUESTIONS, parseSse, postJson, scenario } from './lib.js';

const MODEL = __ENV.MODEL || 'ragway-extractive';
const serverFirstToken = new Trend('ragway_server_first_token_ms', true);
const serverTotal = new Trend('ragway_server_total_ms', true);
const timeToFirstByte = new Trend('ragway_time_to_first_byte_ms', true);

export const options = {
  scenarios: {
    query: scenario('query'),
    chat: scenario('chat'),
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    ragway_time_to_first_byte_ms: ['p(95)<1000'],
    ragway_server_first_token_ms: ['p(95)<1000'],
  },
};

function question() {
  return QUESTIONS[Math.floor(Math.random() * QUESTIONS.length)];
}

export function query() {
  const response = postJson('/v1/query', { query: question(), stream: true, model: MODEL }, { tags: { endpoint: 'query' } });
  timeToFirstByte.add(response.timings.waiting, { endpoint: 'query' });
  const frames = parseSse(response.body);
  const events = frames.map((f) => f.event);
  const done = frames.find((f) => f.event === 'done');
  if (done) {
    const timings = JSON.parse(done.data).timings || {};
    if (typeof timings.first_token_ms === 'number') serverFirstToken.add(timings.first_token_ms);
    if (typeof timings.total_ms === 'number') serverTotal.add(timings.total_ms);
  }
  check(response, {
    'status is 200': (r) => r.status === 200,
    'is an event stream': (r) => String(r.headers['Content-Type']).startsWith('text/event-stream'),
    'sources come first': () => events[0] === 'sources',
    'ends with done, no error': () => events[events.length - 1] === 'done' && !events.includes('error'),
    'has deltas': () => events.filter((e) => e === 'delta').length > 0,
  });
}

export function chat() {
  const response = postJson(
    '/v1/chat/completions',
    { model: MODEL, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: question() }] },
    { tags: { endpoint: 'chat' } },
  );
  timeToFirstByte.add(response.timings.waiting, { endpoint: 'chat' });
  const frames = parseSse(response.body);
  const data = frames.map((f) => f.data);
  const chunks = data.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
  const finishReasons = chunks.flatMap((c) => c.choices || []).filter((c) => c.finish_reason !== null && c.finish_reason !== undefined);
  check(response, {
    'status is 200': (r) => r.status === 200,
    '[DONE] is last': () => data[data.length - 1] === '[DONE]',
    'exactly one finish_reason': () => finishReasons.length === 1,
    'role comes first': () => chunks.length > 0 && chunks[0].choices[0].delta.role === 'assistant',
    'no error frame': () => chunks.every((c) => !c.error),
    'usage chunk last': () => chunks.length > 0 && chunks[chunks.length - 1].usage && chunks[chunks.length - 1].choices.length === 0,
  });
}
