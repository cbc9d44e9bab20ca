// Hot-path caching over real shard processes and the real model: hits, single-flight,
// epoch-safe invalidation (through this gateway and behind its back), replays that look
// like live answers, per-request control, the byte budget, and the semantic layer.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import { HttpShardClient } from '../../../retriever/http-shard-client.js';
import { encodeVector } from '../../../shards/protocol.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';
import { listenOnLoopback } from '../../helpers/listen.js';

const DOCS = [
  { id: 'cache.md', text: 'Set a time to live on cache entries with the ttl option. Expired entries are evicted automatically.' },
  { id: 'trains.md', text: 'The train departs from the central station every morning. Tickets are sold at the counter.' },
  { id: 'pasta.md', text: 'Boil the pasta in salted water for ten minutes, then add the tomato sauce and fresh basil.' },
];

interface Frame {
  event: string;
  data: string;
}

async function sseFrames(body: AsyncIterable<Buffer>): Promise<Frame[]> {
  let text = '';
  for await (const chunk of body) text += chunk.toString('utf8');
  return text
    .split('\n\n')
    .filter((block) => block.includes('data: '))
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((line) => line.startsWith('event: '))?.slice(7) ?? 'message';
      return { event, data: lines.filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n') };
    });
}

/** The shape of a JSON value: keys and types, not values (ids, timings and usage differ between runs). */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? [] : [shape(value[0])];
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, shape(v)]));
  }
  return value === null ? null : typeof value;
}

describe('caching', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let shards: TestShards;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;
  let base: string;

  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const response = await request(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return {
      status: response.statusCode,
      cache: response.headers['x-ragway-cache'],
      similarity: response.headers['x-ragway-cache-similarity'],
      body: response.body,
    };
  };
  const search = async (body: unknown, headers: Record<string, string> = {}) => {
    const response = await post('/v1/search', body, headers);
    return { ...response, json: (await response.body.json()) as { results: { document_id: string; text: string }[] } };
  };
  const shardQueries = async (): Promise<number> =>
    (await app.scatter.stats()).reduce((sum, stats) => sum + stats.search_queries, 0);

  before(async () => {
    dir = await tempDir('caching');
    backend = await loadDefaultBackend();
    shards = await startShards(2, dir.path, backend.dimensions);
    app = await buildApp(
      loadConfig({}, {
        shards: shards.spec,
        logLevel: 'silent',
        cacheEpochPollMs: 50,
        cacheRetrievalBytes: 64 * 1024,
        semanticCache: true,
        // Counts below are of vector searches (hybrid adds a BM25 statistics pass and a lexical query per shard).
        searchMode: 'vector',
      }),
      { embeddingBackend: backend, defaultMetrics: false },
    );
    base = await listenOnLoopback(app);
    await app.documents.ingest('default', DOCS);
  });

  after(async () => {
    await app?.close();
    await shards?.stop();
    await backend?.close();
    await dir?.remove();
  });

  it('serves a second identical search from the cache', async () => {
    const first = await search({ query: 'when does the train leave', k: 2 });
    const second = await search({ query: 'When does the train leave?', k: 2 });
    assert.equal(first.cache, 'miss');
    assert.equal(second.cache, 'hit', 'normalized text (case, trailing ?) is the same query');
    assert.deepEqual(second.json.results, first.json.results);
  });

  it('runs 50 concurrent identical misses as one embedding and one scatter', async () => {
    const queriesBefore = await shardQueries();
    const batchesBefore = app.embedder.stats().batches;
    const responses = await Promise.all(Array.from({ length: 50 }, () => search({ query: 'salted water for pasta', k: 3 })));
    assert.ok(responses.every((r) => r.status === 200));
    const statuses = responses.map((r) => r.cache);
    assert.equal(statuses.filter((s) => s === 'miss').length, 1, statuses.join(','));
    assert.equal(statuses.filter((s) => s === 'coalesced').length + statuses.filter((s) => s === 'hit').length, 49);
    assert.equal(app.embedder.stats().batches - batchesBefore, 1, 'one embedding model call');
    assert.equal((await shardQueries()) - queriesBefore, 2, 'one query on each of the 2 shards');
  });

  it('misses right after an upsert through the gateway that changes the answer, and shows the new document', async () => {
    const query = { query: 'morning train tickets', k: 1 };
    assert.equal((await search(query)).json.results[0]?.document_id, 'trains.md');
    assert.equal((await search(query)).cache, 'hit');
    await app.documents.ingest('default', [{ id: 'trains-2026.md', text: 'Morning train tickets: the morning train tickets are sold online now.' }]);
    const after = await search(query);
    assert.equal(after.cache, 'miss');
    assert.equal(after.json.results[0]?.document_id, 'trains-2026.md');
  });

  it('notices a write made behind its back (straight to a shard) within the epoch poll interval', async () => {
    const query = { query: 'volcano lava', k: 5 };
    const before = await search(query);
    assert.equal((await search(query)).cache, 'hit');
    const { vectors } = await app.embedder.embed(['volcano lava erupts']);
    const direct = new HttpShardClient(shards.urls[0] as string, { label: 'direct' });
    await direct.upsert({
      chunks: [{ id: 'v#0', document_id: 'v', namespace: 'default', text: 'volcano lava erupts', vector: encodeVector(vectors[0] as Float32Array) }],
    });
    await direct.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = await search(query);
    assert.equal(after.cache, 'miss');
    assert.ok(after.json.results.some((hit) => hit.document_id === 'v'));
    assert.notDeepEqual(after.json.results, before.json.results);
  });

  it('bypass neither reads nor writes the cache; refresh recomputes and stores', async () => {
    const query = { query: 'fresh basil tomato sauce', k: 2 };
    assert.equal((await search({ ...query, cache: { mode: 'bypass' } })).cache, 'bypass');
    assert.equal((await search(query)).cache, 'miss', 'bypass stored nothing');
    assert.equal((await search(query)).cache, 'hit');
    assert.equal((await search(query, { 'x-ragway-cache-mode': 'bypass' })).cache, 'bypass', 'the header works too');
    assert.equal((await search({ ...query, cache: { mode: 'refresh' } })).cache, 'miss');
    assert.equal((await search(query)).cache, 'hit', 'refresh stored its result');
    const bad = await search({ ...query, cache: { mode: 'sometimes' } });
    assert.equal(bad.status, 400);
  });

  it('replays a cached streamed answer with exactly the shapes of a live one', async () => {
    const body = { query: 'how long do cache entries live', stream: true, model: 'ragway-extractive' };
    const live = await post('/v1/query', body);
    const liveFrames = await sseFrames(live.body);
    const replay = await post('/v1/query', body);
    const replayFrames = await sseFrames(replay.body);
    assert.equal(live.cache, 'miss');
    assert.equal(replay.cache, 'hit');
    assert.deepEqual(replayFrames.map((f) => f.event), liveFrames.map((f) => f.event));
    assert.deepEqual(replayFrames.map((f) => shape(JSON.parse(f.data))), liveFrames.map((f) => shape(JSON.parse(f.data))));
    const text = (frames: Frame[]) => frames.filter((f) => f.event === 'delta').map((f) => JSON.parse(f.data).text).join('');
    assert.equal(text(replayFrames), text(liveFrames));

    const chat = { model: 'ragway-extractive', messages: [{ role: 'user', content: 'how long do cache entries live' }], stream: true, stream_options: { include_usage: true } };
    const liveChat = await sseFrames((await post('/v1/chat/completions', chat)).body);
    const replayChat = await post('/v1/chat/completions', chat);
    const replayChatFrames = await sseFrames(replayChat.body);
    assert.equal(replayChat.cache, 'hit');
    assert.equal(replayChatFrames.at(-1)?.data, '[DONE]');
    assert.deepEqual(
      replayChatFrames.slice(0, -1).map((f) => shape(JSON.parse(f.data))),
      liveChat.slice(0, -1).map((f) => shape(JSON.parse(f.data))),
    );
  });

  it('keeps the retrieval layer under its byte budget through a flood of distinct queries', async () => {
    const layer = app.caches.retrieval;
    assert.ok(layer);
    for (let i = 0; i < 150; i += 1) {
      const response = await search({ query: `distinct question number ${i} about trains and pasta`, k: 3 });
      assert.equal(response.status, 200);
      assert.ok(layer.stats().bytes <= layer.maxBytes, `${layer.stats().bytes} > ${layer.maxBytes}`);
    }
    assert.ok(layer.stats().evictions.evict > 0, 'the budget forced evictions');
    const metrics = await (await request(`${base}/metrics`)).body.text();
    assert.match(metrics, /ragway_cache_lookups_total\{layer="retrieval",result="hit"\} \d+/);
    assert.match(metrics, /ragway_cache_evictions_total\{layer="retrieval",reason="evict"\} \d+/);
    assert.match(metrics, /ragway_cache_bytes\{layer="retrieval"\} \d+/);
  });

  it('serves a paraphrase from the semantic cache, but not a question that differs in meaning', async () => {
    const ask = (query: string) => post('/v1/query', { query, model: 'ragway-extractive' });
    const first = await ask('how many minutes should I boil the pasta in salted water');
    assert.equal(first.cache, 'miss');
    await first.body.dump();
    const paraphrase = await ask('In salted water, how many minutes should I boil the pasta?');
    assert.equal(paraphrase.cache, 'hit');
    assert.ok(Number(paraphrase.similarity) >= 0.92, `semantic hit similarity ${paraphrase.similarity}`);
    assert.equal(first.similarity, undefined, 'an exact lookup names no similarity');
    await paraphrase.body.dump();
    const negated = await ask('how many minutes should I not boil the pasta in salted water');
    const negatedBody = await negated.body.text();
    assert.equal(negated.cache, 'miss', negatedBody);
    const metrics = await (await request(`${base}/metrics`)).body.text();
    assert.match(metrics, /ragway_semantic_cache_nearest_similarity_count [1-9]/);
    assert.match(metrics, /ragway_semantic_cache_lookups_total\{outcome="guard"\} [1-9]/);
  });
});
