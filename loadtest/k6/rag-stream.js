// Streamed answers: POST /v1/query with stream:true and POST /v1/chat/completions with
// stream:true, checking the event order, exactly one finish_reason and the final [DONE].
//
// Each endpoint runs twice: `*_cached` cycles 12 fixed questions, so after the first round
// nearly every answer is an answer-cache replay; `*_cold` sends `cache: {mode: "bypass"}`,
// so every request embeds, searches the shards and generates. Every sample is tagged with
// the scenario and with `cache` (the x-ragway-cache header: hit, miss, coalesced, bypass),
// so a cached number is never read as a cold one.
//
// k6's http module buffers the whole body and cannot see tokens arrive. Two views of time
// to first token are recorded instead:
//   ragway_time_to_first_token_ms  ragway's own, from the request's arrival at the answer
//                                  service to the first generated delta (`timings.
//                                  time_to_first_token_ms` of the done event / final chunk)
//   ragway_time_to_first_byte_ms   the client's (http_req_waiting): headers are sent once
//                                  retrieval is done, so this is retrieval + network
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=8 -e DURATION=1m -e MODEL=ragway-extractive loadtest/k6/rag-stream.js
import { Trend } from 'k6/metrics';
import { QUESTIONS, header, parseJson, parseSse, postJson, requireSuccess, scenario, verify } from './lib.js';

const MODEL = __ENV.MODEL || 'ragway-extractive';
const timeToFirstToken = new Trend('ragway_time_to_first_token_ms', true);
const timeToFirstByte = new Trend('ragway_time_to_first_byte_ms', true);
const serverTotal = new Trend('ragway_server_total_ms', true);

const SCENARIOS = ['query_cached', 'query_cold', 'chat_cached', 'chat_cold'];

export const options = {
  scenarios: {
    query_cached: scenario('queryCached'),
    query_cold: scenario('queryCold'),
    chat_cached: scenario('chatCached'),
    chat_cold: scenario('chatCold'),
  },
  thresholds: Object.assign(
    {
      http_req_failed: ['rate<0.01'],
      checks: ['rate>0.99'],
      // Listed per scenario so the end-of-test summary prints cached and cold side by side.
      'ragway_time_to_first_token_ms{scenario:query_cached}': ['p(95)<1000'],
      'ragway_time_to_first_token_ms{scenario:query_cold}': ['p(95)<1000'],
      'ragway_time_to_first_token_ms{scenario:chat_cached}': ['p(95)<1000'],
      'ragway_time_to_first_token_ms{scenario:chat_cold}': ['p(95)<1000'],
      'ragway_time_to_first_byte_ms{scenario:query_cached}': ['p(95)<1000'],
      'ragway_time_to_first_byte_ms{scenario:query_cold}': ['p(95)<1000'],
    },
    requireSuccess(SCENARIOS),
  ),
};

function question() {
  return QUESTIONS[Math.floor(Math.random() * QUESTIONS.length)];
}

/** Adds the request's timings, tagged with how the cache served it; only called for a request whose checks passed. */
function record(response, timings) {
  const tags = { cache: String(header(response, 'X-Ragway-Cache') || 'none') };
  timeToFirstByte.add(response.timings.waiting, tags);
  timeToFirstToken.add(timings.time_to_first_token_ms, tags);
  serverTotal.add(timings.total_ms, tags);
}

function query(cache) {
  const body = { query: question(), stream: true, model: MODEL };
  if (cache) body.cache = cache;
  const response = postJson('/v1/query', body, { tags: { endpoint: 'query' } });
  const frames = parseSse(response.body);
  const events = frames.map((f) => f.event);
  const done = frames.filter((f) => f.event === 'done').map((f) => parseJson(f.data))[0];
  const timings = (done && done.timings) || {};
  const passed = verify(response, {
    'status is 200': (r) => r.status === 200,
    'is an event stream': (r) => String(header(r, 'Content-Type')).startsWith('text/event-stream'),
    'sources come first': () => events[0] === 'sources',
    'ends with done, no error': () => events[events.length - 1] === 'done' && !events.includes('error'),
    'has deltas': () => events.filter((e) => e === 'delta').length > 0,
    'reports time to first token': () => typeof timings.time_to_first_token_ms === 'number' && typeof timings.total_ms === 'number',
  });
  if (passed) record(response, timings);
}

function chat(cache) {
  const body = { model: MODEL, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: question() }] };
  if (cache) body.cache = cache;
  const response = postJson('/v1/chat/completions', body, { tags: { endpoint: 'chat' } });
  const data = parseSse(response.body).map((f) => f.data);
  const chunks = data.filter((d) => d !== '[DONE]').map((d) => parseJson(d));
  const parsed = chunks.filter((c) => c !== null && typeof c === 'object');
  const finishReasons = parsed.flatMap((c) => c.choices || []).filter((c) => c.finish_reason !== null && c.finish_reason !== undefined);
  const last = parsed[parsed.length - 1];
  const final = parsed.filter((c) => c.rag && c.rag.timings)[0];
  const timings = (final && final.rag.timings) || {};
  const passed = verify(response, {
    'status is 200': (r) => r.status === 200,
    'every frame is JSON': () => parsed.length > 0 && parsed.length === chunks.length,
    '[DONE] is last': () => data[data.length - 1] === '[DONE]',
    'exactly one finish_reason': () => finishReasons.length === 1,
    'role comes first': () => parsed.length > 0 && parsed[0].choices[0].delta.role === 'assistant',
    'no error frame': () => parsed.length > 0 && parsed.every((c) => !c.error),
    'usage chunk last': () => last !== undefined && Boolean(last.usage) && Array.isArray(last.choices) && last.choices.length === 0,
    'reports time to first token': () => typeof timings.time_to_first_token_ms === 'number' && typeof timings.total_ms === 'number',
  });
  if (passed) record(response, timings);
}

const BYPASS = { mode: 'bypass' };

export function queryCached() {
  query(undefined);
}

export function queryCold() {
  query(BYPASS);
}

export function chatCached() {
  chat(undefined);
}

export function chatCold() {
  chat(BYPASS);
}
