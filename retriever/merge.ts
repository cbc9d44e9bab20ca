// Merging the shards' answers into one top-k (docs/architecture.md §6.8). Pure and synchronous so it
// can be tested table-driven and reused by replica sets, hedging and partial answers alike.
import type { ShardHit } from '../shards/protocol.js';

/**
 * K-way merge of per-shard hit lists by score, highest first.
 *
 * - An id seen twice (a chunk present on two shards during a rebalance, or a replica answer
 *   merged with its primary) is kept once: the first occurrence in merge order, which is the
 *   best-scored one.
 * - Ties are stable: equal scores keep shard order (lower list index first), then rank within
 *   the list, so the same inputs always give the same answer and caches stay coherent.
 * - Lists are expected sorted by score descending (every shard returns them so); a list that is
 *   not is sorted here (stably) rather than silently producing a wrong top-k.
 */
export function mergeTopK(lists: readonly (readonly ShardHit[])[], k: number): ShardHit[] {
  const limit = Number.isFinite(k) ? Math.max(0, Math.floor(k)) : 0;
  if (limit === 0 || lists.length === 0) return [];

  const sorted = lists.map(sortedDescending);
  // A pointer per list and a linear scan for the best head: shard counts are small (tens), so
  // this beats a heap's bookkeeping and keeps the tie rule obvious (strict > keeps lower index).
  const cursors = new Array<number>(sorted.length).fill(0);
  const seen = new Set<string>();
  const merged: ShardHit[] = [];

  while (merged.length < limit) {
    let bestList = -1;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < sorted.length; i++) {
      const hit = sorted[i]?.[cursors[i] ?? 0];
      if (hit === undefined) continue;
      if (bestList === -1 || hit.score > bestScore) {
        bestList = i;
        bestScore = hit.score;
      }
    }
    if (bestList === -1) break;
    const cursor = cursors[bestList] ?? 0;
    cursors[bestList] = cursor + 1;
    const hit = sorted[bestList]?.[cursor];
    if (hit === undefined || seen.has(hit.id)) continue;
    seen.add(hit.id);
    merged.push(hit);
  }
  return merged;
}

function sortedDescending(list: readonly ShardHit[]): readonly ShardHit[] {
  for (let i = 1; i < list.length; i++) {
    const previous = list[i - 1];
    const current = list[i];
    if (previous !== undefined && current !== undefined && current.score > previous.score) {
      // Array.prototype.sort is stable (ES2019), so equal scores keep their rank.
      return [...list].sort((a, b) => b.score - a.score);
    }
  }
  return list;
}
