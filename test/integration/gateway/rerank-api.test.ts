// `rerank` on /v1/search end to end: real shard processes, the real model, and a real HTTP
// reranker (test/fixtures/rerank-server.ts) that scores by term overlap, so the expected order
// is computable here. Then the reranker goes away and searches still answer 200, labelled.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { overlapScore, startRerankServer, type RerankServer } from '../../fixtures/rerank-server.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';

const DOCS = [
  { id: 'cache.md', text: 'Set a time to live on cache entries with the ttl option. Expired entries are evicted.' },
  { id: 'size.md', text: 'Limit the cache by the size of its entries: maxSize and sizeCalculation.' },
  { id: 'trains.md', text: 'The train leaves the station every morning. Passengers buy tickets at the counter.' },
  { id: 'ttl.md', text: 'Entries live until their ttl passes; a ttl of 0 means they live forever in the cache.' },
  { id: 'cooking.md', text: 'Boil the pasta in salted water for ten minutes, then add the sauce.' },
];
const QUERY = 'what does a ttl of 0 mean for cache entries';

describe('rerank on /v1/search', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let shards: TestShards;
  let backend: OnnxEmbeddingBackend;
  let reranker: RerankServer;
  let app: FastifyInstance;
  let plain: FastifyInstance;

  const search = async (target: FastifyInstance, body: object) => target.inject({ method: 'POST', url: '/v1/search', payload: body });

  before(async () => {
    dir = await tempDir('rerank-api');
    backend = await loadDefaultBackend();
    shards = await startShards(2, dir.path, backend.dimensions);
    reranker = await startRerankServer();
    const config = { shards: shards.spec, logLevel: 'silent' as const };
    app = await buildApp(loadConfig({}, { ...config, rerankUrl: reranker.url, rerankFormat: 'tei', rerankModel: 'overlap', rerankTimeoutMs: 200 }), {
      embeddingBackend: backend,
      defaultMetrics: false,
    });
    plain = await buildApp(loadConfig({}, config), { embeddingBackend: backend, defaultMetrics: false });
    const ingested = await app.inject({ method: 'POST', url: '/v1/documents', payload: { documents: DOCS } });
    assert.equal(ingested.statusCode, 200, ingested.body);
  });

  after(async () => {
    await app?.close();
    await plain?.close();
    await reranker?.close();
    await shards?.stop();
    await backend?.close();
    await dir?.remove();
  });

  it('returns the best k of the reranked candidates, with scores, timing and a label', async () => {
    const response = await search(app, { query: QUERY, k: 2, rerank: { top_n: 5 } });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    const expected = DOCS.map((doc) => ({ id: doc.id, score: overlapScore(QUERY, doc.text) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, 2);
    assert.deepEqual(body.results.map((hit: { document_id: string }) => hit.document_id), expected.map((doc) => doc.id));
    assert.deepEqual(body.results.map((hit: { rerank_score: number }) => hit.rerank_score), expected.map((doc) => doc.score));
    assert.equal(typeof body.results[0].score, 'number', 'the retrieval score is kept');
    assert.deepEqual(body.rerank, { applied: true, model: 'overlap', candidates: 5, cache: 'miss' });
    assert.equal(typeof body.timings.rerank_ms, 'number');
    assert.equal(reranker.requests.at(-1)?.body.texts?.length, 5);

    const again = (await search(app, { query: QUERY, k: 2, rerank: { top_n: 5 } })).json();
    assert.equal(again.rerank.cache, 'hit');
    assert.deepEqual(again.results, body.results);
  });

  it('reranks on text it does not return when include leaves text out', async () => {
    const body = (await search(app, { query: QUERY, k: 1, include: [], rerank: {} })).json();
    assert.equal(body.rerank.applied, true);
    assert.equal(body.results[0].text, undefined);
    assert.equal(body.results[0].document_id, 'ttl.md');
  });

  it('refuses reranking it cannot do with a 400 naming the field', async () => {
    for (const [target, payload] of [
      [plain, { query: QUERY, rerank: {} }],
      [app, { vector: Array.from({ length: backend.dimensions }, () => 0.1), rerank: {} }],
      [app, { query: QUERY, rerank: { model: 'another-model' } }],
      [app, { query: QUERY, rerank: { top_n: 0 } }],
      [app, { query: QUERY, rerank: { depth: 3 } }],
    ] as const) {
      const response = await search(target, payload);
      assert.equal(response.statusCode, 400, response.body);
      assert.match(response.json().error.param ?? '', /rerank/);
    }
  });

  it('reranks the sources of /v1/query and of chat `rag`', async () => {
    const expected = DOCS.map((doc) => ({ id: doc.id, score: overlapScore(QUERY, doc.text) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, 3)
      .map((doc) => doc.id);
    const query = await app.inject({ method: 'POST', url: '/v1/query', payload: { query: QUERY, k: 3, rerank: { top_n: 5 } } });
    assert.equal(query.statusCode, 200, query.body);
    const answer = query.json();
    assert.deepEqual(answer.sources.map((source: { document_id: string }) => source.document_id), expected);
    assert.equal(answer.rerank.applied, true);
    assert.equal(typeof answer.timings.rerank_ms, 'number');

    const chat = await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      payload: { model: 'ragway-extractive', messages: [{ role: 'user', content: QUERY }], rag: { k: 3, rerank: { top_n: 5 } } },
    });
    assert.equal(chat.statusCode, 200, chat.body);
    const rag = chat.json().rag;
    assert.deepEqual(rag.sources.map((source: { document_id: string }) => source.document_id), expected);
    assert.equal(rag.rerank.applied, true);

    const refused = await plain.inject({ method: 'POST', url: '/v1/query', payload: { query: QUERY, rerank: {} } });
    assert.equal(refused.statusCode, 400, refused.body);
  });

  it('fails open when the reranker is slower than RAGWAY_RERANK_TIMEOUT_MS', async () => {
    reranker.setScript({ delayMs: 1_000 });
    try {
      const response = await search(app, { query: `${QUERY} please`, k: 2, rerank: {} });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json();
      assert.equal(body.rerank.applied, false);
      assert.equal(body.rerank.code, 'RAGWAY_ERR_UPSTREAM_TIMEOUT');
      assert.equal(body.results.length, 2);
      assert.ok(body.results.every((hit: { rerank_score?: number }) => hit.rerank_score === undefined));
      assert.equal(typeof body.timings.rerank_ms, 'number');
    } finally {
      reranker.setScript({ delayMs: 0 });
    }
  });

  it('answers when reranking fails open, labelled, and does not cache that answer', async () => {
    reranker.setScript({ status: 503 });
    try {
      const payload = { query: 'how do I cook pasta', k: 2, rerank: {} };
      const first = await app.inject({ method: 'POST', url: '/v1/query', payload });
      assert.equal(first.statusCode, 200, first.body);
      assert.equal(first.json().rerank.applied, false);
      assert.match(first.json().rerank.reason, /HTTP 503/);
      const second = await app.inject({ method: 'POST', url: '/v1/query', payload });
      assert.notEqual(second.headers['x-ragway-cache'], 'hit', 'an unreranked answer is not served for a reranked request');
    } finally {
      reranker.setScript({ status: undefined });
    }
  });

  it('fails open when the reranker is gone, and serves the same results vector search gives', async () => {
    await reranker.close();
    const response = await search(app, { query: 'pasta with sauce', k: 3, rerank: {} });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.rerank.applied, false);
    assert.match(body.rerank.reason, /unreachable|ECONNREFUSED|failed/);
    const unreranked = (await search(app, { query: 'pasta with sauce', k: 3 })).json();
    assert.deepEqual(body.results.map((hit: { id: string }) => hit.id), unreranked.results.map((hit: { id: string }) => hit.id));
  });

  it('stops the start when a local cross-encoder folder is configured but missing', async () => {
    await assert.rejects(
      buildApp(loadConfig({}, { shards: shards.spec, logLevel: 'silent', rerankModelDir: '/nonexistent/cross-encoder' }), { embeddingBackend: backend, defaultMetrics: false }),
      /RAGWAY_RERANK_MODEL_DIR \/nonexistent\/cross-encoder is not a cross-encoder model folder/,
    );
  });
});
