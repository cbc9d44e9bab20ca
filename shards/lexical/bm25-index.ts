// The lexical half of a shard: BM25 postings per namespace, kept beside the vector index
// and changed by the same writes (store/shard-data.ts adds, replaces and removes a chunk's
// text here exactly when it does its vector), so the WAL, replay, snapshots, catch-up and
// deletes all apply to it. It is derived state: a snapshot stores chunk text, and opening
// rebuilds the postings from it.
//
// Scores comparable across shards: BM25 needs corpus statistics (document count N, average
// length avgdl, document frequency df per term). Local statistics differ per shard, so
// scores would not merge. A query may carry the *global* statistics instead (the gateway
// sums every shard's `termStats` first — Elasticsearch's DFS phase), and then a document
// scores exactly what it would in one index holding the whole namespace. Statistics are
// per namespace and ignore metadata filters (as Lucene's idf ignores filters).
import type { MetadataPredicate } from '../filter.js';
import type { LexicalStats } from '../protocol.js';
import { TopK, type Scored } from '../store/top-k.js';
import { termFrequencies, tokenize } from './tokenizer.js';

/** Tuned on BEIR SciFact's train split (README "Search modes"); a query may override them. */
export const BM25_DEFAULTS = { k1: 0.9, b: 0.4 } as const;

interface NamespaceLexicon {
  /** term → label → term frequency. */
  readonly postings: Map<string, Map<number, number>>;
  /** Live documents. */
  documents: number;
  totalLength: number;
}

export interface LexicalQuery {
  /** Query terms with their multiplicity (a repeated word weighs more, as in Lucene). */
  terms: ReadonlyMap<string, number>;
  k: number;
  stats: LexicalStats;
  k1: number;
  b: number;
  predicate: MetadataPredicate | undefined;
  /** Metadata of a live label (for the filter). */
  metadataOf: (label: number) => Record<string, unknown>;
}

/**
 * Per-label arrays, indexed by the shard's dense labels (the vector index hands them out from
 * a free list): document lengths, and the scoring scratch every search reuses — a score per
 * label and the search that last touched it. Scoring a posting is then two array reads and a
 * write instead of three hash-map operations, which was most of a lexical search's time.
 */
class LabelArrays {
  lengths: Float64Array = new Float64Array(0);
  scores = new Float64Array(0);
  /** The search (by generation) whose score a label holds; older ones read as 0. */
  stamps = new Uint32Array(0);
  generation = 0;

  ensure(label: number): void {
    if (label < this.lengths.length) return;
    let size = Math.max(1024, this.lengths.length);
    while (size <= label) size *= 2;
    this.lengths = grown(this.lengths, size);
    this.scores = new Float64Array(size);
    this.stamps = new Uint32Array(size);
    this.generation = 0;
  }

  /** Starts a search: every label's score reads as unset. */
  nextGeneration(): number {
    this.generation += 1;
    if (this.generation === 0xffffffff) {
      this.stamps.fill(0);
      this.generation = 1;
    }
    return this.generation;
  }
}

function grown(from: Float64Array, size: number): Float64Array {
  const to = new Float64Array(size);
  to.set(from);
  return to;
}

export class Bm25Index {
  private readonly namespaces = new Map<string, NamespaceLexicon>();
  /** label → (namespace, its term counts), so a removal touches only its own postings. */
  private readonly documents = new Map<number, { namespace: string; terms: Map<string, number> }>();
  private readonly labels = new LabelArrays();

  add(label: number, namespace: string, text: string): void {
    if (this.documents.has(label)) this.remove(label);
    const tokens = tokenize(text);
    const terms = termFrequencies(tokens);
    const lexicon = this.lexicon(namespace);
    for (const [term, tf] of terms) {
      let posting = lexicon.postings.get(term);
      if (posting === undefined) {
        posting = new Map();
        lexicon.postings.set(term, posting);
      }
      posting.set(label, tf);
    }
    this.labels.ensure(label);
    this.labels.lengths[label] = tokens.length;
    lexicon.documents += 1;
    lexicon.totalLength += tokens.length;
    this.documents.set(label, { namespace, terms });
  }

  remove(label: number): void {
    const document = this.documents.get(label);
    if (document === undefined) return;
    this.documents.delete(label);
    const lexicon = this.namespaces.get(document.namespace);
    if (lexicon === undefined) return;
    for (const term of document.terms.keys()) {
      const posting = lexicon.postings.get(term);
      posting?.delete(label);
      if (posting?.size === 0) lexicon.postings.delete(term);
    }
    lexicon.totalLength -= this.labels.lengths[label] ?? 0;
    this.labels.lengths[label] = 0;
    lexicon.documents -= 1;
    if (lexicon.documents === 0) this.namespaces.delete(document.namespace);
  }

  /** This shard's statistics for `terms` in a namespace (the gateway sums them over shards). */
  stats(namespace: string, terms: Iterable<string>): LexicalStats {
    const lexicon = this.namespaces.get(namespace);
    const df: Record<string, number> = {};
    for (const term of terms) df[term] = lexicon?.postings.get(term)?.size ?? 0;
    return { doc_count: lexicon?.documents ?? 0, total_length: lexicon?.totalLength ?? 0, df };
  }

  search(namespace: string, query: LexicalQuery): Scored[] {
    const lexicon = this.namespaces.get(namespace);
    if (lexicon === undefined || query.stats.doc_count === 0) return [];
    const { k1, b, stats, predicate } = query;
    const avgdl = stats.total_length / stats.doc_count || 1;
    const { lengths, scores, stamps } = this.labels;
    const generation = this.labels.nextGeneration();
    // Labels in the order they were first scored (what a Map of scores would iterate).
    const touched: number[] = [];
    // Terms in a fixed (sorted) order so every shard and a single index add the same floats in the same order.
    for (const term of [...query.terms.keys()].sort()) {
      const posting = lexicon.postings.get(term);
      if (posting === undefined) continue;
      const weight = (query.terms.get(term) as number) * idf(stats.doc_count, Object.hasOwn(stats.df, term) ? (stats.df[term] as number) : posting.size);
      posting.forEach((tf, label) => {
        const dl = lengths[label] as number;
        const score = (weight * tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * dl) / avgdl));
        if (stamps[label] === generation) {
          scores[label] = (scores[label] as number) + score;
        } else {
          stamps[label] = generation;
          scores[label] = score;
          touched.push(label);
        }
      });
    }
    const top = new TopK(query.k);
    for (const label of touched) {
      if (predicate !== undefined && !predicate(query.metadataOf(label))) continue;
      top.offer(label, scores[label] as number);
    }
    return top.sorted();
  }

  private lexicon(namespace: string): NamespaceLexicon {
    let lexicon = this.namespaces.get(namespace);
    if (lexicon === undefined) {
      lexicon = { postings: new Map(), documents: 0, totalLength: 0 };
      this.namespaces.set(namespace, lexicon);
    }
    return lexicon;
  }
}

/** Lucene's BM25 idf: never negative, even for a term in more than half the documents. */
function idf(docCount: number, df: number): number {
  const n = Math.max(df, 0);
  return Math.log(1 + (docCount - n + 0.5) / (n + 0.5));
}
