import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createError } from '../../../core/errors.js';
import { InProcessShardClient } from '../../../retriever/in-process-shard-client.js';
import { mergeTopK } from '../../../retriever/merge.js';
import { Scatter, type ChunkInput } from '../../../retriever/scatter.js';
import type { ShardHit } from '../../../shards/protocol.js';
import { IndexStore, type IndexStoreOptions } from '../../../shards/index-store.js';
import { hasCode } from '../../helpers/errors.js';
import { BrokenShardClient, StuckShardClient } from '../../helpers/fake-shard-clients.js';
import { mulberry32 } from '../../helpers/random.js';

const DIM = 48;
const COUNT = 10_000;
const QUERIES = 150;
const CLUSTERS = 50;
const K = 10;
const NS = 'corpus';
// Deliberately modest HNSW settings: a single index then misses some true neighbours, so
// "sharding loses no recall" is a real comparison rather than 1.0 ≥ 1.0 − 0.01.
const HNSW = { m: 16, efConstruction: 100, efSearch: 16 } as const;

/** Clustered unit vectors (real embeddings cluster by topic; uniform ones make HNSW look too easy). */
function clusteredUnitVectors(count: number, seed: number, centers: readonly Float32Array[]): Float32Array[] {
  const random = mulberry32(seed);
  const gaussian = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return Array.from({ length: count }, () => {
    const center = centers[Math.floor(random() * centers.length)] as Float32Array;
    return normalize(center.map((x) => x + (gaussian() * 1.05) / Math.sqrt(DIM)));
  });
}

function normalize(vector: Float32Array): Float32Array {
  let norm = 0;
  for (const x of vector) norm += x * x;
  norm = Math.sqrt(norm);
  return vector.map((x) => x / norm);
}

function makeCenters(seed: number): Float32Array[] {
  const random = mulberry32(seed);
  const gaussian = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return Array.from({ length: CLUSTERS }, () => normalize(Float32Array.from({ length: DIM }, gaussian)));
}

// Same arithmetic as the store's exact scan for space "ip" (float32 inputs, double sum, same
// order), so scores compare bit for bit.
function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let d = 0; d < a.length; d++) sum += (a[d] as number) * (b[d] as number);
  return sum;
}

interface Item {
  id: string;
  documentId: string;
  vector: Float32Array;
}

function bruteForce(items: readonly Item[], query: Float32Array, k: number): ShardHit[] {
  return items
    .map((item) => ({ id: item.id, document_id: item.documentId, score: dot(query, item.vector) }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}

/** Top-k of a subset by insertion into a short sorted list: the shard-side exact search. */
function topIndices(indices: readonly number[], scores: Float64Array, k: number): number[] {
  const top: number[] = [];
  for (const i of indices) {
    const score = scores[i] as number;
    if (top.length === k && score <= (scores[top[k - 1] as number] as number)) continue;
    let at = top.length;
    while (at > 0 && (scores[top[at - 1] as number] as number) < score) at -= 1;
    top.splice(at, 0, i);
    if (top.length > k) top.pop();
  }
  return top;
}

function recallAt(results: readonly (readonly ShardHit[])[], truth: readonly (readonly ShardHit[])[]): number {
  let found = 0;
  let total = 0;
  results.forEach((hits, q) => {
    const expected = new Set((truth[q] ?? []).map((hit) => hit.id));
    total += expected.size;
    for (const hit of hits) if (expected.has(hit.id)) found += 1;
  });
  return found / total;
}

interface ShardSetFixture {
  scatter: Scatter;
  stores: IndexStore[];
  dirs: string[];
}

function openShardSet(shards: number, options: Omit<IndexStoreOptions, 'dataDir' | 'dim' | 'space'>, observer = {}): ShardSetFixture {
  const dirs = Array.from({ length: shards }, () => mkdtempSync(join(tmpdir(), 'ragway-scatter-')));
  const stores = dirs.map((dataDir) => IndexStore.open({ dataDir, dim: DIM, space: 'ip', autoSaveMs: 0, ...options }));
  const clients = stores.map((store, i) => new InProcessShardClient(store, { label: `shard-${i}` }));
  return { scatter: new Scatter(clients, observer), stores, dirs };
}

function dropShardSet(fixture: ShardSetFixture): void {
  // Not store.close(): that would snapshot 10k vectors to disk only to delete them.
  for (const dir of fixture.dirs) rmSync(dir, { recursive: true, force: true });
}

describe('Scatter over in-process shards (10k clustered vectors)', () => {
  const centers = makeCenters(1);
  const vectors = clusteredUnitVectors(COUNT, 2, centers);
  const queries = clusteredUnitVectors(QUERIES, 3, centers);
  const items: Item[] = vectors.map((vector, i) => ({ id: `chunk-${i}`, documentId: `doc-${i}`, vector }));
  const chunks: ChunkInput[] = items.map((item) => ({
    id: item.id,
    document_id: item.documentId,
    namespace: NS,
    text: '',
    vector: item.vector,
  }));
  const truth = queries.map((query) => bruteForce(items, query, K));
  const fixtures: ShardSetFixture[] = [];

  async function loaded(shards: number, options: Omit<IndexStoreOptions, 'dataDir' | 'dim' | 'space'>): Promise<ShardSetFixture> {
    const fixture = openShardSet(shards, { initialCapacity: COUNT, ...options });
    fixtures.push(fixture);
    await fixture.scatter.upsertChunks(chunks);
    return fixture;
  }

  async function searchAll(scatter: Scatter, k: number): Promise<ShardHit[][]> {
    const batch = await scatter.searchBatch(
      queries.map((vector) => ({ vector, k, namespace: NS })),
      { includeText: false, includeMetadata: false },
    );
    return batch.results.map((result) => result.hits);
  }

  after(() => fixtures.forEach(dropShardSet));

  it('merging each shard’s exact top-k equals the exact top-k of one index', () => {
    // Scores are computed once per query; each side then selects its own top-k from them.
    const scores = queries.map((query) => Float64Array.from(items, (item) => dot(query, item.vector)));
    const globalOrder = scores.map((s) => Array.from(s.keys()).sort((a, b) => (s[b] as number) - (s[a] as number)));
    const asHits = (indices: readonly number[], s: Float64Array): ShardHit[] =>
      indices.map((i) => ({ id: (items[i] as Item).id, document_id: (items[i] as Item).documentId, score: s[i] as number }));

    for (const shards of [2, 3, 4, 7]) {
      const router = new Scatter(Array.from({ length: shards }, (_, i) => new BrokenShardClient(`shard-${i}`)));
      const partitions = Array.from({ length: shards }, () => [] as number[]);
      items.forEach((item, i) => partitions[router.shardFor(item.documentId)]?.push(i));
      assert.ok(partitions.every((p) => p.length > COUNT / shards / 2), `${shards} shards: ${partitions.map((p) => p.length)}`);
      for (const k of [1, K, 100]) {
        scores.forEach((s, q) => {
          const merged = mergeTopK(
            partitions.map((partition) => asHits(topIndices(partition, s, k), s)),
            k,
          );
          const single = asHits((globalOrder[q] as number[]).slice(0, k), s);
          assert.deepEqual(merged, single, `${shards} shards, k=${k}, query ${q}`);
        });
      }
    }
  });

  it('the same holds end to end through the shards’ own exact scan', async () => {
    // A brute-force threshold above the corpus size makes every shard scan exactly.
    const exact = { ...HNSW, bruteForceThreshold: COUNT + 1 };
    const single = await searchAll((await loaded(1, exact)).scatter, K);
    const sharded = await searchAll((await loaded(4, exact)).scatter, K);
    assert.deepEqual(sharded, single);
    assert.deepEqual(single, truth);
  });

  it('HNSW recall@10 over 2 and 4 shards is no worse than one index (within 0.01)', async (t) => {
    const graph = { ...HNSW, bruteForceThreshold: 0 };
    const single = recallAt(await searchAll((await loaded(1, graph)).scatter, K), truth);
    const recalls = new Map<number, number>();
    for (const shards of [2, 4]) {
      recalls.set(shards, recallAt(await searchAll((await loaded(shards, graph)).scatter, K), truth));
    }
    const report = `recall@10 single=${single.toFixed(4)} 2 shards=${recalls.get(2)?.toFixed(4)} 4 shards=${recalls.get(4)?.toFixed(4)}`;
    t.diagnostic(report);
    assert.ok(single > 0.5 && single < 1, `the single index should be approximate but sane: ${report}`);
    for (const [shards, recall] of recalls) assert.ok(recall >= single - 0.01, `${shards} shards lost recall: ${report}`);
  });
});

describe('Scatter behaviour', () => {
  const centers = makeCenters(11);
  const vectors = clusteredUnitVectors(300, 12, centers);
  // Three chunks per document, so routing must keep a document's chunks together.
  const chunks: ChunkInput[] = vectors.map((vector, i) => ({
    id: `c-${i}`,
    document_id: `doc-${Math.floor(i / 3)}`,
    namespace: NS,
    text: `chunk ${i}`,
    metadata: { n: i, parity: i % 2 === 0 ? 'even' : 'odd' },
    vector,
  }));
  const observed: [number, number, boolean][] = [];
  let fixture: ShardSetFixture;

  before(async () => {
    fixture = openShardSet(3, {}, { onShardLatency: (shard: number, seconds: number, ok: boolean) => observed.push([shard, seconds, ok]) });
    const summary = await fixture.scatter.upsertChunks(chunks);
    assert.equal(summary.upserted, chunks.length);
  });

  after(() => dropShardSet(fixture));

  it('routes every chunk of a document to the shard that owns it', async () => {
    const stats = await fixture.scatter.stats();
    assert.equal(stats.length, 3);
    const expected = [0, 0, 0];
    for (const chunk of chunks) expected[fixture.scatter.shardFor(chunk.document_id)]! += 1;
    assert.deepEqual(
      stats.map((s) => s.count),
      expected,
    );
    assert.ok(expected.every((count) => count > 0));
    for (const chunk of chunks.slice(0, 30)) {
      const owner = fixture.stores[fixture.scatter.shardFor(chunk.document_id)];
      assert.ok(owner?.getDocument(NS, chunk.document_id)?.chunks.some((c) => c.id === chunk.id));
    }
  });

  it('reports coverage, epochs, timings and the observer per shard', async () => {
    observed.length = 0;
    const result = await fixture.scatter.search(vectors[5] as Float32Array, { k: 5, namespace: NS });
    assert.deepEqual(result.coverage, { shards_total: 3, shards_ok: 3, partial: false });
    assert.equal(result.namespaceFound, true);
    assert.equal(result.hits.length, 5);
    assert.equal(result.hits[0]?.id, 'c-5');
    assert.equal(result.hits[0]?.text, 'chunk 5');
    assert.deepEqual(
      result.epochs,
      fixture.stores.map((store) => store.currentEpoch),
    );
    assert.equal(result.tookMs.length, 3);
    assert.ok(result.tookMs.every((ms) => ms >= 0));
    assert.deepEqual(observed.map(([shard, , ok]) => [shard, ok]).sort(), [
      [0, true],
      [1, true],
      [2, true],
    ]);
  });

  it('batches several queries, each merged on its own', async () => {
    const batch = await fixture.scatter.searchBatch([
      { vector: vectors[7] as Float32Array, k: 3, namespace: NS },
      { vector: vectors[8] as Float32Array, k: 4, namespace: NS, filter: { parity: 'odd' } },
      { vector: vectors[8] as Float32Array, k: 4, namespace: 'missing' },
    ]);
    assert.equal(batch.results.length, 3);
    assert.equal(batch.results[0]?.hits[0]?.id, 'c-7');
    assert.equal(batch.results[0]?.hits.length, 3);
    assert.equal(batch.results[1]?.hits.length, 4);
    assert.ok(batch.results[1]?.hits.every((hit) => hit.metadata?.['parity'] === 'odd'));
    assert.deepEqual(batch.results[2], { hits: [], namespaceFound: false });
  });

  it('a shard’s 4xx (invalid filter) passes through unchanged', async () => {
    await assert.rejects(
      fixture.scatter.search(vectors[0] as Float32Array, { k: 3, namespace: NS, filter: { n: { $near: 3 } } }),
      hasCode('RAGWAY_ERR_INVALID_FILTER', /\$near/),
    );
  });

  it('getDocument asks the owning shard; deleteDocuments removes on the owners', async () => {
    const document = await fixture.scatter.getDocument(NS, 'doc-4');
    assert.deepEqual(document?.chunks.map((c) => c.id), ['c-12', 'c-13', 'c-14']);
    assert.equal(await fixture.scatter.getDocument(NS, 'doc-nope'), undefined);

    const deleted = await fixture.scatter.deleteDocuments(NS, ['doc-4', 'doc-5', 'doc-5', 'doc-unknown']);
    assert.equal(deleted.documentsDeleted, 2);
    assert.equal(deleted.chunksDeleted, 6);
    assert.equal(await fixture.scatter.getDocument(NS, 'doc-4'), undefined);
    const hits = (await fixture.scatter.search(vectors[12] as Float32Array, { k: 20, namespace: NS })).hits;
    assert.ok(!hits.some((hit) => hit.document_id === 'doc-4'));
    const touched = deleted.epochs.flatMap((epoch, shard) => (epoch === undefined ? [] : [shard])).sort();
    assert.deepEqual(touched, [...new Set(['doc-4', 'doc-5', 'doc-unknown'].map((id) => fixture.scatter.shardFor(id)))].sort());
  });

  it('a failing shard is left out and named in coverage; the others still answer', async () => {
    const failures: [number, boolean][] = [];
    const scatter = new Scatter(
      [new InProcessShardClient(fixture.stores[0] as IndexStore, { label: 'shard-0' }), new BrokenShardClient('shard-1 (broken)')],
      { onShardLatency: (shard, _seconds, ok) => failures.push([shard, ok]) },
    );
    const result = await scatter.search(vectors[0] as Float32Array, { k: 3, namespace: NS });
    assert.equal(result.hits.length, 3);
    assert.equal(result.coverage.partial, true);
    assert.equal(result.coverage.shards_total, 2);
    assert.equal(result.coverage.shards_ok, 1);
    assert.equal(result.coverage.missing?.length, 1);
    assert.equal(result.coverage.missing?.[0]?.shard, 1);
    assert.equal(result.coverage.missing?.[0]?.code, 'RAGWAY_ERR_SHARD_UNAVAILABLE');
    assert.match(result.coverage.missing?.[0]?.reason ?? '', /shard-1 \(broken\).*disk on fire/);
    assert.deepEqual(result.epochs, [fixture.stores[0]?.currentEpoch, -1]);
    assert.deepEqual(failures.sort(), [
      [0, true],
      [1, false],
    ]);
    // With no shard left there is nothing to answer with.
    const none = new Scatter([new BrokenShardClient('shard-0 (broken)'), new BrokenShardClient('shard-1 (broken)')]);
    await assert.rejects(
      none.search(vectors[0] as Float32Array, { k: 3, namespace: NS }),
      hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /no shard answered \(2 of 2 missing\).*shard-0 \(broken\).*shard-1 \(broken\)/),
    );
  });

  it('requireComplete fails with 503 naming the shard, and cancels the shards still running', async () => {
    const stuck = new StuckShardClient('shard-2 (stuck)');
    const failures: [number, boolean][] = [];
    const scatter = new Scatter(
      [new InProcessShardClient(fixture.stores[0] as IndexStore, { label: 'shard-0' }), new BrokenShardClient('shard-1 (broken)'), stuck],
      { onShardLatency: (shard, _seconds, ok) => failures.push([shard, ok]) },
    );
    await assert.rejects(
      scatter.search(vectors[0] as Float32Array, { k: 3, namespace: NS, requireComplete: true }),
      hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /search needs all 3 shards: shard-1 \(broken\).*disk on fire/),
    );
    assert.equal(stuck.aborted, 1, 'the call in flight to the stuck shard was aborted');
    // The broken shard is reported as failed; the cancelled one is not reported at all.
    assert.deepEqual(failures.sort(), [
      [0, true],
      [1, false],
    ]);
  });

  it('a shard that misses the deadline is left out at the deadline (504 when required)', async () => {
    const stuck = new StuckShardClient('shard-1 (stuck)');
    const scatter = new Scatter([new InProcessShardClient(fixture.stores[0] as IndexStore, { label: 'shard-0' }), stuck]);
    let started = performance.now();
    const result = await scatter.search(vectors[0] as Float32Array, { k: 3, namespace: NS, deadline: Date.now() + 60 });
    const waited = performance.now() - started;
    assert.ok(waited >= 50 && waited < 200, `waited ${waited} ms for a 60 ms budget`);
    assert.equal(stuck.aborted, 1);
    assert.deepEqual(result.coverage.missing?.map((m) => [m.shard, m.code]), [[1, 'RAGWAY_ERR_DEADLINE_EXCEEDED']]);
    assert.match(result.coverage.missing?.[0]?.reason ?? '', /shard-1 \(stuck\): no answer before the deadline/);

    started = performance.now();
    await assert.rejects(
      scatter.search(vectors[0] as Float32Array, { k: 3, namespace: NS, deadline: Date.now() + 40, requireComplete: true }),
      hasCode('RAGWAY_ERR_DEADLINE_EXCEEDED', /search needs all 2 shards: shard-1 \(stuck\)/),
    );
    assert.ok(performance.now() - started < 150);
    await assert.rejects(
      scatter.search(vectors[0] as Float32Array, { k: 3, namespace: NS, deadline: Date.now() - 1 }),
      hasCode('RAGWAY_ERR_DEADLINE_EXCEEDED'),
    );
  });

  it('a caller abort ends the scatter at once with the caller’s error', async () => {
    const stuck = new StuckShardClient('shard-1 (stuck)');
    const scatter = new Scatter([new InProcessShardClient(fixture.stores[0] as IndexStore), stuck]);
    const controller = new AbortController();
    const pending = scatter.search(vectors[0] as Float32Array, { k: 3, namespace: NS }, controller.signal);
    setTimeout(() => controller.abort(createError('RAGWAY_ERR_DEADLINE_EXCEEDED', 'deadline')), 10);
    await assert.rejects(pending, hasCode('RAGWAY_ERR_DEADLINE_EXCEEDED'));
    assert.equal(stuck.aborted, 1);
  });

  it('a failed write says how many shards it reached', async () => {
    const scatter = new Scatter([new InProcessShardClient(fixture.stores[0] as IndexStore, { label: 'shard-0' }), new BrokenShardClient('shard-1 (broken)')]);
    const twoShards = ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => ({ ...chunks[0]!, id: `w-${id}`, document_id: `w-${id}` }));
    assert.equal(new Set(twoShards.map((c) => scatter.shardFor(c.document_id))).size, 2);
    await assert.rejects(
      scatter.upsertChunks(twoShards),
      hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /upsert reached 1 of 2 shards.*shard-1 \(broken\).*disk on fire/),
    );
    await assert.rejects(scatter.stats(), hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /shard-1 \(broken\)/));
  });

  it('check() rejects a shard whose dimension differs from the model’s', async () => {
    const stats = await fixture.scatter.check(DIM);
    assert.equal(stats.length, 3);
    await assert.rejects(fixture.scatter.check(384), hasCode('RAGWAY_ERR_NOT_READY', /48-dimensional.*produces 384/));
  });

  it('rejects an empty or oversized batch, and a set without shards', async () => {
    await assert.rejects(fixture.scatter.searchBatch([]), hasCode('RAGWAY_ERR_INVALID_REQUEST'));
    const many = Array.from({ length: 1025 }, () => ({ vector: vectors[0] as Float32Array, k: 1, namespace: NS }));
    await assert.rejects(fixture.scatter.searchBatch(many), hasCode('RAGWAY_ERR_INVALID_REQUEST', /1024/));
    assert.throws(() => new Scatter([]), hasCode('RAGWAY_ERR_INVALID_REQUEST'));
  });
});
