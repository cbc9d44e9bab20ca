// The rerank stage against a real HTTP reranker (test/fixtures/rerank-server.ts) in both API
// shapes, and failing open on a closed port, a timeout, an error status and a malformed answer.
// The local cross-encoder is tested only on its error path: no model can be downloaded here.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../../cli/free-port.js';
import { isRagwayError } from '../../../core/errors.js';
import { CacheLayer } from '../../../gateway/cache/lru-layer.js';
import type { RerankScore } from '../../../gateway/rerank/backend.js';
import { CrossEncoderRerankBackend } from '../../../gateway/rerank/cross-encoder.js';
import { RemoteRerankBackend, type RerankFormat } from '../../../gateway/rerank/remote.js';
import { RerankStage } from '../../../gateway/rerank/stage.js';
import { overlapScore, startRerankServer, type RerankServer } from '../../fixtures/rerank-server.js';
import { tempDir } from '../../helpers/cluster.js';

const QUERY = 'set a ttl on cache entries';
// Retrieval order on purpose unlike the overlap order.
const HITS = [
  { id: 'a#0', document_id: 'a', score: 0.9, text: 'Trains leave the station every morning.' },
  { id: 'b#0', document_id: 'b', score: 0.8, text: 'Cache entries expire.' },
  { id: 'c#0', document_id: 'c', score: 0.7, text: 'Set a ttl on cache entries with the ttl option.' },
  { id: 'd#0', document_id: 'd', score: 0.6, text: 'Set the cache size.' },
];
const expectedOrder = [...HITS].sort((x, y) => overlapScore(QUERY, y.text) - overlapScore(QUERY, x.text)).map((hit) => hit.id);

function stageFor(url: string, format: RerankFormat, options: { timeoutMs?: number; apiKey?: string; cache?: boolean; model?: string } = {}) {
  const failures: string[] = [];
  const layer = options.cache === false ? undefined : new CacheLayer<RerankScore[]>('rerank', { maxBytes: 1 << 20, sizeOf: (s) => s.length * 16 });
  const backend = new RemoteRerankBackend({ url, format, model: options.model ?? '', timeoutMs: options.timeoutMs ?? 2_000, ...(options.apiKey ? { apiKey: options.apiKey } : {}) });
  const stage = new RerankStage(backend, layer, { defaultTopN: 10, onFailOpen: (code) => failures.push(code) });
  return { stage, failures, layer };
}

describe('rerank stage over a real HTTP reranker', () => {
  let server: RerankServer;
  before(async () => {
    server = await startRerankServer();
  });
  after(async () => server?.close());

  it('reranks in the TEI /rerank shape and caches the scores', async () => {
    const { stage, layer } = stageFor(server.url, 'tei');
    const before = server.requests.length;
    const result = await stage.rerank({ query: QUERY, hits: HITS, keep: 3, request: {} });
    assert.deepEqual(result.hits.map((hit) => hit.id), expectedOrder.slice(0, 3));
    assert.equal(result.info.applied, true);
    for (const hit of result.hits) assert.equal(hit.rerank_score, overlapScore(QUERY, hit.text));
    // The retrieval score stays as it was; the rerank score is beside it.
    assert.equal(result.hits[0]?.score, HITS.find((hit) => hit.id === expectedOrder[0])?.score);
    const request = server.requests.at(-1);
    assert.equal(request?.path, '/rerank');
    assert.deepEqual(request?.body.texts, HITS.map((hit) => hit.text));
    assert.equal(request?.body.query, QUERY);

    const again = await stage.rerank({ query: QUERY, hits: HITS, keep: 3, request: {} });
    assert.deepEqual(again.hits, result.hits);
    assert.deepEqual(again.info, { applied: true, model: result.info.model, candidates: 4, cache: 'hit' });
    assert.equal(server.requests.length, before + 1, 'the second call was served from the cache');
    assert.equal(layer?.stats().hits, 1);

    // A changed text is a different key: no stale score for re-ingested content.
    const edited = HITS.map((hit) => (hit.id === 'a#0' ? { ...hit, text: 'Set a ttl on cache entries, trains too.' } : hit));
    const fresh = await stage.rerank({ query: QUERY, hits: edited, keep: 3, request: {} });
    assert.equal(fresh.info.applied && fresh.info.cache, 'miss');
    assert.equal(server.requests.length, before + 2);

    const bypass = await stage.rerank({ query: QUERY, hits: HITS, keep: 3, request: {}, cache: { mode: 'bypass' } });
    assert.equal(bypass.info.applied && bypass.info.cache, 'bypass');
    assert.equal(server.requests.length, before + 3);
  });

  it('reranks in the Cohere/Jina /v1/rerank shape, sending model, top_n and the key', async () => {
    server.setScript({ apiKey: 'rk-secret' });
    try {
      const { stage } = stageFor(server.url, 'cohere', { apiKey: 'rk-secret', model: 'rerank-english-v3.0', cache: false });
      const result = await stage.rerank({ query: QUERY, hits: HITS, keep: 2, request: { model: 'jina-reranker-v2' } });
      assert.deepEqual(result.hits.map((hit) => hit.id), expectedOrder.slice(0, 2));
      assert.deepEqual(result.info, { applied: true, model: 'jina-reranker-v2', candidates: 4, cache: 'miss' });
      const request = server.requests.at(-1);
      assert.equal(request?.path, '/v1/rerank');
      assert.equal(request?.headers.authorization, 'Bearer rk-secret');
      assert.deepEqual(
        { model: request?.body.model, top_n: request?.body.top_n, documents: request?.body.documents },
        { model: 'jina-reranker-v2', top_n: 2, documents: HITS.map((hit) => hit.text) },
      );
    } finally {
      server.setScript({ apiKey: undefined });
    }
  });

  it('reranks only the first top_n candidates', async () => {
    const { stage } = stageFor(server.url, 'tei', { cache: false });
    const result = await stage.rerank({ query: QUERY, hits: HITS, keep: 2, request: { top_n: 2 } });
    assert.deepEqual(server.requests.at(-1)?.body.texts, HITS.slice(0, 2).map((hit) => hit.text));
    assert.deepEqual(result.hits.map((hit) => hit.id), ['b#0', 'a#0']);
  });

  it('refuses a model a single-model reranker does not serve (400)', async () => {
    const { stage } = stageFor(server.url, 'tei', { model: 'bge-reranker-base' });
    await assert.rejects(stage.rerank({ query: QUERY, hits: HITS, keep: 2, request: { model: 'other' } }), (err: unknown) => {
      assert.ok(isRagwayError(err));
      assert.equal(err.statusCode, 400);
      assert.equal(err.param, 'rerank.model');
      return true;
    });
  });

  const failOpen = async (stage: RerankStage, failures: string[], code: string, reason: RegExp): Promise<void> => {
    const result = await stage.rerank({ query: QUERY, hits: HITS, keep: 3, request: {} });
    assert.deepEqual(result.hits.map((hit) => hit.id), ['a#0', 'b#0', 'c#0'], 'retrieval order, unreranked');
    assert.ok(result.hits.every((hit) => hit.rerank_score === undefined));
    assert.equal(result.info.applied, false);
    assert.ok(!result.info.applied);
    assert.equal(result.info.code, code);
    assert.match(result.info.reason, reason);
    assert.deepEqual(failures, [code]);
  };

  it('fails open when nothing listens on the reranker port', async () => {
    const port = await freePort();
    const { stage, failures } = stageFor(`http://127.0.0.1:${port}`, 'tei');
    await failOpen(stage, failures, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE', /ECONNREFUSED/);
    await stage.close();
  });

  it('fails open when the reranker is slower than its timeout, and does not cache that', async () => {
    server.setScript({ delayMs: 400 });
    try {
      const { stage, failures, layer } = stageFor(server.url, 'tei', { timeoutMs: 50 });
      await failOpen(stage, failures, 'RAGWAY_ERR_UPSTREAM_TIMEOUT', /timed out/);
      assert.equal(layer?.stats().entries, 0);
      await stage.close();
    } finally {
      server.setScript({ delayMs: 0 });
    }
  });

  it('fails open on an error status and on an answer that does not fit the passages', async () => {
    server.setScript({ status: 503 });
    try {
      const { stage, failures } = stageFor(server.url, 'cohere', { cache: false });
      await failOpen(stage, failures, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE', /HTTP 503/);
    } finally {
      server.setScript({ status: undefined });
    }
    // A TEI-shaped answer where the Cohere form is expected: no `results` array.
    server.setScript({ answer: [{ index: 0, score: 1 }] });
    try {
      const { stage, failures } = stageFor(server.url, 'cohere', { cache: false });
      await failOpen(stage, failures, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE', /results/);
    } finally {
      server.setScript({ answer: undefined });
    }
    // Scores for passages that were never sent.
    server.setScript({ answer: [{ index: 7, score: 1 }, { index: 0, score: 0.5 }, { index: 1, score: 0.2 }] });
    try {
      const { stage, failures } = stageFor(server.url, 'tei', { cache: false });
      await failOpen(stage, failures, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE', /index 7 is not one of the 4 passages/);
    } finally {
      server.setScript({ answer: undefined });
    }
  });

  it('ends with the client when the caller aborts, rather than failing open', async () => {
    server.setScript({ delayMs: 300 });
    try {
      const { stage, failures } = stageFor(server.url, 'tei', { cache: false });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 20);
      await assert.rejects(stage.rerank({ query: QUERY, hits: HITS, keep: 2, request: {} }, controller.signal), (err: unknown) => {
        assert.ok(isRagwayError(err));
        assert.equal(err.code, 'RAGWAY_ERR_CLIENT_CLOSED');
        return true;
      });
      assert.deepEqual(failures, []);
    } finally {
      server.setScript({ delayMs: 0 });
    }
  });
});

describe('local cross-encoder reranker', () => {
  it('refuses to start on a missing folder, naming it', async () => {
    await assert.rejects(CrossEncoderRerankBackend.load({ dir: '/nonexistent/reranker' }), /RAGWAY_RERANK_MODEL_DIR \/nonexistent\/reranker is not a cross-encoder model folder: missing the folder/);
  });

  it('names the files a folder lacks', async () => {
    const dir = await tempDir('reranker');
    try {
      await mkdir(join(dir.path, 'onnx'));
      await writeFile(join(dir.path, 'config.json'), '{}');
      await assert.rejects(CrossEncoderRerankBackend.load({ dir: dir.path }), /missing tokenizer\.json, onnx\/model\.onnx/);
    } finally {
      await dir.remove();
    }
  });
});
