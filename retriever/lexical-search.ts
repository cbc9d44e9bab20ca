// Lexical (BM25) search over every shard with global term statistics, as Elasticsearch's
// DFS query-then-fetch: phase 1 asks every shard for its document count, total length and
// per-term document frequencies for the query's terms (a stats-only query, a few hundred
// bytes), the scatter sums them; phase 2 sends the query with the sums, so each shard scores
// exactly as one index holding the whole namespace would, and the shards' top-k lists merge
// by score like vector hits. Both phases go through the same search path (replica choice,
// hedging, deadlines, coalescing), costing one extra round trip.
//
// A shard missing from phase 1 (partial coverage) leaves its documents out of the statistics;
// its hits in phase 2 are then scored with slightly different idf — labelled partial anyway.
import type { Bm25Params } from '../shards/protocol.js';
import type { ScatterSearchResult, SearchOptions } from './scatter.js';

export type ShardSearch = { search(vector: Float32Array | undefined, options: SearchOptions, signal?: AbortSignal): Promise<ScatterSearchResult> };

export async function searchLexical(
  shards: ShardSearch,
  text: string,
  options: Omit<SearchOptions, 'lexical'> & { bm25?: Bm25Params },
  signal?: AbortSignal,
): Promise<ScatterSearchResult> {
  const { bm25, ...rest } = options;
  const lexical = { text, ...(bm25 !== undefined ? { bm25 } : {}) };
  const phase1 = await shards.search(undefined, { ...rest, k: 1, lexical: { ...lexical, statsOnly: true } }, signal);
  if (phase1.termStats === undefined || phase1.termStats.doc_count === 0) {
    return { ...phase1, hits: [] };
  }
  const phase2 = await shards.search(undefined, { ...rest, lexical: { ...lexical, stats: phase1.termStats } }, signal);
  // The statistics every hit was scored with (shards return none in phase 2).
  return { ...phase2, termStats: phase1.termStats };
}
