// UpstreamGenerator against a real HTTP server speaking OpenAI's streaming protocol: what
// reaches the caller, when it reaches it, how every way an upstream can fail is reported, and
// that the upstream sees the connection close when the caller leaves.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { isRagwayError, type RagwayError } from '../../../../core/errors.js';
import { OPENAI_COMPATIBLE } from '../../../../gateway/providers/openai-compatible.js';
import { isTransientUpstreamError, parseRetryAfter, UpstreamError } from '../../../../gateway/providers/upstream-errors.js';
import { joinOverlapping, UpstreamGenerator, type UpstreamGeneratorOptions } from '../../../../gateway/providers/upstream-generator.js';
import type { GenerationEvent, GenerationRequest } from '../../../../gateway/providers/provider.js';
import { freePort } from '../../../../cli/free-port.js';
import { drain } from '../../../helpers/generation.js';
import { startScriptedUpstream, type ScriptedUpstream } from '../../../fixtures/scripted-upstream.js';

const REQUEST: GenerationRequest = {
  model: 'grounded',
  messages: [
    { role: 'system', content: 'Answer from the sources. [1] Lava is molten rock.' },
    { role: 'user', content: 'What is lava?' },
  ],
  question: 'What is lava?',
  sources: [],
  maxTokens: 64,
  temperature: 0.2,
  topP: 0.9,
  stop: ['\n\n'],
};

const TIMEOUTS = { connectTimeoutMs: 500, firstTokenTimeoutMs: 500, idleTimeoutMs: 500 };

function deltas(events: GenerationEvent[]): string[] {
  return events.flatMap((e) => (e.type === 'delta' ? [e.text] : []));
}

describe('UpstreamGenerator', () => {
  let upstream: ScriptedUpstream;
  const generators: UpstreamGenerator[] = [];
  const make = (options: Partial<UpstreamGeneratorOptions> = {}): UpstreamGenerator => {
    const generator = new UpstreamGenerator({ id: 'grounded', upstreamModel: 'llama-3-8b', url: upstream.url, ...TIMEOUTS, ...options });
    generators.push(generator);
    return generator;
  };

  before(async () => {
    upstream = await startScriptedUpstream();
  });
  afterEach(async () => {
    await Promise.all(generators.splice(0).map((g) => g.close()));
    upstream.resetScript();
  });
  after(async () => {
    await upstream.close();
  });

  it('streams deltas in order as the upstream sends them, then one done with usage', async () => {
    const tokens = ['Lava', ' is', ' molten', ' rock', ' [1]', '.'];
    upstream.setScript({ tokens, delayMs: 40, apiKey: 'sk-test' });
    const generator = make({ apiKey: 'sk-test' });
    const start = upstream.requests.length;
    const events: GenerationEvent[] = [];
    const receivedAt: number[] = [];
    let upstreamFinishedAtFirstDelta: number | undefined = -1;
    let tokensSentAtFirstDelta = -1;
    for await (const event of generator.stream(REQUEST, new AbortController().signal)) {
      if (event.type === 'delta') {
        receivedAt.push(performance.now());
        if (receivedAt.length === 1) {
          upstreamFinishedAtFirstDelta = upstream.requests[start]?.finishedAt;
          tokensSentAtFirstDelta = upstream.requests[start]?.tokenSentAt.length ?? -1;
        }
      }
      events.push(event);
    }
    assert.deepEqual(deltas(events), tokens);
    assert.deepEqual(events.at(-1), { type: 'done', finishReason: 'stop', usage: { prompt_tokens: 10, completion_tokens: 6, total_tokens: 16 } });
    assert.equal(events.filter((e) => e.type === 'done').length, 1);

    // The first delta was in our hands while the upstream was still generating.
    const record = upstream.requests[start];
    assert.ok(record?.finishedAt !== undefined);
    assert.equal(upstreamFinishedAtFirstDelta, undefined);
    assert.equal(tokensSentAtFirstDelta, 1);
    const firstDeltaLeadMs = record.finishedAt - (receivedAt[0] ?? Infinity);
    assert.ok(firstDeltaLeadMs > 150, `first delta only ${firstDeltaLeadMs} ms before the upstream finished`);
    // Each delta arrives right after the upstream wrote it: nothing is batched up.
    const lags = receivedAt.map((t, i) => t - (record.tokenSentAt[i] ?? 0));
    assert.ok(Math.max(...lags) < 50, `delta lags ${lags.map((l) => l.toFixed(1)).join(', ')} ms`);
    console.log(`# first delta ${firstDeltaLeadMs.toFixed(0)} ms before the upstream finished; per-delta lag ${lags.map((l) => l.toFixed(1)).join('/')} ms`);

    // What went over the wire.
    assert.equal(record.path, '/v1/chat/completions');
    assert.equal(record.headers.authorization, 'Bearer sk-test');
    assert.deepEqual(record.body, {
      model: 'llama-3-8b',
      messages: REQUEST.messages,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 64,
      temperature: 0.2,
      top_p: 0.9,
      stop: ['\n\n'],
    });
  });

  it('passes finish_reason length through, and omits usage the upstream did not send', async () => {
    upstream.setScript({ finishReason: 'length', includeUsage: false });
    const { events, error } = await drain(make().stream(REQUEST, new AbortController().signal));
    assert.equal(error, undefined);
    assert.deepEqual(events.at(-1), { type: 'done', finishReason: 'length' });
  });

  it('reuses the keep-alive connection for the next request', async () => {
    const generator = make();
    const start = upstream.requests.length;
    await drain(generator.stream(REQUEST, new AbortController().signal));
    // undici's Pool learns that a connection is free from the client's 'drain' event, emitted a
    // tick after the body ends; a request sent in that same tick would open a second connection.
    await new Promise((resolve) => setImmediate(resolve));
    await drain(generator.stream(REQUEST, new AbortController().signal));
    const [a, b] = upstream.requests.slice(start);
    assert.ok(a !== undefined && b !== undefined);
    assert.equal(a.remotePort, b.remotePort, 'the second request used a new connection: the first was not drained after [DONE]');
    assert.equal(upstream.requests.slice(start).filter((r) => r.abortedAt !== undefined).length, 0);
  });

  it('500 → UPSTREAM_UNAVAILABLE naming the upstream, transient', async () => {
    upstream.setScript({ status: 500, errorBody: { error: { message: 'CUDA out of memory', type: 'server_error' } } });
    const { events, error } = await drain(make().stream(REQUEST, new AbortController().signal));
    assert.deepEqual(events, []);
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE');
    assert.equal(error?.message, `upstream ${upstream.url} answered 500: CUDA out of memory`);
    assert.ok(isTransientUpstreamError(error));
  });

  it('429 → UPSTREAM_RATE_LIMITED with the upstream Retry-After, transient', async () => {
    upstream.setScript({ status: 429, retryAfter: 7 });
    const { error } = await drain(make().stream(REQUEST, new AbortController().signal));
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_RATE_LIMITED');
    assert.equal(error?.statusCode, 429);
    assert.equal(error?.retryAfterSeconds, 7);
    assert.ok(isTransientUpstreamError(error));
  });

  it('400 → UPSTREAM_REJECTED with the upstream message, not transient', async () => {
    const message = "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.";
    upstream.setScript({ status: 400, errorBody: { object: 'error', message, type: 'BadRequestError', code: 400 } });
    const { error } = await drain(make().stream(REQUEST, new AbortController().signal));
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_REJECTED');
    assert.ok(error?.message.includes(message), error?.message);
    assert.equal(isTransientUpstreamError(error), false);
    assert.ok(error instanceof UpstreamError && !error.transient);
  });

  it('401 → UPSTREAM_UNAVAILABLE: the upstream rejected our key (configuration, not the client)', async () => {
    upstream.setScript({ apiKey: 'right-key' });
    const { error } = await drain(make({ apiKey: 'wrong-key' }).stream(REQUEST, new AbortController().signal));
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE');
    assert.match(error?.message ?? '', /rejected ragway's API key \(HTTP 401\)/);
  });

  it('connection refused → UPSTREAM_UNAVAILABLE, transient', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const { error } = await drain(make({ url }).stream(REQUEST, new AbortController().signal));
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE');
    assert.match(error?.message ?? '', /ECONNREFUSED/);
    assert.ok(error?.message.startsWith(`upstream ${url} `));
    assert.ok(isTransientUpstreamError(error));
  });

  it('first-token timeout → UPSTREAM_TIMEOUT, transient, and the upstream sees the abort', async () => {
    upstream.setScript({ firstTokenDelayMs: 2_000 });
    const started = performance.now();
    const { events, error } = await drain(make({ firstTokenTimeoutMs: 200 }).stream(REQUEST, new AbortController().signal));
    const elapsed = performance.now() - started;
    assert.deepEqual(events, []);
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_TIMEOUT');
    assert.match(error?.message ?? '', /sent no token within 200 ms/);
    assert.ok(isTransientUpstreamError(error));
    assert.ok(elapsed >= 195 && elapsed < 400, `gave up after ${elapsed} ms`);
    await upstream.waitForAbort(500, started);
  });

  it('a dropped connection mid-stream throws after the deltas already yielded', async () => {
    upstream.setScript({ tokens: ['a', 'b', 'c', 'd'], dropAfter: 2 });
    const { events, error } = await drain(make().stream(REQUEST, new AbortController().signal));
    assert.deepEqual(deltas(events), ['a', 'b']);
    assert.equal(events.length, 2);
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE');
    assert.match(error?.message ?? '', /broke the stream after 2 deltas/);
    assert.equal(isTransientUpstreamError(error), false);
  });

  it('a stalled stream hits the idle timeout', async () => {
    upstream.setScript({ tokens: ['a', 'b', 'c', 'd'], stallAfter: 2 });
    const started = performance.now();
    const { events, error } = await drain(make({ idleTimeoutMs: 150 }).stream(REQUEST, new AbortController().signal));
    assert.deepEqual(deltas(events), ['a', 'b']);
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_TIMEOUT');
    assert.match(error?.message ?? '', /sent nothing for 150 ms after 2 deltas/);
    await upstream.waitForAbort(500, started);
  });

  it('the idle timer does not count time the consumer spends between reads', async () => {
    upstream.setScript({ tokens: ['a', 'b', 'c'] });
    const seen: string[] = [];
    for await (const event of make({ idleTimeoutMs: 100 }).stream(REQUEST, new AbortController().signal)) {
      if (event.type === 'delta') seen.push(event.text);
      await sleep(150);
    }
    assert.deepEqual(seen, ['a', 'b', 'c']);
  });

  it('a stream that ends without [DONE] or finish_reason throws, never ends silently', async () => {
    upstream.setScript({ tokens: ['a', 'b'], omitDone: true });
    const { events, error } = await drain(make().stream(REQUEST, new AbortController().signal));
    assert.deepEqual(deltas(events), ['a', 'b']);
    assert.equal(events.length, 2);
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE');
    assert.match(error?.message ?? '', /without \[DONE\]/);
  });

  it("the caller's abort mid-stream closes the upstream connection within 100 ms", async () => {
    upstream.setScript({ tokens: Array.from({ length: 50 }, (_, i) => `t${i} `), delayMs: 20 });
    const controller = new AbortController();
    const iterator = make().stream(REQUEST, controller.signal)[Symbol.asyncIterator]();
    assert.equal((await iterator.next()).value?.type, 'delta');
    assert.equal((await iterator.next()).value?.type, 'delta');
    const abortedAt = performance.now();
    controller.abort();
    const closeMs = await upstream.waitForAbort(500, abortedAt);
    await assert.rejects(iterator.next(), (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_CLIENT_CLOSED');
    assert.ok(closeMs < 100, `upstream saw the close ${closeMs} ms after the abort`);
    console.log(`# caller abort → upstream saw the close after ${closeMs.toFixed(2)} ms`);
  });

  it('an abort while waiting for the next chunk rejects that wait at once', async () => {
    upstream.setScript({ tokens: ['a', 'b'], delayMs: 5_000 });
    const controller = new AbortController();
    const iterator = make({ idleTimeoutMs: 10_000 }).stream(REQUEST, controller.signal)[Symbol.asyncIterator]();
    await iterator.next();
    const pending = iterator.next();
    const abortedAt = performance.now();
    setTimeout(() => controller.abort(), 20);
    await assert.rejects(pending, (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_CLIENT_CLOSED');
    assert.ok(performance.now() - abortedAt < 150);
    await upstream.waitForAbort(500, abortedAt);
  });

  it('breaking out of for-await closes the upstream connection', async () => {
    upstream.setScript({ tokens: Array.from({ length: 50 }, (_, i) => `t${i} `), delayMs: 20 });
    let brokeAt = 0;
    for await (const event of make().stream(REQUEST, new AbortController().signal)) {
      if (event.type === 'delta') {
        brokeAt = performance.now();
        break;
      }
    }
    const closeMs = await upstream.waitForAbort(500, brokeAt);
    assert.ok(closeMs < 100, `upstream saw the close ${closeMs} ms after the break`);
    console.log(`# break → upstream saw the close after ${closeMs.toFixed(2)} ms`);
  });

  it('a consumer that stops reading stops the upstream (backpressure, no buffering)', async () => {
    const token = 'x'.repeat(32 * 1024);
    const count = 1_000; // ~32 MiB: far more than socket buffers hold
    upstream.setScript({ tokens: Array.from({ length: count }, () => token) });
    const start = upstream.requests.length;
    const iterator = make({ idleTimeoutMs: 2_000 }).stream(REQUEST, new AbortController().signal)[Symbol.asyncIterator]();
    await iterator.next();
    await sleep(200);
    const sentWhilePaused = upstream.requests[start]?.tokenSentAt.length ?? 0;
    assert.ok(sentWhilePaused < count / 2, `the upstream sent ${sentWhilePaused} of ${count} tokens while nobody read`);
    assert.equal(upstream.requests[start]?.finishedAt, undefined);
    let received = 1;
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
      if (next.value.type === 'delta') received++;
    }
    assert.equal(received, count);
    console.log(`# backpressure: the upstream had sent ${sentWhilePaused} of ${count} 32 KiB tokens while the consumer paused`);
  });

  it('an in-stream error object after deltas throws UPSTREAM_UNAVAILABLE', async () => {
    // A hand-written server: the scripted one only speaks well-formed streams.
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"choices":[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}\n\n');
      res.end('data: {"error":{"message":"engine died","code":500}}\n\ndata: [DONE]\n\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const { events, error } = await drain(make({ url }).stream(REQUEST, new AbortController().signal));
      assert.deepEqual(deltas(events), ['partial']);
      assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE');
      assert.match(error?.message ?? '', /engine died/);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a base URL ending in /v1 (with or without a slash) is not doubled', async () => {
    for (const url of [`${upstream.url}/v1`, `${upstream.url}/v1/`, `${upstream.url}/`]) {
      const start = upstream.requests.length;
      const { error } = await drain(make({ url }).stream(REQUEST, new AbortController().signal));
      assert.equal(error, undefined, `${url}: ${error?.message}`);
      assert.equal(upstream.requests[start]?.path, '/v1/chat/completions', url);
    }
  });
});

describe('openai-compatible helpers', () => {
  it('joinOverlapping', () => {
    assert.equal(joinOverlapping('', '/v1/chat/completions'), '/v1/chat/completions');
    assert.equal(joinOverlapping('/v1', '/v1/chat/completions'), '/v1/chat/completions');
    assert.equal(joinOverlapping('/openai/v1', '/v1/chat/completions'), '/openai/v1/chat/completions');
    assert.equal(joinOverlapping('/proxy', '/v1/chat/completions'), '/proxy/v1/chat/completions');
    assert.equal(joinOverlapping('/v1/chat', '/v1/chat/completions'), '/v1/chat/completions');
  });

  it('parseRetryAfter', () => {
    const now = Date.parse('2024-01-01T00:00:00Z');
    assert.equal(parseRetryAfter({ 'retry-after': '12' }, now), 12);
    assert.equal(parseRetryAfter({ 'retry-after': '1.2' }, now), 2);
    assert.equal(parseRetryAfter({ 'retry-after': 'Mon, 01 Jan 2024 00:00:30 GMT' }, now), 30);
    assert.equal(parseRetryAfter({ 'retry-after-ms': '1500' }, now), 2);
    assert.equal(parseRetryAfter({}, now), undefined);
    assert.equal(parseRetryAfter({ 'retry-after': 'soon' }, now), undefined);
  });

  it('OPENAI_COMPATIBLE.parseEvent', () => {
    const chunk = (choices: unknown[], extra: object = {}): string =>
      JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices, ...extra });
    const table: Array<[string, unknown]> = [
      ['[DONE]', { done: true }],
      [chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], { usage: null }), {}],
      [chunk([{ index: 0, delta: { content: 'Hi' }, finish_reason: null }]), { text: 'Hi' }],
      [chunk([{ index: 0, delta: {}, finish_reason: 'length' }]), { finishReason: 'length' }],
      [chunk([{ index: 0, delta: {}, finish_reason: 'eos_token' }]), { finishReason: 'stop' }],
      [chunk([], { usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }), { usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }],
      [chunk([{ index: 1, delta: { content: 'other choice' } }]), {}],
      ['{"error":{"message":"bad","code":400}}', { error: { message: 'bad', status: 400 } }],
      ['{"error":"overloaded"}', { error: { message: 'overloaded' } }],
    ];
    for (const [data, expected] of table) assert.deepEqual(OPENAI_COMPATIBLE.parseEvent(data), expected, data);
    assert.match(OPENAI_COMPATIBLE.parseEvent('not json').error?.message ?? '', /not JSON/);
    assert.deepEqual(OPENAI_COMPATIBLE.headers('k'), { 'content-type': 'application/json', accept: 'text/event-stream', authorization: 'Bearer k' });
    assert.equal(OPENAI_COMPATIBLE.headers().authorization, undefined);
  });
});
