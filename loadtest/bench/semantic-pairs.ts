// Evaluation of the semantic cache on labelled question pairs (test/fixtures/
// semantic-cache-pairs.json): how often a paraphrase is served from the cache and how often
// someone gets the answer to a different question. Used by the caching benchmark and the
// semantic cache's integration test; the product never runs it.
import { DEFAULT_SEMANTIC_THRESHOLD, SemanticCache, type SemanticMissReason } from '../../gateway/cache/semantic-cache.js';
import { guardDifference, type GuardFn } from '../../gateway/cache/semantic-guard.js';

export type PairKind = 'paraphrase' | 'reorder' | 'negation' | 'number' | 'entity' | 'direction' | 'unrelated' | 'topic-shift';

export interface LabelledPair {
  a: string;
  b: string;
  /** True when an answer to a is a correct answer to b. */
  same: boolean;
  kind: PairKind;
}

export interface PairOutcome extends LabelledPair {
  hit: boolean;
  /** Cosine similarity of b to a (undefined when either embedded to a zero vector). */
  similarity: number | undefined;
  miss?: SemanticMissReason;
  reason?: string;
}

export interface PairEvaluation {
  /** hits / paraphrases: how often a question that means the same is served from the cache. */
  hitRate: number;
  /** falseHits / nearMisses: how often someone gets the answer to a different question. */
  falseHitRate: number;
  hits: number;
  paraphrases: number;
  falseHits: number;
  nearMisses: number;
  byKind: Record<string, { pairs: number; hits: number }>;
  outcomes: PairOutcome[];
}

export interface EvaluateOptions {
  threshold?: number;
  /** The guard to apply; false evaluates the bare similarity threshold. */
  guard?: GuardFn | false;
}

/**
 * Scores a labelled pair set the way the cache would serve it: for each pair, an empty cache
 * remembers a and looks up b. The benchmark and the integration test share this.
 */
export async function evaluatePairs(
  pairs: readonly LabelledPair[],
  embed: (texts: string[]) => Promise<Float32Array[]>,
  options: EvaluateOptions = {},
): Promise<PairEvaluation> {
  const texts = [...new Set(pairs.flatMap((p) => [p.a, p.b]))];
  const vectors = await embed(texts);
  const byText = new Map(texts.map((text, i) => [text, vectors[i]]));
  const threshold = options.threshold ?? DEFAULT_SEMANTIC_THRESHOLD;
  const guard: GuardFn = options.guard === false ? () => undefined : (options.guard ?? guardDifference);
  const outcomes: PairOutcome[] = [];
  const byKind: Record<string, { pairs: number; hits: number }> = {};
  let cache: SemanticCache<string> | undefined;
  for (const pair of pairs) {
    const va = byText.get(pair.a);
    const vb = byText.get(pair.b);
    if (va === undefined || vb === undefined) throw new Error(`embed returned too few vectors (${vectors.length} for ${texts.length} texts)`);
    // One cache, emptied before every pair: each pair starts from an empty cache.
    cache ??= new SemanticCache<string>({ dim: va.length, threshold, capacity: 2, guard });
    cache.clear();
    cache.remember(pair.a, va, 'eval', pair.a);
    const result = cache.lookup(pair.b, vb, 'eval');
    const outcome: PairOutcome =
      'value' in result
        ? { ...pair, hit: true, similarity: result.similarity }
        : { ...pair, hit: false, similarity: result.similarity, miss: result.miss, ...(result.reason !== undefined ? { reason: result.reason } : {}) };
    outcomes.push(outcome);
    const kind = (byKind[pair.kind] ??= { pairs: 0, hits: 0 });
    kind.pairs += 1;
    if (outcome.hit) kind.hits += 1;
  }
  const same = outcomes.filter((o) => o.same);
  const different = outcomes.filter((o) => !o.same);
  const hits = same.filter((o) => o.hit).length;
  const falseHits = different.filter((o) => o.hit).length;
  return {
    hitRate: same.length === 0 ? 0 : hits / same.length,
    falseHitRate: different.length === 0 ? 0 : falseHits / different.length,
    hits,
    paraphrases: same.length,
    falseHits,
    nearMisses: different.length,
    byKind,
    outcomes,
  };
}
