// The gateway end to end over real shard processes and the real default model: ingest,
// search, filters, namespaces, update, delete, restart with data intact, bad input.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';

const DOCS = [
  { id: 'guides/cache.md', text: 'Set a time to live on cache entries with the ttl option. Expired entries are evicted automatically.', metadata: { lang: 'en', topic: 'cache', year: 2021 } },
  { id: 'guides/trains.md', text: 'The train departs from the central station every morning. Passengers buy tickets at the counter.', metadata: { lang: 'en', topic: 'travel', year: 2019 } },
  { id: 'guides/cooking.md', text: 'Boil the pasta in salted water for ten minutes, then add the tomato sauce and fresh basil.', metadata: { lang: 'en', topic: 'food', year: 2023 } },
  { id: 'guides/zug.md', text: 'Der Zug fährt jeden Morgen vom Hauptbahnhof ab. Fahrkarten gibt es am Schalter.', metadata: { lang: 'de', topic: 'travel', year: 2020 } },
];

interface ErrorBody {
  error: { message: string; type: string; code: string; param: string | null };
}

describe('gateway over real shard processes', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let shards: TestShards;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;

  const search = async (body: unknown) => app.inject({ method: 'POST', url: '/v1/search', payload: body as object });

  before(async () => {
    dir = await tempDir('gateway');
    backend = await loadDefaultBackend();
    shards = await startShards(2, dir.path, backend.dimensions);
    app = await buildApp(loadConfig({}, { shards: shards.spec, logLevel: 'silent' }), {
      embeddingBackend: backend,
      defaultMetrics: false,
    });
  });

  after(async () => {
    await app?.close();
    await shards?.stop();
    await backend?.close();
    await dir?.remove();
  });

  it('is ready once the model and every shard answer', async () => {
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(response.statusCode, 200);
    assert.equal(response.json().shards.length, 2);
  });

  it('ingests documents, spreading them over both shards by id', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/documents', payload: { documents: DOCS } });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.documents.length, 4);
    assert.ok(body.chunks_total >= 4);
    const stats = await app.scatter.stats();
    assert.equal(stats.reduce((sum, s) => sum + s.count, 0), body.chunks_total);
    assert.ok(stats.every((s) => s.count > 0), 'both shards hold documents');
  });

  it('finds the relevant document first, with coverage and timings', async () => {
    const response = await search({ query: 'how long do cached items live before expiry', k: 3 });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.results[0].document_id, 'guides/cache.md');
    assert.ok(body.results[0].score > body.results[1].score);
    assert.deepEqual(body.coverage, { shards_total: 2, shards_ok: 2, partial: false });
    assert.equal(typeof body.timings.embed_ms, 'number');
    assert.equal(body.results[0].metadata.topic, 'cache');
  });

  it('applies metadata filters inside the search', async () => {
    const response = await search({ query: 'train station tickets', k: 10, filter: { lang: 'de' } });
    const body = response.json();
    assert.ok(body.results.length >= 1);
    assert.ok(body.results.every((hit: { metadata: { lang: string } }) => hit.metadata.lang === 'de'));
    const ranged = (await search({ query: 'anything', k: 10, filter: { $and: [{ year: { $gte: 2020 } }, { topic: { $in: ['travel', 'food'] } }] } })).json();
    assert.deepEqual(ranged.results.map((h: { document_id: string }) => h.document_id).sort(), ['guides/cooking.md', 'guides/zug.md']);
  });

  it('honours include to leave out text and metadata', async () => {
    const hit = (await search({ query: 'pasta', k: 1, include: [] })).json().results[0];
    assert.equal(hit.document_id, 'guides/cooking.md');
    assert.equal(hit.text, undefined);
    assert.equal(hit.metadata, undefined);
  });

  it('searches by vector as well as by text', async () => {
    const { vectors } = await app.embedder.embed(['boil pasta with tomato sauce']);
    const body = (await search({ vector: Array.from(vectors[0] as Float32Array), k: 1 })).json();
    assert.equal(body.results[0].document_id, 'guides/cooking.md');
  });

  it('keeps namespaces apart and answers 404 for an unknown one', async () => {
    const ingest = await app.inject({ method: 'POST', url: '/v1/documents', payload: { namespace: 'team-b', documents: [{ id: 'b1', text: 'Quarterly revenue grew in the northern region.' }] } });
    assert.equal(ingest.statusCode, 200, ingest.body);
    const inB = (await search({ query: 'revenue growth', k: 10, namespace: 'team-b' })).json();
    assert.deepEqual(inB.results.map((h: { document_id: string }) => h.document_id), ['b1']);
    const inDefault = (await search({ query: 'revenue growth', k: 10 })).json();
    assert.ok(inDefault.results.every((h: { document_id: string }) => h.document_id !== 'b1'));
    const unknown = await search({ query: 'revenue', namespace: 'nobody-here' });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json<ErrorBody>().error.code, 'RAGWAY_ERR_NAMESPACE_NOT_FOUND');
  });

  it('gets a document by an id containing slashes', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/documents/guides/cache.md' });
    assert.equal(response.statusCode, 200, response.body);
    assert.match(response.json().text, /time to live/);
    const encoded = await app.inject({ method: 'GET', url: '/v1/documents/guides%2Fcache.md' });
    assert.equal(encoded.statusCode, 200);
    assert.equal((await app.inject({ method: 'GET', url: '/v1/documents/guides/none.md' })).statusCode, 404);
  });

  it('replaces every old chunk when a document is re-ingested', async () => {
    const longText = Array.from({ length: 30 }, (_, i) => `Paragraph ${i} talks about caching policies and eviction order in depth.`).join('\n\n');
    await app.inject({ method: 'POST', url: '/v1/documents', payload: { documents: [{ id: 'evolving', text: longText }] } });
    const before = (await app.inject({ method: 'GET', url: '/v1/documents/evolving' })).json();
    assert.ok(before.chunks.length > 1);
    const update = await app.inject({ method: 'POST', url: '/v1/documents', payload: { documents: [{ id: 'evolving', text: 'Now it is about volcanoes erupting lava.' }] } });
    assert.equal(update.statusCode, 200);
    const afterUpdate = (await app.inject({ method: 'GET', url: '/v1/documents/evolving' })).json();
    assert.equal(afterUpdate.chunks.length, 1, 'no orphan chunks of the longer version');
    const hit = (await search({ query: 'volcano lava eruption', k: 1 })).json().results[0];
    assert.equal(hit.document_id, 'evolving');
    const old = (await search({ query: 'caching policies eviction order', k: 20 })).json();
    const evolving = old.results.filter((h: { document_id: string }) => h.document_id === 'evolving');
    assert.deepEqual(evolving.map((h: { text: string }) => h.text), ['Now it is about volcanoes erupting lava.']);
  });

  it('deletes a document everywhere', async () => {
    const response = await app.inject({ method: 'DELETE', url: '/v1/documents/guides/trains.md' });
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.json().deleted, true);
    assert.equal((await app.inject({ method: 'GET', url: '/v1/documents/guides/trains.md' })).statusCode, 404);
    const results = (await search({ query: 'train departs central station', k: 10 })).json().results;
    assert.ok(results.every((h: { document_id: string }) => h.document_id !== 'guides/trains.md'));
    assert.equal((await app.inject({ method: 'DELETE', url: '/v1/documents/guides/trains.md' })).statusCode, 404);
  });

  it('keeps every document across a clean restart of the shard processes', async () => {
    const query = { query: 'pasta tomato basil', k: 5 };
    const beforeRestart = (await search(query)).json().results;
    await shards.stop();
    for (const shard of shards.processes) await shard.start();
    const afterRestart = (await search(query)).json().results;
    assert.deepEqual(afterRestart, beforeRestart);
    assert.equal((await app.inject({ method: 'GET', url: '/v1/documents/guides/cache.md' })).statusCode, 200);
  });

  describe('bad input gets a 4xx envelope and the server keeps serving', () => {
    const cases: { name: string; payload?: string; body?: unknown; headers?: Record<string, string>; status: number; code: string; param?: string }[] = [
      { name: 'missing query', body: { k: 3 }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST' },
      { name: 'both query and vector', body: { query: 'x', vector: new Array(100).fill(0.1) }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST' },
      { name: 'k = 0', body: { query: 'x', k: 0 }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'k' },
      { name: 'k above the max', body: { query: 'x', k: 101 }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'k' },
      { name: 'k as a string', body: { query: 'x', k: '5' }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'k' },
      { name: 'vector of the wrong dimension', body: { vector: [0.1, 0.2, 0.3] }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'vector' },
      { name: 'vector with NaN (not JSON)', payload: `{"vector":[${new Array(99).fill('0.1').join(',')},NaN]}`, status: 400, code: 'RAGWAY_ERR_INVALID_JSON' },
      { name: 'vector with an infinite value', payload: `{"vector":[${new Array(99).fill('0.1').join(',')},1e999]}`, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'vector[99]' },
      { name: 'non-JSON body', payload: 'this is not json', status: 400, code: 'RAGWAY_ERR_INVALID_JSON' },
      { name: 'body over the limit', payload: JSON.stringify({ query: 'x'.repeat(11 * 1024 * 1024) }), status: 413, code: 'RAGWAY_ERR_BODY_TOO_LARGE' },
      { name: 'unknown namespace', body: { query: 'x', namespace: 'missing-ns' }, status: 404, code: 'RAGWAY_ERR_NAMESPACE_NOT_FOUND', param: 'namespace' },
      { name: 'invalid namespace name', body: { query: 'x', namespace: '../etc' }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'namespace' },
      { name: 'unknown filter operator', body: { query: 'x', filter: { lang: { $regex: 'e.*' } } }, status: 400, code: 'RAGWAY_ERR_INVALID_FILTER' },
      { name: 'unknown field', body: { query: 'x', top_k: 3 }, status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST', param: 'top_k' },
      { name: 'JSON array body', body: [1, 2], status: 400, code: 'RAGWAY_ERR_INVALID_REQUEST' },
    ];
    for (const testCase of cases) {
      it(testCase.name, async () => {
        const response = await app.inject({
          method: 'POST',
          url: '/v1/search',
          headers: { 'content-type': 'application/json', ...testCase.headers },
          payload: testCase.payload ?? JSON.stringify(testCase.body),
        });
        assert.equal(response.statusCode, testCase.status, response.body);
        const body = response.json<ErrorBody>();
        assert.equal(body.error.code, testCase.code, body.error.message);
        assert.equal(typeof body.error.message, 'string');
        assert.equal(typeof body.error.type, 'string');
        if (testCase.param !== undefined) assert.equal(body.error.param, testCase.param);
        const next = await search({ query: 'pasta', k: 1 });
        assert.equal(next.statusCode, 200);
      });
    }

    it('rejects bad documents with the field named', async () => {
      const empty = await app.inject({ method: 'POST', url: '/v1/documents', payload: { documents: [] } });
      assert.equal(empty.statusCode, 400);
      const noText = await app.inject({ method: 'POST', url: '/v1/documents', payload: { documents: [{ id: 'a' }] } });
      assert.equal(noText.json<ErrorBody>().error.param, 'documents[0].text');
      const duplicate = await app.inject({ method: 'POST', url: '/v1/documents', payload: { documents: [{ id: 'a', text: 'x y' }, { id: 'a', text: 'z' }] } });
      assert.equal(duplicate.statusCode, 400);
      assert.equal(duplicate.json<ErrorBody>().error.param, 'documents[1].id');
    });

    it('refuses bodies not sent as JSON (curl -d without a content type), saying what to send', async () => {
      // A browser sends form and text bodies cross-site without a preflight: they are never parsed.
      const response = await app.inject({
        method: 'POST',
        url: '/v1/search',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: JSON.stringify({ query: 'pasta', k: 1 }),
      });
      assert.equal(response.statusCode, 415, response.body);
      assert.equal(response.json<ErrorBody>().error.code, 'RAGWAY_ERR_UNSUPPORTED_MEDIA_TYPE');
      assert.match(response.json<ErrorBody>().error.message, /content-type: application\/json/);
      // The same body sent as JSON is served (and cached: a later test relies on that entry).
      const json = await search({ query: 'pasta', k: 1 });
      assert.equal(json.statusCode, 200, json.body);
    });

    it('answers unknown routes with a 404 envelope', async () => {
      const response = await app.inject({ method: 'GET', url: '/v1/nothing' });
      assert.equal(response.statusCode, 404);
      assert.equal(response.json<ErrorBody>().error.code, 'RAGWAY_ERR_NOT_FOUND');
    });
  });

  it('exports embedding and shard metrics', async () => {
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(text, /ragway_embed_batch_size_count \d+/);
    assert.match(text, /ragway_embed_queue_wait_seconds_bucket/);
    assert.match(text, /ragway_shard_request_duration_seconds_count\{shard="1",outcome="ok"\} \d+/);
  });

  it('answers partially (saying so) when a shard is down, 503 with require_complete, and is not ready', async () => {
    const victim = shards.processes[1];
    assert.ok(victim);
    await victim.stop();
    try {
      const partial = await search({ query: 'pasta tomato', k: 3, cache: { mode: 'bypass' } });
      assert.equal(partial.statusCode, 200, partial.body);
      const coverage = partial.json().coverage;
      assert.equal(coverage.partial, true);
      assert.equal(coverage.shards_ok, 1);
      assert.equal(coverage.missing[0].shard, 1);
      assert.match(coverage.missing[0].reason, /shard-1/);

      const strict = await search({ query: 'pasta', k: 1, cache: { mode: 'bypass' }, require_complete: true });
      assert.equal(strict.statusCode, 503, strict.body);
      const body = strict.json<ErrorBody>();
      assert.equal(body.error.code, 'RAGWAY_ERR_SHARD_UNAVAILABLE');
      assert.match(body.error.message, /shard-1/);
      assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503);
      // A result cached before the outage is still correct (no shard epoch moved) and is served.
      const cached = await search({ query: 'pasta', k: 1 });
      assert.equal(cached.statusCode, 200);
      assert.equal(cached.headers['x-ragway-cache'], 'hit');
    } finally {
      await victim.start();
    }
    // The replica is probed back into service (not necessarily at once).
    for (let attempt = 0; attempt < 50; attempt += 1) {
      const again = await search({ query: 'pasta', k: 1, cache: { mode: 'bypass' } });
      if (again.statusCode === 200 && again.json().coverage.partial === false) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.fail('the restarted shard did not come back within 5 s');
  });
});
