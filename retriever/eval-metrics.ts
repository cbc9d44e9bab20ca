// Information-retrieval metrics with the definitions trec_eval / pytrec_eval use (and so
// BEIR's reported numbers): pure functions over one query's ranked document ids and its
// graded relevance judgements (qrels). A judgement of 0 or below means "not relevant".
//
//   nDCG@k   = DCG@k / IDCG@k, DCG@k = Σ_{i=1..k} gain(d_i) / log2(i + 1), gain = the grade
//              (trec_eval's linear gain, not 2^grade − 1); IDCG@k is the DCG of the judged
//              documents sorted by grade. A query with no relevant judgement scores 0.
//   recall@k = |relevant ∩ top k| / |relevant|   (0 when nothing is relevant)
//   MRR@k    = 1 / rank of the first relevant document within the top k, else 0.
//
// A ranking that repeats a document id counts it once, at its first position (trec_eval
// takes each document once per query).

/** Document id → relevance grade for one query. */
export type Judgements = ReadonlyMap<string, number>;

function firstOccurrences(ranking: readonly string[], k: number): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const id of ranking) {
    if (out.length >= k) break;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(id);
  }
  return out;
}

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer (got ${k})`);
}

export function dcgAtK(gains: readonly number[], k: number): number {
  let dcg = 0;
  for (let i = 0; i < Math.min(k, gains.length); i++) {
    const gain = gains[i] as number;
    if (gain > 0) dcg += gain / Math.log2(i + 2);
  }
  return dcg;
}

export function ndcgAtK(ranking: readonly string[], judgements: Judgements, k: number): number {
  checkK(k);
  const ideal = [...judgements.values()].filter((g) => g > 0).sort((a, b) => b - a);
  const idcg = dcgAtK(ideal, k);
  if (idcg === 0) return 0;
  const gains = firstOccurrences(ranking, k).map((id) => judgements.get(id) ?? 0);
  return dcgAtK(gains, k) / idcg;
}

export function recallAtK(ranking: readonly string[], judgements: Judgements, k: number): number {
  checkK(k);
  let relevant = 0;
  for (const grade of judgements.values()) if (grade > 0) relevant += 1;
  if (relevant === 0) return 0;
  const found = firstOccurrences(ranking, k).filter((id) => (judgements.get(id) ?? 0) > 0).length;
  return found / relevant;
}

export function mrrAtK(ranking: readonly string[], judgements: Judgements, k: number): number {
  checkK(k);
  const top = firstOccurrences(ranking, k);
  const index = top.findIndex((id) => (judgements.get(id) ?? 0) > 0);
  return index < 0 ? 0 : 1 / (index + 1);
}

export interface QualityReport {
  queries: number;
  ndcg_at_10: number;
  recall_at_10: number;
  recall_at_100: number;
  mrr_at_10: number;
}

/**
 * The mean of each metric over queries, each query weighted equally (pytrec_eval's
 * per-query values averaged as BEIR does). Queries without a ranking count as empty ones.
 */
export function evaluateRuns(rankings: ReadonlyMap<string, readonly string[]>, qrels: ReadonlyMap<string, Judgements>): QualityReport {
  let ndcg = 0;
  let r10 = 0;
  let r100 = 0;
  let mrr = 0;
  for (const [queryId, judgements] of qrels) {
    const ranking = rankings.get(queryId) ?? [];
    ndcg += ndcgAtK(ranking, judgements, 10);
    r10 += recallAtK(ranking, judgements, 10);
    r100 += recallAtK(ranking, judgements, 100);
    mrr += mrrAtK(ranking, judgements, 10);
  }
  const n = qrels.size;
  const mean = (sum: number): number => (n === 0 ? 0 : sum / n);
  return { queries: n, ndcg_at_10: mean(ndcg), recall_at_10: mean(r10), recall_at_100: mean(r100), mrr_at_10: mean(mrr) };
}
