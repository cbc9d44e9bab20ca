// Retrieval by mode: vector (ANN), lexical (BM25 with global statistics) or hybrid — both
// candidate lists from every shard, fused by reciprocal rank fusion (or a weighted sum of
// normalized scores when `alpha` is given) — optionally diversified by MMR. The candidate
// lists are the shards' merged top-`candidates`, so fusion sees far more than the final k.
//
// Those candidate lists travel as ids and scores only: with text, a hybrid search moved
// 2 lists × shards × `candidates` chunk texts to keep k of them, and serializing and parsing
// that JSON was most of its cost. The fused top k are then fetched by id (an "ids" query, one
// more round trip carrying k chunks). A chunk deleted between the two phases is left out of
// the answer rather than returned without its text.
import { decodeVector, type Bm25Params, type ShardHit } from '../shards/protocol.js';
import { maximalMarginalRelevance, reciprocalRankFusion, weightedFusion } from './fusion.js';
import { searchLexical, type ShardSearch } from './lexical-search.js';
import type { Coverage, ScatterSearchResult, SearchOptions } from './scatter.js';

export type RetrievalMode = 'vector' | 'lexical' | 'hybrid';

export interface ModeOptions {
  mode: RetrievalMode;
  /** Hybrid and MMR: how many candidates each list contributes (at least k). */
  candidates?: number | undefined;
  /** RRF's k (default 60). */
  rrfK?: number | undefined;
  /** Weighted fusion instead of RRF: alpha × vector + (1 − alpha) × lexical, scores min-max normalized. */
  alpha?: number | undefined;
  /** MMR diversity: lambda 1 = pure relevance; applied to the top `candidates`. */
  mmrLambda?: number | undefined;
  bm25?: Bm25Params | undefined;
}

export const DEFAULT_CANDIDATES = 100;

export async function searchByMode(
  shards: ShardSearch,
  input: { vector: Float32Array | undefined; text: string | undefined },
  options: Omit<SearchOptions, 'lexical'>,
  mode: ModeOptions,
  signal?: AbortSignal,
): Promise<ScatterSearchResult> {
  const { k } = options;
  const mmr = mode.mmrLambda !== undefined && mode.mmrLambda < 1;
  const pool = mode.mode === 'hybrid' || mmr ? Math.max(k, mode.candidates ?? DEFAULT_CANDIDATES) : k;
  // Text and metadata are fetched after fusion, for the k winners only.
  const deferred = pool > k && (options.includeText !== false || options.includeMetadata !== false);
  const base = { ...options, k: pool, ...(mmr ? { includeVectors: true } : {}), ...(deferred ? { includeText: false, includeMetadata: false } : {}) };
  let result: ScatterSearchResult;
  if (mode.mode === 'vector') {
    result = await shards.search(input.vector, base, signal);
  } else if (mode.mode === 'lexical') {
    result = await searchLexical(shards, input.text ?? '', { ...base, ...(mode.bm25 ? { bm25: mode.bm25 } : {}) }, signal);
  } else {
    const [vector, lexical] = await Promise.all([
      shards.search(input.vector, base, signal),
      searchLexical(shards, input.text ?? '', { ...base, ...(mode.bm25 ? { bm25: mode.bm25 } : {}) }, signal),
    ]);
    const limit = mmr ? pool : k;
    const hits =
      mode.alpha !== undefined
        ? weightedFusion(vector.hits, lexical.hits, mode.alpha, limit)
        : reciprocalRankFusion([vector.hits, lexical.hits], limit, mode.rrfK);
    result = {
      hits,
      namespaceFound: vector.namespaceFound || lexical.namespaceFound,
      coverage: worseCoverage(vector.coverage, lexical.coverage),
      epochs: vector.epochs.map((epoch, i) => Math.max(epoch, lexical.epochs[i] ?? -1)),
      tookMs: vector.tookMs.map((ms, i) => ms + (lexical.tookMs[i] ?? 0)),
    };
  }
  let winners: ScatterSearchResult;
  if (!mmr) {
    winners = { ...result, hits: result.hits.slice(0, k) };
  } else {
    const vectors = new Map<string, Float32Array>();
    for (const hit of result.hits) {
      const decoded = hit.vector === undefined ? undefined : decodeVector(hit.vector);
      if (decoded !== undefined) vectors.set(hit.id, decoded);
    }
    const diverse = maximalMarginalRelevance(result.hits, vectors, mode.mmrLambda as number, k);
    winners = { ...result, hits: diverse.map(withoutVector) };
  }
  return deferred ? fetchChunks(shards, winners, options, signal) : winners;
}

/** Fills in the text and metadata of ranked hits (fetched by id), keeping their order and scores. */
async function fetchChunks(shards: ShardSearch, ranked: ScatterSearchResult, options: Omit<SearchOptions, 'lexical'>, signal?: AbortSignal): Promise<ScatterSearchResult> {
  if (ranked.hits.length === 0) return ranked;
  const ids = ranked.hits.map((hit) => hit.id);
  const fetched = await shards.search(undefined, { ...options, k: ids.length, ids }, signal);
  const byId = new Map(fetched.hits.map((hit) => [hit.id, hit]));
  const hits: ShardHit[] = [];
  for (const hit of ranked.hits) {
    const chunk = byId.get(hit.id);
    if (chunk === undefined) continue;
    const filled: ShardHit = { ...hit };
    if (chunk.text !== undefined) filled.text = chunk.text;
    if (chunk.metadata !== undefined) filled.metadata = chunk.metadata;
    hits.push(filled);
  }
  return {
    hits,
    namespaceFound: ranked.namespaceFound,
    coverage: worseCoverage(ranked.coverage, fetched.coverage),
    epochs: ranked.epochs.map((epoch, i) => Math.max(epoch, fetched.epochs[i] ?? -1)),
    tookMs: ranked.tookMs.map((ms, i) => ms + (fetched.tookMs[i] ?? 0)),
  };
}

function withoutVector(hit: ShardHit): ShardHit {
  if (hit.vector === undefined) return hit;
  const { vector: _vector, ...rest } = hit;
  return rest;
}

function worseCoverage(a: Coverage, b: Coverage): Coverage {
  if (!a.partial && !b.partial) return a;
  return a.shards_ok <= b.shards_ok ? a : b;
}
