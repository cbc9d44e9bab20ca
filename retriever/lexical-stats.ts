// Summing BM25 statistics over shards: the gateway's half of the distributed-statistics
// (DFS) phase. Pure, so sharded and single-index scoring can be compared exactly.
import type { LexicalStats } from '../shards/protocol.js';

export function addLexicalStats(sum: LexicalStats | undefined, part: LexicalStats): LexicalStats {
  // No prototype: a query term is any word, and "constructor" must not read Object's.
  const df: Record<string, number> = Object.assign(Object.create(null) as Record<string, number>, sum?.df);
  for (const [term, count] of Object.entries(part.df)) df[term] = (df[term] ?? 0) + count;
  return {
    doc_count: (sum?.doc_count ?? 0) + part.doc_count,
    total_length: (sum?.total_length ?? 0) + part.total_length,
    df,
  };
}
