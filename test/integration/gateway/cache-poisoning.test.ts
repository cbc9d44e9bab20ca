// Cache poisoning through Unicode folding (hostile-input issue, item 3), with the exact requests
// that did it: cache keys folded full-width letters and case while the model embedded the raw
// text, so a full-width question (which the model cannot read: zero sources) sent with
// `cache: {mode: "refresh", ttl_ms: <a year>}` made the ordinary spelling a cache hit with no
// sources for a year. Now the key is derived from exactly the text that is embedded, and a
// client's TTL is capped by RAGWAY_CACHE_MAX_TTL_MS. Real shard processes, the real model.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';

const FULLWIDTH_QUESTION = 'ｈｏｗ ｄｏ ｉ ｃｏｎｆｉｇｕｒｅ ｔｔｌ ｆｏｒ ｌｒｕ ｃａｃｈｅ ｅｎｔｒｉｅｓ';
const QUESTION = 'how do i configure ttl for lru cache entries';
const A_YEAR_MS = 31_536_000_000;
// Long enough that "cached at first" holds on a loaded machine, short enough to wait out.
const MAX_TTL_MS = 1_500;

interface Source {
  document_id: string;
}

describe('cache keys are derived from what is embedded (Unicode folding)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let shards: TestShards;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;

  const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, payload: payload as Record<string, unknown> });

  before(async () => {
    dir = await tempDir('poison');
    backend = await loadDefaultBackend();
    shards = await startShards(2, dir.path, backend.dimensions);
    app = await buildApp(loadConfig({}, { shards: shards.spec, logLevel: 'silent', cacheMaxTtlMs: MAX_TTL_MS }), {
      embeddingBackend: backend,
      defaultMetrics: false,
    });
    await app.ready();
    await app.documents.ingest('default', [
      { id: 'lru-cache.md', text: 'Configure a ttl for lru cache entries with the ttl option: entries older than ttl milliseconds expire.' },
      { id: 'trains.md', text: 'The train departs from the central station every morning. Tickets are sold at the counter.' },
      { id: 'pasta.md', text: 'Boil the pasta in salted water for ten minutes, then add the tomato sauce.' },
    ]);
  });

  after(async () => {
    await app?.close();
    await shards?.stop();
    await backend?.close();
    await dir?.remove();
  });

  it('/v1/query: a full-width question retrieves what its ordinary spelling does, and cannot poison it', async () => {
    const poisoned = await post('/v1/query', { query: FULLWIDTH_QUESTION, cache: { mode: 'refresh', ttl_ms: A_YEAR_MS } });
    assert.equal(poisoned.statusCode, 200, poisoned.body);
    const fullwidthSources = poisoned.json<{ sources: Source[] }>().sources;
    assert.ok(fullwidthSources.length > 0, 'the full-width question is embedded as the text its key stands for');
    assert.equal(fullwidthSources[0]?.document_id, 'lru-cache.md');

    const ordinary = await post('/v1/query', { query: QUESTION });
    assert.equal(ordinary.statusCode, 200, ordinary.body);
    const fresh = await post('/v1/query', { query: QUESTION, cache: { mode: 'bypass' } });
    const body = ordinary.json<{ sources: Source[]; answer: string }>();
    assert.ok(body.sources.length > 0, 'the ordinary spelling is not served an answer with no sources');
    // Whatever the cache served is what computing the answer afresh gives.
    assert.deepEqual(body.sources, fresh.json<{ sources: Source[] }>().sources);
    assert.equal(body.answer, fresh.json<{ answer: string }>().answer);
  });

  it('/v1/search: "ｔｔｌ ｃａｃｈｅ" then "ttl cache" gives the same results as a fresh search', async () => {
    const poisoned = await post('/v1/search', { query: 'ｔｔｌ ｃａｃｈｅ', cache: { mode: 'refresh', ttl_ms: A_YEAR_MS } });
    assert.equal(poisoned.statusCode, 200, poisoned.body);
    const fullwidth = poisoned.json<{ results: Source[] }>().results;
    assert.ok(fullwidth.length > 0);
    assert.equal(fullwidth[0]?.document_id, 'lru-cache.md');
    const ordinary = await post('/v1/search', { query: 'ttl cache' });
    assert.equal(ordinary.statusCode, 200);
    const fresh = await post('/v1/search', { query: 'ttl cache', cache: { mode: 'bypass' } });
    assert.notDeepEqual(ordinary.json<{ results: Source[] }>().results, []);
    assert.deepEqual(ordinary.json<{ results: Source[] }>().results, fresh.json<{ results: Source[] }>().results);
  });

  it('caps a client-chosen TTL at RAGWAY_CACHE_MAX_TTL_MS, on /v1/search and /v1/query', async () => {
    for (const [url, payload] of [
      ['/v1/search', { query: 'when does the train depart' }],
      ['/v1/query', { query: 'when does the train depart' }],
    ] as const) {
      const first = await post(url, { ...payload, cache: { mode: 'refresh', ttl_ms: A_YEAR_MS } });
      assert.equal(first.statusCode, 200, first.body);
      const soon = await post(url, payload);
      assert.equal(soon.headers['x-ragway-cache'], 'hit', `${url}: cached at first`);
      await new Promise((resolve) => setTimeout(resolve, MAX_TTL_MS * 2));
      const later = await post(url, payload);
      assert.equal(later.headers['x-ragway-cache'], 'miss', `${url}: a year was asked for, the server's ${MAX_TTL_MS} ms applied`);
    }
    // The header form is capped the same way.
    await app.inject({ method: 'POST', url: '/v1/search', headers: { 'x-ragway-cache-mode': 'refresh', 'x-ragway-cache-ttl-ms': String(A_YEAR_MS) }, payload: { query: 'tomato sauce' } });
    await new Promise((resolve) => setTimeout(resolve, MAX_TTL_MS * 2));
    const later = await post('/v1/search', { query: 'tomato sauce' });
    assert.equal(later.headers['x-ragway-cache'], 'miss');
  });
});
