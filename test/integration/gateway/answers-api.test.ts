// The answer APIs over real HTTP — /v1/chat/completions, /v1/query, /v1/embeddings,
// /v1/models — with real shard processes, the real model, and a scripted OpenAI-compatible
// upstream (a real HTTP server) that can stall, drop, fail or stream slowly.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import { closeGracefully } from '../../../gateway/server.js';
import { freePort } from '../../../cli/free-port.js';
import { startLlmStack, type LlmStack } from '../../helpers/llm-stack.js';
import { listenOnLoopback } from '../../helpers/listen.js';

const MODEL = 'scripted-llm';

interface SseFrame {
  event: string;
  data: string;
  at: number;
}

/** Reads an SSE response frame by frame, timestamping each as it arrives. */
async function readSse(body: AsyncIterable<Buffer>, onFrame?: (frame: SseFrame) => boolean | void): Promise<{ frames: SseFrame[]; comments: string[] }> {
  const frames: SseFrame[] = [];
  const comments: string[] = [];
  let buffer = '';
  for await (const chunk of body) {
    buffer += chunk.toString('utf8');
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) comments.push(line.slice(1).trim());
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length === 0) continue;
      const frame = { event, data: data.join('\n'), at: performance.now() };
      frames.push(frame);
      if (onFrame?.(frame) === true) return { frames, comments };
    }
  }
  return { frames, comments };
}

describe('answer APIs', () => {
  let stack: LlmStack;
  let app: FastifyInstance;
  let base: string;
  // A port nothing listens on: the first upstream in the failover list.
  let deadUrl: string;
  let closed = false;

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    request(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  before(async () => {
    stack = await startLlmStack('answers', { shards: 2 });
    deadUrl = `http://127.0.0.1:${await freePort()}`;
    app = await buildApp(
      loadConfig({}, {
        shards: stack.shards.spec,
        logLevel: 'silent',
        llmUrl: `${deadUrl},${stack.upstream.url}/v1`,
        llmModel: MODEL,
        llmFirstTokenTimeoutMs: 2_000,
        llmIdleTimeoutMs: 500,
        ssePingMs: 50,
      }),
      { embeddingBackend: stack.backend, defaultMetrics: false },
    );
    base = await listenOnLoopback(app);
    await app.documents.ingest('default', [
      { id: 'cache.md', text: 'Set a time to live on cache entries with the ttl option. Expired entries are evicted automatically when ttlAutopurge is on.' },
      { id: 'trains.md', text: 'The train departs from the central station every morning. Tickets are sold at the counter.' },
    ]);
  });

  beforeEach(() => stack.upstream.resetScript());

  after(async () => {
    if (!closed) await app?.close();
    await stack?.close();
  });

  it('lists the upstream model, ragway-extractive and the embedding model', async () => {
    const body = (await (await request(`${base}/v1/models`)).body.json()) as { object: string; data: { id: string; object: string }[] };
    assert.equal(body.object, 'list');
    assert.deepEqual(body.data.map((m) => m.id), [MODEL, 'ragway-extractive', 'glove-sif-100d']);
    assert.ok(body.data.every((m) => m.object === 'model'));
  });

  describe('/v1/chat/completions streaming', () => {
    it('emits OpenAI chunks exactly: constant id, role first, one finish_reason, usage chunk, [DONE] last', async () => {
      stack.upstream.setScript({ tokens: ['The', ' ttl', ' option', ' [1]', '.'] });
      const response = await post('/v1/chat/completions', {
        model: MODEL,
        messages: [{ role: 'user', content: 'How do cache entries expire?' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      assert.equal(response.statusCode, 200);
      assert.match(String(response.headers['content-type']), /^text\/event-stream/);
      assert.equal(response.headers['cache-control'], 'no-cache');
      assert.equal(response.headers['x-accel-buffering'], 'no');
      const { frames } = await readSse(response.body);
      assert.equal(frames.at(-1)?.data, '[DONE]');
      const chunks = frames.slice(0, -1).map((frame) => JSON.parse(frame.data));
      const ids = new Set(chunks.map((c) => c.id));
      const created = new Set(chunks.map((c) => c.created));
      assert.equal(ids.size, 1);
      assert.equal(created.size, 1);
      assert.match([...ids][0], /^chatcmpl-/);
      for (const c of chunks) {
        assert.equal(c.object, 'chat.completion.chunk');
        assert.equal(c.model, MODEL);
        assert.ok('usage' in c, 'with include_usage every chunk has usage');
      }
      assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
      assert.ok(chunks[0].rag.sources.some((s: { document_id: string }) => s.document_id === 'cache.md'));
      const content = chunks.flatMap((c) => c.choices).map((choice) => choice.delta.content ?? '').join('');
      assert.equal(content, 'The ttl option [1].');
      const finishes = chunks.flatMap((c) => c.choices).filter((choice) => choice.finish_reason !== null);
      assert.deepEqual(finishes.map((choice) => choice.finish_reason), ['stop']);
      const last = chunks.at(-1);
      assert.deepEqual(last.choices, []);
      assert.equal(typeof last.usage.total_tokens, 'number');
      assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
      // The prompt reached the upstream with numbered sources, the question last.
      const sent = stack.upstream.requests.at(-1)?.body as { messages: { role: string; content: string }[] };
      assert.match(sent.messages[0]?.content ?? '', /\[1\]/);
      assert.equal(sent.messages.at(-1)?.content, 'How do cache entries expire?');
    });

    it('fails over to the next upstream before the first token (the first one refuses connections)', async () => {
      const response = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(response.statusCode, 200);
      const body = (await response.body.json()) as { choices: { message: { content: string } }[] };
      assert.equal(body.choices[0]?.message.content, 'Hello, world!');
    });

    it('sends an error frame and [DONE] when the upstream dies mid-stream', async () => {
      stack.upstream.setScript({ tokens: ['one', ' two', ' three', ' four'], dropAfter: 2 });
      const response = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'count' }], stream: true });
      const { frames } = await readSse(response.body);
      assert.equal(frames.at(-1)?.data, '[DONE]');
      const error = JSON.parse(frames.at(-2)?.data ?? '{}');
      assert.equal(error.error.code, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE');
      const content = frames.slice(0, -2).map((f) => JSON.parse(f.data)).flatMap((c) => c.choices).map((c) => c.delta.content ?? '').join('');
      assert.equal(content, 'one two');
      assert.ok(frames.slice(0, -2).every((f) => JSON.parse(f.data).choices.every((c: { finish_reason: unknown }) => c.finish_reason === null)), 'no finish_reason on a broken stream');
    });

    it('aborts the upstream request within 100 ms of the client disconnecting', async () => {
      stack.upstream.setScript({ tokens: Array.from({ length: 50 }, (_, i) => ` t${i}`), delayMs: 50 });
      const response = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'long' }], stream: true });
      let seen = 0;
      await readSse(response.body, () => {
        seen += 1;
        return seen >= 3;
      });
      const disconnectedAt = performance.now();
      response.body.destroy();
      const abortedAt = await stack.upstream.waitForAbort(2_000, disconnectedAt);
      assert.ok(abortedAt < 100, `upstream saw the abort after ${abortedAt.toFixed(1)} ms`);
    });

    it('forwards deltas before the upstream has finished', async () => {
      stack.upstream.setScript({ tokens: ['a', 'b', 'c', 'd', 'e'], delayMs: 60 });
      const response = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'slow' }], stream: true });
      const { frames } = await readSse(response.body);
      const firstContent = frames.find((f) => f.data !== '[DONE]' && JSON.parse(f.data).choices[0]?.delta?.content);
      const finishedAt = stack.upstream.requests.at(-1)?.finishedAt;
      assert.ok(firstContent && finishedAt !== undefined);
      assert.ok(firstContent.at < finishedAt - 150, `first delta ${(finishedAt - firstContent.at).toFixed(0)} ms before the upstream finished`);
    });

    it('slows reading from the upstream when the client reads slowly, instead of buffering it all', async () => {
      const big = 'x'.repeat(32 * 1024);
      stack.upstream.setScript({ tokens: Array.from({ length: 1_000 }, () => big) });
      const response = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'a lot' }], stream: true });
      const iterator = response.body[Symbol.asyncIterator]();
      await iterator.next();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const sent = stack.upstream.requests.at(-1)?.tokenSentAt.length ?? 0;
      assert.ok(sent < 600, `the upstream had sent ${sent} of 1000 32 KiB tokens while the client was not reading`);
      response.body.destroy();
      await stack.upstream.waitForAbort(2_000);
    });

    it('answers with ragway-extractive when asked, through the same chunk format', async () => {
      const response = await post('/v1/chat/completions', {
        model: 'ragway-extractive',
        messages: [{ role: 'user', content: 'how do cache entries expire with a time to live' }],
        stream: true,
      });
      const { frames } = await readSse(response.body);
      assert.equal(frames.at(-1)?.data, '[DONE]');
      const content = frames.slice(0, -1).map((f) => JSON.parse(f.data)).flatMap((c) => c.choices).map((c) => c.delta.content ?? '').join('');
      assert.match(content, /\[1\]/);
    });

    it('retrieves nothing when rag.enabled is false: the upstream gets the conversation as sent', async () => {
      // Since retrieval off became a transparent proxy (chat-passthrough.test.ts), there are no
      // sources to report and no system prompt is added.
      const response = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }], rag: { enabled: false } });
      assert.equal(response.statusCode, 200);
      const body = (await response.body.json()) as { rag?: unknown; model: string };
      assert.equal(body.rag, undefined);
      assert.equal(body.model, MODEL);
      assert.deepEqual((stack.upstream.requests.at(-1)?.body as { messages: unknown }).messages, [{ role: 'user', content: 'hi' }]);
    });
  });

  describe('/v1/query', () => {
    it('streams sources first, deltas over time, then done with usage and timings; pings while idle', async () => {
      stack.upstream.setScript({ tokens: ['Use', ' ttl', ' [1]'], firstTokenDelayMs: 200, delayMs: 30 });
      const response = await post('/v1/query', { query: 'how do cache entries expire', stream: true });
      assert.equal(response.statusCode, 200);
      const { frames, comments } = await readSse(response.body);
      assert.deepEqual([...new Set(frames.map((f) => f.event))], ['sources', 'delta', 'done']);
      assert.equal(frames[0]?.event, 'sources');
      const sources = JSON.parse(frames[0]?.data ?? '{}');
      assert.equal(sources.sources[0].document_id, 'cache.md');
      const deltas = frames.filter((f) => f.event === 'delta');
      assert.equal(deltas.map((f) => JSON.parse(f.data).text).join(''), 'Use ttl [1]');
      assert.ok((deltas.at(-1)?.at ?? 0) - (deltas[0]?.at ?? 0) >= 40, 'deltas arrived over time');
      const done = JSON.parse(frames.at(-1)?.data ?? '{}');
      assert.equal(done.finish_reason, 'stop');
      assert.equal(typeof done.usage.completion_tokens, 'number');
      assert.deepEqual(done.citations.map((c: { document_id: string }) => c.document_id), ['cache.md']);
      for (const stage of ['embed_ms', 'search_ms', 'first_token_ms', 'time_to_first_token_ms', 'total_ms']) assert.equal(typeof done.timings[stage], 'number', stage);
      assert.ok(comments.includes('ping'), 'idle stream got a ping');
    });

    it('streams when the client only sends Accept: text/event-stream', async () => {
      const response = await post('/v1/query', { query: 'train tickets' }, { accept: 'text/event-stream' });
      assert.match(String(response.headers['content-type']), /event-stream/);
      const { frames } = await readSse(response.body);
      assert.equal(frames.at(-1)?.event, 'done');
    });

    it('returns JSON with answer, citations, sources and coverage, and reports citations of missing sources', async () => {
      stack.upstream.setScript({ tokens: ['See [1] and [7].'] });
      const response = await post('/v1/query', { query: 'how do cache entries expire' });
      const body = (await response.body.json()) as Record<string, any>;
      assert.equal(body.answer, 'See [1] and [7].');
      assert.deepEqual(body.invalid_citations, [7]);
      assert.deepEqual(body.citations.map((c: { index: number }) => c.index), [1]);
      assert.deepEqual(body.coverage, { shards_total: 2, shards_ok: 2, partial: false });
      assert.equal(body.model, MODEL);
    });

    it('sends an error event when the upstream stalls past the idle timeout', async () => {
      stack.upstream.setScript({ tokens: ['a', 'b', 'c'], stallAfter: 1 });
      const response = await post('/v1/query', { query: 'anything', stream: true });
      const { frames } = await readSse(response.body);
      assert.equal(frames.at(-1)?.event, 'error');
      assert.equal(JSON.parse(frames.at(-1)?.data ?? '{}').error.code, 'RAGWAY_ERR_UPSTREAM_TIMEOUT');
    });
  });

  describe('/v1/embeddings', () => {
    it('returns floats and base64 of the same vectors, indexed, with real token usage', async () => {
      const input = ['cache entries expire', 'trains leave at dawn', 'third'];
      const floats = (await (await post('/v1/embeddings', { model: 'glove-sif-100d', input })).body.json()) as any;
      const b64 = (await (await post('/v1/embeddings', { model: 'glove-sif-100d', input, encoding_format: 'base64' })).body.json()) as any;
      assert.deepEqual(floats.data.map((d: { index: number }) => d.index), [0, 1, 2]);
      const decoded = new Float32Array(new Uint8Array(Buffer.from(b64.data[1].embedding, 'base64')).buffer);
      assert.deepEqual(Array.from(decoded), floats.data[1].embedding);
      assert.equal(floats.usage.prompt_tokens, input.map((t) => stack.backend.encode(t).tokenCount).reduce((a, b) => a + b));
    });

    it('splits a large array across batches and keeps order', async () => {
      const input = Array.from({ length: 600 }, (_, i) => `sentence number ${i} about trains`);
      const body = (await (await post('/v1/embeddings', { model: 'glove-sif-100d', input })).body.json()) as any;
      assert.equal(body.data.length, 600);
      assert.ok(body.data.every((d: { index: number }, i: number) => d.index === i));
    });
  });

  describe('bad input gets an OpenAI-style 4xx and the server keeps serving', () => {
    const chat = (extra: Record<string, unknown>) => ({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], ...extra });
    const cases: { name: string; path: string; body: unknown; status: number; code: string; param?: string }[] = [
      { name: 'empty messages', path: '/v1/chat/completions', body: chat({ messages: [] }), status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'messages' },
      { name: 'a tool message', path: '/v1/chat/completions', body: chat({ messages: [{ role: 'tool', content: 'x' }] }), status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'messages[0].role' },
      { name: 'last message from the assistant', path: '/v1/chat/completions', body: chat({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] }), status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'messages[1].role' },
      { name: 'max_tokens 0', path: '/v1/chat/completions', body: chat({ max_tokens: 0 }), status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'max_tokens' },
      { name: 'unknown model', path: '/v1/chat/completions', body: chat({ model: 'gpt-9' }), status: 404, code: 'RAGWAY_ERR_MODEL_NOT_FOUND', param: 'model' },
      { name: 'non-string content', path: '/v1/chat/completions', body: chat({ messages: [{ role: 'user', content: 42 }] }), status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'messages[0].content' },
      { name: 'n = 2', path: '/v1/chat/completions', body: chat({ n: 2 }), status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'n' },
      { name: 'temperature 3', path: '/v1/chat/completions', body: chat({ temperature: 3 }), status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'temperature' },
      { name: '3000 embedding inputs', path: '/v1/embeddings', body: { model: 'glove-sif-100d', input: Array.from({ length: 3000 }, () => 'x') }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'input' },
      { name: 'token-array embedding input', path: '/v1/embeddings', body: { model: 'glove-sif-100d', input: [1, 2, 3] }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'input' },
      { name: 'unsupported dimensions', path: '/v1/embeddings', body: { model: 'glove-sif-100d', input: 'x', dimensions: 32 }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'dimensions' },
      { name: 'unknown embedding model', path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: 'x' }, status: 404, code: 'RAGWAY_ERR_MODEL_NOT_FOUND', param: 'model' },
      { name: 'query without text', path: '/v1/query', body: { query: '' }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'query' },
    ];
    for (const testCase of cases) {
      it(testCase.name, async () => {
        const response = await post(testCase.path, testCase.body);
        const body = (await response.body.json()) as { error: { code: string; type: string; message: string; param: string | null } };
        assert.equal(response.statusCode, testCase.status, body.error?.message);
        assert.equal(body.error.code, testCase.code, body.error.message);
        assert.equal(typeof body.error.type, 'string');
        if (testCase.param !== undefined) assert.equal(body.error.param, testCase.param, body.error.message);
        const next = await post('/v1/chat/completions', chat({}));
        assert.equal(next.statusCode, 200);
        await next.body.dump();
      });
    }

    it('maps an upstream 429 to a 429 with Retry-After before any header was sent', async () => {
      stack.upstream.setScript({ status: 429, retryAfter: 7 });
      const response = await post('/v1/chat/completions', chat({}));
      const body = (await response.body.json()) as { error: { code: string } };
      assert.equal(response.statusCode, 429);
      assert.equal(response.headers['retry-after'], '7');
      assert.equal(body.error.code, 'RAGWAY_ERR_UPSTREAM_RATE_LIMITED');
    });
  });

  it('counts streamed responses in the request-duration metric', async () => {
    const metrics = await (await request(`${base}/metrics`)).body.text();
    assert.match(metrics, /ragway_http_request_duration_seconds_count\{method="POST",route="\/v1\/chat\/completions",status_code="200"\} [1-9]/);
    assert.match(metrics, /ragway_http_request_duration_seconds_count\{method="POST",route="\/v1\/query",status_code="200"\} [1-9]/);
  });

  // Last: it shuts the shared app down.
  it('drains on shutdown: a stream in flight finishes, new requests get 503, then the app closes', async () => {
    stack.upstream.setScript({ tokens: Array.from({ length: 8 }, (_, i) => ` t${i}`), delayMs: 40 });
    const response = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'long answer' }], stream: true });
    const streamDone = readSse(response.body);
    await new Promise((resolve) => setTimeout(resolve, 60));
    const closing = closeGracefully(app, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const refused = await request(`${base}/v1/models`, { headers: { connection: 'close' } }).then(
      async (r) => ({ status: r.statusCode, body: await r.body.text() }),
      (err: Error) => ({ status: 0, body: err.message }),
    );
    assert.equal(refused.status, 503, `a new request during the drain got ${refused.status}: ${refused.body}`);
    const { frames } = await streamDone;
    assert.equal(frames.at(-1)?.data, '[DONE]', 'the stream in flight ran to its end');
    const content = frames.slice(0, -1).map((f) => JSON.parse(f.data)).flatMap((c) => c.choices).map((c) => c.delta.content ?? '').join('');
    assert.equal(content, ' t0 t1 t2 t3 t4 t5 t6 t7');
    await closing;
    closed = true;
  });
});
