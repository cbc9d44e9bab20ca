// Sharded BM25 equals single-index BM25 when the gateway sends global term statistics (the
// DFS phase), through real IndexStores behind the same Scatter the gateway uses.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { InProcessShardClient } from '../../../retriever/in-process-shard-client.js';
import { searchLexical } from '../../../retriever/lexical-search.js';
import { Scatter, type ChunkInput } from '../../../retriever/scatter.js';
import { IndexStore } from '../../../shards/index-store.js';
import type { ShardHit } from '../../../shards/protocol.js';
import { mulberry32, randomUnitVectors } from '../../helpers/random.js';

const DIM = 8;
const DOCS = 800;
const K = 10;
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

// Zipf-like draws from a made-up vocabulary: frequent and rare terms, varied lengths.
const VOCABULARY = Array.from({ length: 300 }, (_, i) => `w${i.toString(36)}x`);
function corpus(seed: number): ChunkInput[] {
  const random = mulberry32(seed);
  const vectors = randomUnitVectors(DOCS, DIM, seed + 1);
  return vectors.map((vector, i) => {
    const length = 5 + Math.floor(random() * 60);
    const words = Array.from({ length }, () => VOCABULARY[Math.floor(VOCABULARY.length * random() ** 2.5)] as string);
    return {
      id: `c${i}`,
      document_id: `d${i}`,
      namespace: 'default',
      text: words.join(' '),
      metadata: { parity: i % 2 === 0 ? 'even' : 'odd' },
      vector,
    };
  });
}

async function shardSet(shards: number, chunks: ChunkInput[]): Promise<Scatter> {
  const stores = Array.from({ length: shards }, () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ragway-lexical-'));
    dirs.push(dataDir);
    return IndexStore.open({ dataDir, dim: DIM, space: 'ip', autoSaveMs: 0 });
  });
  const scatter = new Scatter(stores.map((store, i) => new InProcessShardClient(store, { label: `shard-${i}` })));
  await scatter.upsertChunks(chunks);
  return scatter;
}

function queries(seed: number, count: number): string[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, () =>
    Array.from({ length: 1 + Math.floor(random() * 4) }, () => VOCABULARY[Math.floor(VOCABULARY.length * random())] as string).join(' '),
  );
}

/**
 * Scores must match exactly, place by place. Equal scores may be ordered differently (each
 * store breaks ties by its own labels), so ids are compared per score, and ids tied at the
 * k-th score are left out (which of them made the cut is a tie-break, not a ranking).
 */
function assertSameTopK(sharded: readonly ShardHit[], single: readonly ShardHit[], query: string): void {
  assert.deepEqual(
    sharded.map((hit) => hit.score),
    single.map((hit) => hit.score),
    `scores for "${query}"`,
  );
  const last = single.at(-1)?.score;
  const above = (hits: readonly ShardHit[]): string[] =>
    hits
      .filter((hit) => hit.score !== last)
      .map((hit) => `${hit.score}:${hit.id}`)
      .sort();
  assert.deepEqual(above(sharded), above(single), `ids for "${query}"`);
}

describe('lexical search across shards', () => {
  const chunks = corpus(7);
  const asked = queries(11, 40);

  it('sharded BM25 top-k equals single-index BM25 top-k with global statistics', async () => {
    const single = await shardSet(1, chunks);
    const sharded = await shardSet(4, chunks);
    let nonEmpty = 0;
    for (const text of asked) {
      const one = await searchLexical(single, text, { k: K, namespace: 'default' });
      const four = await searchLexical(sharded, text, { k: K, namespace: 'default' });
      if (one.hits.length > 0) nonEmpty += 1;
      assert.equal(four.termStats?.doc_count, DOCS, 'the statistics cover every shard');
      assertSameTopK(four.hits, one.hits, text);
    }
    assert.ok(nonEmpty >= asked.length / 2, `most queries match something (${nonEmpty})`);
  });

  it('without global statistics the shards disagree (what the DFS phase fixes)', async () => {
    const single = await shardSet(1, chunks);
    const sharded = await shardSet(4, chunks);
    let differ = 0;
    for (const text of asked) {
      const one = await searchLexical(single, text, { k: K, namespace: 'default' });
      // Each shard scoring with its own statistics: the naive scatter.
      const local = await sharded.search(undefined, { k: K, namespace: 'default', lexical: { text } });
      if (JSON.stringify(local.hits.map((h) => h.score)) !== JSON.stringify(one.hits.map((h) => h.score))) differ += 1;
    }
    assert.ok(differ > 0, 'local statistics give different scores');
  });

  it('applies metadata filters and namespaces', async () => {
    const sharded = await shardSet(3, chunks);
    const text = asked[0] as string;
    const filtered = await searchLexical(sharded, text, { k: K, namespace: 'default', filter: { parity: 'odd' } });
    assert.ok(filtered.hits.length > 0);
    for (const hit of filtered.hits) assert.equal(hit.metadata?.parity, 'odd');
    const elsewhere = await searchLexical(sharded, text, { k: K, namespace: 'other' });
    assert.deepEqual(elsewhere.hits, []);
    assert.equal(elsewhere.namespaceFound, false);
  });
});
