// Combining ranked lists (hybrid search) and diversifying one (MMR). Pure and synchronous,
// tested table-driven like merge.ts. Every function keeps ties stable: equal fused scores
// keep the order in which ids were first seen (earlier list first, then better rank).
import type { ShardHit } from '../shards/protocol.js';

export const DEFAULT_RRF_K = 60;

interface Tally {
  hit: ShardHit;
  score: number;
  order: number;
}

function ranked(tallies: Map<string, Tally>, limit: number): ShardHit[] {
  return [...tallies.values()]
    .sort((a, b) => b.score - a.score || a.order - b.order)
    .slice(0, Math.max(0, limit))
    .map(({ hit, score }) => ({ ...hit, score }));
}

/**
 * Reciprocal rank fusion (Cormack et al. 2009): score(d) = Σ over lists of 1 / (k + rank),
 * rank starting at 1; a list without d adds nothing. Scales of the input scores do not matter.
 * A list repeating an id counts its first (best) rank only.
 */
export function reciprocalRankFusion(lists: readonly (readonly ShardHit[])[], limit: number, rrfK = DEFAULT_RRF_K): ShardHit[] {
  if (!(rrfK >= 0)) throw new RangeError(`rrf_k must be ≥ 0 (got ${rrfK})`);
  const tallies = new Map<string, Tally>();
  let order = 0;
  for (const list of lists) {
    const seen = new Set<string>();
    list.forEach((hit, index) => {
      if (seen.has(hit.id)) return;
      seen.add(hit.id);
      const contribution = 1 / (rrfK + index + 1);
      const tally = tallies.get(hit.id);
      if (tally === undefined) tallies.set(hit.id, { hit, score: contribution, order: order++ });
      else tally.score += contribution;
    });
  }
  return ranked(tallies, limit);
}

/** Min-max scaled to [0, 1]; a list whose scores are all equal scales to 1. */
export function minMaxScores(list: readonly ShardHit[]): Map<string, number> {
  const scores = new Map<string, number>();
  if (list.length === 0) return scores;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const hit of list) {
    min = Math.min(min, hit.score);
    max = Math.max(max, hit.score);
  }
  for (const hit of list) {
    if (!scores.has(hit.id)) scores.set(hit.id, max === min ? 1 : (hit.score - min) / (max - min));
  }
  return scores;
}

/**
 * Convex combination of min-max-normalized scores: alpha × vector + (1 − alpha) × lexical,
 * a document missing from a list scoring 0 there. alpha = 1 is vector order, 0 lexical order.
 */
export function weightedFusion(vectorHits: readonly ShardHit[], lexicalHits: readonly ShardHit[], alpha: number, limit: number): ShardHit[] {
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`alpha must be in [0, 1] (got ${alpha})`);
  const vector = minMaxScores(vectorHits);
  const lexical = minMaxScores(lexicalHits);
  const tallies = new Map<string, Tally>();
  let order = 0;
  for (const hit of [...vectorHits, ...lexicalHits]) {
    if (tallies.has(hit.id)) continue;
    const score = alpha * (vector.get(hit.id) ?? 0) + (1 - alpha) * (lexical.get(hit.id) ?? 0);
    tallies.set(hit.id, { hit, score, order: order++ });
  }
  return ranked(tallies, limit);
}

/**
 * Maximal marginal relevance (Carbonell & Goldstein 1998): repeatedly picks the candidate
 * maximising lambda × relevance − (1 − lambda) × (its highest similarity to one already
 * picked). Relevance is the candidate's score min-max-scaled over the candidates, so it works
 * for any mode; similarity is the dot product of the vectors given (unit vectors: cosine).
 * Candidates without a vector are treated as similar to nothing. lambda = 1 keeps the order.
 */
export function maximalMarginalRelevance(
  candidates: readonly ShardHit[],
  vectors: ReadonlyMap<string, Float32Array>,
  lambda: number,
  limit: number,
): ShardHit[] {
  if (!(lambda >= 0 && lambda <= 1)) throw new RangeError(`lambda must be in [0, 1] (got ${lambda})`);
  const relevance = minMaxScores(candidates);
  const remaining = [...candidates];
  const picked: ShardHit[] = [];
  const maxSimilarity = new Map<string, number>();
  while (picked.length < limit && remaining.length > 0) {
    let best = 0;
    let bestValue = Number.NEGATIVE_INFINITY;
    remaining.forEach((hit, i) => {
      const value = lambda * (relevance.get(hit.id) ?? 0) - (1 - lambda) * (maxSimilarity.get(hit.id) ?? 0);
      if (value > bestValue) {
        bestValue = value;
        best = i;
      }
    });
    const [chosen] = remaining.splice(best, 1) as [ShardHit];
    picked.push(chosen);
    const chosenVector = vectors.get(chosen.id);
    if (chosenVector === undefined) continue;
    for (const hit of remaining) {
      const vector = vectors.get(hit.id);
      if (vector === undefined) continue;
      const similarity = dot(vector, chosenVector);
      if (similarity > (maxSimilarity.get(hit.id) ?? Number.NEGATIVE_INFINITY)) maxSimilarity.set(hit.id, similarity);
    }
  }
  return picked;
}

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) sum += (a[i] as number) * (b[i] as number);
  return sum;
}
