// What a reranker is to the gateway: something that scores (query, passage) pairs. A
// cross-encoder reads query and passage together, so it can judge relevance that a
// bi-encoder's two independent vectors (or BM25's term counts) miss; it is too slow to run
// over a corpus, which is why it only re-orders the few candidates retrieval found.

export interface RerankScore {
  /** Position of the passage in the `texts` given. */
  index: number;
  /** Higher is more relevant; only comparable within one call. */
  score: number;
}

export interface RerankCall {
  query: string;
  texts: readonly string[];
  /** How many of the best the caller keeps; a backend may return only those. */
  topN: number;
  /** The model asked for; a backend that serves one model has already checked it. */
  model: string;
  signal: AbortSignal;
}

export interface RerankBackend {
  /** The model name reported in responses and used in cache keys. */
  readonly modelId: string;
  /** Whether a request may name another model (a hosted API that serves several). */
  readonly anyModel: boolean;
  /** Scores, best first; at least min(topN, texts.length) of them. Throws on any failure. */
  rerank(call: RerankCall): Promise<RerankScore[]>;
  close(): Promise<void>;
}

/** Validates a backend's answer: integer indexes into `count` texts, finite scores, no repeats; sorted best first. */
export function checkScores(scores: readonly { index: unknown; score: unknown }[], count: number, topN: number): RerankScore[] {
  const seen = new Set<number>();
  const out: RerankScore[] = [];
  for (const entry of scores) {
    const { index, score } = entry;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count) {
      throw new TypeError(`index ${String(index)} is not one of the ${count} passages sent`);
    }
    if (typeof score !== 'number' || !Number.isFinite(score)) throw new TypeError(`score ${String(score)} for passage ${index} is not a finite number`);
    if (seen.has(index)) throw new TypeError(`passage ${index} is scored twice`);
    seen.add(index);
    out.push({ index, score });
  }
  if (out.length < Math.min(topN, count)) throw new TypeError(`${out.length} scores for ${Math.min(topN, count)} passages asked for`);
  // Stable for equal scores: the retrieval order breaks ties.
  return out.sort((a, b) => b.score - a.score || a.index - b.index);
}
