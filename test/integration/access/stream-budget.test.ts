// Streamed answers are charged to the key's tokens-per-minute budget, like JSON ones: a real
// gateway over a real shard process streams from the scripted OpenAI-compatible upstream, and
// once a stream has spent more than the budget, the key's next request gets 429 with
// Retry-After and x-ratelimit-remaining-tokens: 0. Both streaming paths: the RAG answer
// (/v1/query and chat with retrieval) and the transparent proxy (chat with `rag.enabled: false`),
// with and without the upstream's usage chunk, and a client that leaves mid-stream.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import { startLlmStack, type LlmStack } from '../../helpers/llm-stack.js';
import { bearer, writeKeys } from '../../helpers/keys.js';
import { listenOnLoopback } from '../../helpers/listen.js';

const MODEL = 'scripted-llm';
const BUDGET = 30;
// More content chunks than the whole budget: one stream overdraws it.
const TOKENS = Array.from({ length: 40 }, (_, i) => ` w${i}`);

describe('streamed answers and the tokens-per-minute budget', () => {
  let stack: LlmStack;
  let app: FastifyInstance;
  let base: string;
  let keys: Record<string, string>;

  const post = async (path: string, key: string, body: unknown): Promise<{ status: number; headers: Record<string, unknown>; text: string }> => {
    const response = await request(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(key) }, body: JSON.stringify(body) });
    return { status: response.statusCode, headers: response.headers, text: await response.body.text() };
  };
  const ask = { model: MODEL, messages: [{ role: 'user', content: 'tell me about balloons' }] };

  /** The key's next request, once the charge has landed: refused for its spent token budget. */
  const assertSpent = async (key: string): Promise<void> => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const next = await post('/v1/chat/completions', key, { ...ask, stream: true });
    assert.equal(next.status, 429, next.text.slice(0, 300));
    assert.equal(JSON.parse(next.text).error.code, 'RAGWAY_ERR_RATE_LIMITED');
    assert.equal(next.headers['x-ratelimit-remaining-tokens'], '0');
    assert.ok(Number(next.headers['retry-after']) >= 1);
  };

  before(async () => {
    stack = await startLlmStack('stream-budget');
    const keysFile = join(stack.dir.path, 'keys.json');
    const limits = { tokens_per_minute: BUDGET };
    keys = await writeKeys(keysFile, ['rag-query', 'rag-chat', 'proxy', 'proxy-usage', 'leaves'].map((name) => ({ name, scopes: ['read' as const], namespaces: ['default'], limits })));
    app = await buildApp(
      loadConfig({}, { shards: stack.shards.spec, keysFile, logLevel: 'silent', llmUrl: `${stack.upstream.url}/v1`, llmModel: MODEL }),
      { embeddingBackend: stack.backend, defaultMetrics: false },
    );
    base = await listenOnLoopback(app);
    await app.documents.ingest('default', [{ id: 'balloons.md', text: 'Weather balloons rise to the stratosphere and burst; the radiosonde falls back on a parachute.' }]);
  });

  beforeEach(() => stack.upstream.resetScript({ tokens: TOKENS, delayMs: 0, firstTokenDelayMs: 0, includeUsage: true }));

  after(async () => {
    await app?.close();
    await stack?.close();
  });

  it('charges a streamed /v1/query answer', async () => {
    const streamed = await post('/v1/query', keys['rag-query'] as string, { query: 'how do balloons come down', model: MODEL, stream: true, cache: { mode: 'bypass' } });
    assert.equal(streamed.status, 200);
    assert.match(streamed.text, /w39/);
    await assertSpent(keys['rag-query'] as string);
  });

  it('charges a streamed chat answer with retrieval', async () => {
    const streamed = await post('/v1/chat/completions', keys['rag-chat'] as string, { ...ask, stream: true, cache: { mode: 'bypass' } });
    assert.equal(streamed.status, 200);
    assert.match(streamed.text, /w39/);
    await assertSpent(keys['rag-chat'] as string);
  });

  it('charges a proxied chat stream by its chunks when the upstream sends no usage', async () => {
    const streamed = await post('/v1/chat/completions', keys['proxy'] as string, { ...ask, stream: true, rag: { enabled: false } });
    assert.equal(streamed.status, 200);
    assert.doesNotMatch(streamed.text, /total_tokens/);
    await assertSpent(keys['proxy'] as string);
  });

  it('charges a proxied chat stream by its usage chunk when there is one', async () => {
    // Fewer chunks than the budget; the usage chunk's total (the prompt's 10 included) is over it.
    stack.upstream.setScript({ tokens: TOKENS.slice(0, BUDGET - 5) });
    const streamed = await post('/v1/chat/completions', keys['proxy-usage'] as string, { ...ask, stream: true, stream_options: { include_usage: true }, rag: { enabled: false } });
    assert.equal(streamed.status, 200);
    const total = Number(/"total_tokens":(\d+)/.exec(streamed.text)?.[1]);
    assert.ok(total > BUDGET, `usage total ${total}`);
    await assertSpent(keys['proxy-usage'] as string);
  });

  it('charges what was sent to a client that leaves mid-stream', async () => {
    stack.upstream.setScript({ delayMs: 20 });
    const controller = new AbortController();
    const response = await request(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(keys['leaves'] as string) },
      body: JSON.stringify({ ...ask, stream: true, rag: { enabled: false } }),
      signal: controller.signal,
    });
    assert.equal(response.statusCode, 200);
    let seen = '';
    try {
      for await (const chunk of response.body) {
        seen += String(chunk);
        if ((seen.match(/"content":" w/g) ?? []).length >= 32) controller.abort();
      }
    } catch {
      // The abort ends the body.
    }
    // The gateway notices the disconnect, stops the upstream and charges what it streamed.
    const deadline = Date.now() + 3_000;
    while (stack.upstream.requests.at(-1)?.abortedAt === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(stack.upstream.requests.at(-1)?.abortedAt !== undefined, 'the upstream saw the client leave');
    await assertSpent(keys['leaves'] as string);
  });
});
