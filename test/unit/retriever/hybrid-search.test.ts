// Hybrid search ranks candidate lists that carry no text, then fetches text and metadata for
// the fused winners only: the answer is the one full candidate lists would give, and a chunk
// deleted between the two phases is left out rather than returned empty. Real IndexStores
// behind the Scatter the gateway uses; the recording wrapper only watches the calls.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { searchByMode, type ModeOptions } from '../../../retriever/hybrid-search.js';
import { InProcessShardClient } from '../../../retriever/in-process-shard-client.js';
import type { ShardSearch } from '../../../retriever/lexical-search.js';
import { Scatter, type ChunkInput, type SearchOptions } from '../../../retriever/scatter.js';
import { IndexStore } from '../../../shards/index-store.js';
import { mulberry32, randomUnitVectors } from '../../helpers/random.js';

const DIM = 8;
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const WORDS = ['vitamin', 'bone', 'fracture', 'runner', 'knee', 'market', 'stock', 'heal', 'constructor', 'proto'];
function corpus(count: number): ChunkInput[] {
  const random = mulberry32(5);
  return randomUnitVectors(count, DIM, 9).map((vector, i) => ({
    id: `c${i}`,
    document_id: `d${i}`,
    namespace: 'default',
    text: Array.from({ length: 4 + (i % 7) }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' '),
    metadata: { i },
    vector,
  }));
}

async function shardSet(shards: number, chunks: ChunkInput[]): Promise<Scatter> {
  const stores = Array.from({ length: shards }, () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ragway-hybrid-'));
    dirs.push(dataDir);
    return IndexStore.open({ dataDir, dim: DIM, space: 'ip', autoSaveMs: 0 });
  });
  const scatter = new Scatter(stores.map((store, i) => new InProcessShardClient(store, { label: `shard-${i}` })));
  await scatter.upsertChunks(chunks);
  return scatter;
}

/** Forwards to the scatter, keeping the options of every call; `beforeFetch` runs ahead of an ids call. */
function recording(scatter: Scatter, beforeFetch?: () => Promise<void>): ShardSearch & { calls: SearchOptions[] } {
  const calls: SearchOptions[] = [];
  return {
    calls,
    async search(vector, options, signal) {
      calls.push(options);
      if (options.ids !== undefined) await beforeFetch?.();
      return scatter.search(vector, options, signal);
    },
  };
}

describe('hybrid search', () => {
  const chunks = corpus(60);
  const byId = new Map(chunks.map((chunk) => [chunk.id, chunk]));
  const query = { vector: randomUnitVectors(1, DIM, 77)[0] as Float32Array, text: 'vitamin bone constructor' };
  const hybrid: ModeOptions = { mode: 'hybrid', candidates: 40 };

  it('ranks without text and fetches text and metadata for the k winners only', async () => {
    const scatter = await shardSet(2, chunks);
    const shards = recording(scatter);
    const result = await searchByMode(shards, query, { k: 5, namespace: 'default' }, hybrid);
    assert.equal(result.hits.length, 5);
    for (const hit of result.hits) {
      const chunk = byId.get(hit.id);
      assert.equal(hit.text, chunk?.text);
      assert.deepEqual(hit.metadata, chunk?.metadata);
      assert.ok(hit.score > 0);
    }
    const ranking = shards.calls.filter((call) => call.ids === undefined);
    assert.ok(ranking.length >= 2);
    for (const call of ranking) {
      assert.equal(call.includeText, false);
      assert.equal(call.includeMetadata, false);
    }
    const fetches = shards.calls.filter((call) => call.ids !== undefined);
    assert.deepEqual(fetches.map((call) => call.ids), [result.hits.map((hit) => hit.id)]);

    // The same ranking as asking for ids and scores alone (no fetch at all then).
    const bare = recording(scatter);
    const idsOnly = await searchByMode(bare, query, { k: 5, namespace: 'default', includeText: false, includeMetadata: false }, hybrid);
    assert.deepEqual(
      idsOnly.hits.map((hit) => [hit.id, hit.score]),
      result.hits.map((hit) => [hit.id, hit.score]),
    );
    assert.equal(bare.calls.filter((call) => call.ids !== undefined).length, 0);
    for (const hit of idsOnly.hits) assert.equal(hit.text, undefined);
  });

  it('keeps MMR working (vectors in the candidate lists, text fetched after)', async () => {
    const scatter = await shardSet(2, chunks);
    const result = await searchByMode(scatter, query, { k: 4, namespace: 'default' }, { ...hybrid, mmrLambda: 0.5 });
    assert.equal(result.hits.length, 4);
    for (const hit of result.hits) {
      assert.equal(hit.text, byId.get(hit.id)?.text);
      assert.equal(hit.vector, undefined);
    }
  });

  it('leaves out a winner deleted before its text was fetched', async () => {
    const scatter = await shardSet(2, chunks);
    const first = await searchByMode(scatter, query, { k: 5, namespace: 'default' }, hybrid);
    const doomed = first.hits[1]?.document_id as string;
    const shards = recording(scatter, async () => {
      await scatter.deleteDocuments('default', [doomed]);
    });
    const result = await searchByMode(shards, query, { k: 5, namespace: 'default' }, hybrid);
    assert.deepEqual(
      result.hits.map((hit) => hit.id),
      first.hits.filter((hit) => hit.document_id !== doomed).map((hit) => hit.id),
    );
    for (const hit of result.hits) assert.equal(hit.text, byId.get(hit.id)?.text);
  });

  it('sums BM25 statistics for a term that names an Object property ("constructor")', async () => {
    const single = await shardSet(1, chunks);
    const sharded = await shardSet(2, chunks);
    const search = (shards: Scatter) => searchByMode(shards, { vector: undefined, text: 'constructor' }, { k: 3, namespace: 'default' }, { mode: 'lexical' });
    const [one, two] = [await search(single), await search(sharded)];
    assert.equal(two.hits.length, 3);
    for (const hit of two.hits) {
      assert.match(hit.text ?? '', /constructor/);
      assert.ok(Number.isFinite(hit.score), `score ${hit.score}`);
    }
    assert.deepEqual(
      two.hits.map((hit) => hit.score),
      one.hits.map((hit) => hit.score),
    );
  });
});
