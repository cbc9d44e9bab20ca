// An honest semantic cache: "have we answered a question that means the same?" answered by
// the nearest previous query embedding in a small in-memory hnswlib index — accepted only
// above a cosine threshold AND when a lexical guard finds no sign that the two questions
// mean different things. Off by default in the product: a wrong cached answer is worse than a
// slow right one, and embeddings are blind to exactly the words that flip a question's meaning
// (the default glove-sif-100d is a bag of words: it cannot see word order, and SIF weighting
// gives frequent words such as "not", "before" or "how" almost no weight).
//
// Values are whatever the caller stores. In ragway that is the exact-cache key of an answer,
// never the answer itself: the exact cache's keys carry the index epoch, so an answer that went
// stale when the index changed is simply not found there, and the caller treats that as a miss
// (and may forget() the semantic entry). This cache therefore never has to know about epochs.
//
// Synchronous on purpose, like shards/index-store.ts: every call finishes within one event-loop
// turn, so the native index is never touched concurrently.
import hnswlib from 'hnswlib-node';
import { guardDifference, type GuardFn } from './semantic-guard.js';

const { HierarchicalNSW } = hnswlib;
type HnswIndex = InstanceType<typeof HierarchicalNSW>;

/**
 * Cosine similarity a neighbour must reach to be considered at all, for glove-sif-100d. Chosen
 * from the labelled pairs in test/fixtures/semantic-cache-pairs.json (the integration test
 * prints the numbers): with the guard, 0.90 still lets one near-miss through ("How do I set a
 * TTL…" served for "What is a TTL…", cosine 0.904) and 0.92 lets none, at a 38% hit rate on
 * paraphrases. Without the guard no threshold is safe: near-misses reach cosine 1.0 because the
 * model cannot see word order or unknown words. Another embedding model needs its own sweep.
 */
export const DEFAULT_SEMANTIC_THRESHOLD = 0.92;

/** Histogram bounds for the nearest neighbour's similarity; dense where thresholds live. */
export const DEFAULT_SIMILARITY_BUCKETS: readonly number[] = [0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98, 0.99, 1];

export interface SemanticCacheOptions {
  dim: number;
  /** Cosine similarity at or above which a neighbour may be served (e.g. DEFAULT_SEMANTIC_THRESHOLD). */
  threshold: number;
  /** Most queries remembered; the least recently used is evicted and its hnswlib label reused. */
  capacity: number;
  /** HNSW graph degree. */
  m?: number;
  efConstruction?: number;
  /** Search breadth; raised to the neighbour count when smaller. */
  ef?: number;
  /** Upper bounds of the similarity histogram's buckets, ascending. */
  buckets?: number[];
  /** Neighbours examined per lookup: the nearest may fail the guard while the next passes. */
  neighbors?: number;
  /** The meaning-difference check; guardDifference unless replaced (evaluation, tests). */
  guard?: GuardFn;
}

export type SemanticMissReason = 'empty' | 'below-threshold' | 'guard';

export type SemanticLookup<V> =
  | { value: V; similarity: number; matchedQuery: string }
  | { miss: SemanticMissReason; similarity?: number; reason?: string };

export interface SemanticCacheStats {
  lookups: number;
  hits: number;
  misses: Record<SemanticMissReason, number>;
  /** Lookups and remembers refused because the vector was zero (no word the model knows). */
  zeroVectors: number;
  evictions: number;
  entries: number;
}

export interface SimilarityHistogram {
  /** Upper bounds; counts has one more slot, for values above the last bound. */
  buckets: number[];
  /** Not cumulative: counts[i] holds buckets[i-1] < s <= buckets[i]. */
  counts: number[];
  count: number;
}

export interface SemanticEntryView<V> {
  readonly query: string;
  readonly scope: string;
  readonly value: V;
}

interface Entry<V> {
  readonly label: number;
  readonly key: string;
  readonly query: string;
  readonly scope: string;
  vector: Float32Array;
  value: V;
}

interface Candidate<V> {
  entry: Entry<V>;
  similarity: number;
}

const DEFAULTS = { m: 16, efConstruction: 100, ef: 32, neighbors: 5, initialIndexCapacity: 64 } as const;
/** Below this norm a vector is treated as zero: all-unknown words, nothing to compare. */
const ZERO_NORM = 1e-6;

export class SemanticCache<V> {
  readonly dim: number;
  readonly threshold: number;
  readonly capacity: number;
  readonly #m: number;
  readonly #efConstruction: number;
  readonly #ef: number;
  readonly #neighbors: number;
  readonly #guard: GuardFn;
  readonly #buckets: number[];
  #counts: number[];
  #observed = 0;

  readonly #index: HnswIndex;
  #indexCapacity = 0;
  /** Map order is recency order: first is least recently used. */
  readonly #byKey = new Map<string, Entry<V>>();
  readonly #byLabel: (Entry<V> | undefined)[] = [];
  readonly #scopeSizes = new Map<string, number>();
  readonly #freeLabels: number[] = [];
  #nextLabel = 0;
  readonly #counters = { lookups: 0, hits: 0, zeroVectors: 0, evictions: 0 };
  readonly #missCounts: Record<SemanticMissReason, number> = { empty: 0, 'below-threshold': 0, guard: 0 };

  constructor(options: SemanticCacheOptions) {
    const ints: [string, number | undefined][] = [
      ['dim', options.dim],
      ['capacity', options.capacity],
      ['m', options.m],
      ['efConstruction', options.efConstruction],
      ['ef', options.ef],
      ['neighbors', options.neighbors],
    ];
    for (const [name, value] of ints) {
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
        throw new RangeError(`SemanticCache option ${name} must be a positive integer (got ${String(value)})`);
      }
    }
    if (!(options.threshold > -1 && options.threshold <= 1)) {
      throw new RangeError(`SemanticCache option threshold must be a cosine similarity in (-1, 1] (got ${String(options.threshold)})`);
    }
    const buckets = options.buckets ?? [...DEFAULT_SIMILARITY_BUCKETS];
    if (buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= (buckets[i - 1] as number)))) {
      throw new RangeError('SemanticCache option buckets must be finite and strictly ascending');
    }
    this.dim = options.dim;
    this.threshold = options.threshold;
    this.capacity = options.capacity;
    this.#m = options.m ?? DEFAULTS.m;
    this.#efConstruction = options.efConstruction ?? DEFAULTS.efConstruction;
    this.#ef = options.ef ?? DEFAULTS.ef;
    this.#neighbors = options.neighbors ?? DEFAULTS.neighbors;
    this.#guard = options.guard ?? guardDifference;
    this.#buckets = [...buckets];
    this.#counts = new Array<number>(buckets.length + 1).fill(0);
    this.#index = this.#newIndex();
  }

  get size(): number {
    return this.#byKey.size;
  }

  /**
   * The most similar remembered query of the same scope that passes the guard, or why there is
   * none. Scope is everything besides the question that changes the answer (namespace, filter,
   * k, model, generator): entries of another scope are never candidates.
   */
  lookup(query: string, vector: Float32Array, scope: string): SemanticLookup<V> {
    this.#counters.lookups += 1;
    const unit = this.#unitVector(vector);
    if (unit === undefined) {
      this.#counters.zeroVectors += 1;
      return this.#miss({ miss: 'empty', reason: 'the query has no words the model knows (zero vector)' });
    }
    const candidates = this.#nearest(unit, scope);
    const nearest = candidates[0];
    if (nearest === undefined) return this.#miss({ miss: 'empty' });
    this.#observe(nearest.similarity);
    let rejected: { similarity: number; reason: string } | undefined;
    for (const { entry, similarity } of candidates) {
      if (similarity < this.threshold) break;
      const reason = this.#guard(query, entry.query);
      if (reason === undefined) {
        this.#touch(entry);
        this.#counters.hits += 1;
        return { value: entry.value, similarity, matchedQuery: entry.query };
      }
      rejected ??= { similarity, reason };
    }
    if (rejected !== undefined) return this.#miss({ miss: 'guard', similarity: rejected.similarity, reason: rejected.reason });
    return this.#miss({ miss: 'below-threshold', similarity: nearest.similarity });
  }

  /**
   * Remembers a query's value; the same query text in the same scope replaces the old value.
   * Returns false (and stores nothing) for a zero vector: it would match nothing meaningfully.
   */
  remember(query: string, vector: Float32Array, scope: string, value: V): boolean {
    const unit = this.#unitVector(vector);
    if (unit === undefined) {
      this.#counters.zeroVectors += 1;
      return false;
    }
    const key = `${scope}\u0000${query}`;
    const existing = this.#byKey.get(key);
    if (existing !== undefined) {
      existing.value = value;
      existing.vector = unit;
      this.#index.addPoint(Array.from(unit), existing.label);
      this.#touch(existing);
      return true;
    }
    if (this.#byKey.size >= this.capacity) {
      const oldest = this.#byKey.values().next().value;
      if (oldest !== undefined) {
        this.#remove(oldest);
        this.#counters.evictions += 1;
      }
    }
    const label = this.#freeLabels.pop() ?? this.#nextLabel++;
    this.#ensureIndexCapacity(label + 1);
    // A reused label is marked deleted in hnswlib; addPoint on it unmarks it and rewires it.
    // hnswlib-node accepts only plain arrays.
    this.#index.addPoint(Array.from(unit), label);
    const entry: Entry<V> = { label, key, query, scope, vector: unit, value };
    this.#byKey.set(key, entry);
    this.#byLabel[label] = entry;
    this.#scopeSizes.set(scope, (this.#scopeSizes.get(scope) ?? 0) + 1);
    return true;
  }

  /** Drops every entry the predicate selects (e.g. a namespace that was re-indexed); returns how many. */
  forget(predicate: (entry: SemanticEntryView<V>) => boolean): number {
    let removed = 0;
    for (const entry of [...this.#byKey.values()]) {
      if (!predicate({ query: entry.query, scope: entry.scope, value: entry.value })) continue;
      this.#remove(entry);
      removed += 1;
    }
    return removed;
  }

  /**
   * Drops every entry; counters and histogram are kept (they are history). The graph is kept
   * too, its labels marked deleted and reused: a new hnswlib index allocates tens of thousands
   * of per-label mutexes, which costs more than the entries themselves in a small cache.
   */
  clear(): void {
    for (const entry of [...this.#byKey.values()]) this.#remove(entry);
  }

  stats(): SemanticCacheStats {
    return { ...this.#counters, misses: { ...this.#missCounts }, entries: this.#byKey.size };
  }

  histogram(): SimilarityHistogram {
    return { buckets: [...this.#buckets], counts: [...this.#counts], count: this.#observed };
  }

  // ---------------------------------------------------------------- internals

  #newIndex(): HnswIndex {
    const index = new HierarchicalNSW('cosine', this.dim);
    this.#indexCapacity = Math.min(this.capacity, DEFAULTS.initialIndexCapacity);
    index.initIndex({ maxElements: this.#indexCapacity, m: this.#m, efConstruction: this.#efConstruction });
    return index;
  }

  /** Grows by doubling, never past capacity: a big configured capacity costs nothing until used. */
  #ensureIndexCapacity(needed: number): void {
    if (needed <= this.#indexCapacity) return;
    let next = Math.max(this.#indexCapacity, 1);
    while (next < needed) next *= 2;
    next = Math.min(next, this.capacity);
    this.#index.resizeIndex(next);
    this.#indexCapacity = next;
  }

  #unitVector(vector: Float32Array): Float32Array | undefined {
    if (vector.length !== this.dim) {
      throw new RangeError(`SemanticCache expects ${this.dim}-dimensional vectors, got ${vector.length}`);
    }
    let norm = 0;
    for (let d = 0; d < vector.length; d++) {
      const x = vector[d] as number;
      if (!Number.isFinite(x)) throw new RangeError(`SemanticCache vector has a non-finite value at index ${d}`);
      norm += x * x;
    }
    norm = Math.sqrt(norm);
    if (norm < ZERO_NORM) return undefined;
    const unit = new Float32Array(vector.length);
    for (let d = 0; d < vector.length; d++) unit[d] = (vector[d] as number) / norm;
    return unit;
  }

  #nearest(unit: Float32Array, scope: string): Candidate<V>[] {
    const inScope = this.#scopeSizes.get(scope) ?? 0;
    if (inScope === 0) return [];
    // hnswlib-node throws when k exceeds the index capacity; the scope's size bounds it.
    const k = Math.min(this.#neighbors, inScope);
    this.#index.setEf(Math.max(this.#ef, k));
    // With a single scope the callback-free path is hnswlib's fastest loop.
    const filter =
      inScope === this.#byKey.size ? undefined : (label: number): boolean => this.#byLabel[label]?.scope === scope;
    const { neighbors } = this.#index.searchKnn(Array.from(unit), k, filter);
    let entries = neighbors.map((label) => this.#byLabel[label]).filter((e): e is Entry<V> => e !== undefined && e.scope === scope);
    // HNSW can come back short when a filter leaves matches unreachable; a scan cannot.
    if (entries.length < k) entries = [...this.#byKey.values()].filter((e) => e.scope === scope);
    // Similarities are recomputed exactly from the stored unit vectors, so reported numbers do
    // not depend on hnswlib's float rounding and ties break by recency-independent label order.
    return entries
      // Clamped: float rounding can put an exact repeat a hair above 1.
      .map((entry) => ({ entry, similarity: Math.min(1, Math.max(-1, dot(unit, entry.vector))) }))
      .sort((x, y) => y.similarity - x.similarity || x.entry.label - y.entry.label)
      .slice(0, k);
  }

  #observe(similarity: number): void {
    let slot = this.#buckets.findIndex((bound) => similarity <= bound);
    if (slot === -1) slot = this.#buckets.length;
    this.#counts[slot] = (this.#counts[slot] ?? 0) + 1;
    this.#observed += 1;
  }

  #miss(result: { miss: SemanticMissReason; similarity?: number; reason?: string }): SemanticLookup<V> {
    this.#missCounts[result.miss] += 1;
    return result;
  }

  #touch(entry: Entry<V>): void {
    this.#byKey.delete(entry.key);
    this.#byKey.set(entry.key, entry);
  }

  #remove(entry: Entry<V>): void {
    this.#index.markDelete(entry.label);
    this.#byKey.delete(entry.key);
    this.#byLabel[entry.label] = undefined;
    this.#freeLabels.push(entry.label);
    const left = (this.#scopeSizes.get(entry.scope) ?? 1) - 1;
    if (left === 0) this.#scopeSizes.delete(entry.scope);
    else this.#scopeSizes.set(entry.scope, left);
  }
}

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let d = 0; d < a.length; d++) sum += (a[d] as number) * (b[d] as number);
  return sum;
}

