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
  /** label → document length in terms. */
  readonly lengths: Map<number, number>;
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

export class Bm25Index {
  private readonly namespaces = new Map<string, NamespaceLexicon>();
  /** label → (namespace, its term counts), so a removal touches only its own postings. */
  private readonly documents = new Map<number, { namespace: string; terms: Map<string, number> }>();

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
    lexicon.lengths.set(label, tokens.length);
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
    lexicon.totalLength -= lexicon.lengths.get(label) ?? 0;
    lexicon.lengths.delete(label);
    if (lexicon.lengths.size === 0) this.namespaces.delete(document.namespace);
  }

  /** This shard's statistics for `terms` in a namespace (the gateway sums them over shards). */
  stats(namespace: string, terms: Iterable<string>): LexicalStats {
    const lexicon = this.namespaces.get(namespace);
    const df: Record<string, number> = {};
    for (const term of terms) df[term] = lexicon?.postings.get(term)?.size ?? 0;
    return { doc_count: lexicon?.lengths.size ?? 0, total_length: lexicon?.totalLength ?? 0, df };
  }

  search(namespace: string, query: LexicalQuery): Scored[] {
    const lexicon = this.namespaces.get(namespace);
    if (lexicon === undefined || query.stats.doc_count === 0) return [];
    const { k1, b, stats, predicate } = query;
    const avgdl = stats.total_length / stats.doc_count || 1;
    const scores = new Map<number, number>();
    // Terms in a fixed (sorted) order so every shard and a single index add the same floats in the same order.
    for (const term of [...query.terms.keys()].sort()) {
      const posting = lexicon.postings.get(term);
      if (posting === undefined) continue;
      const weight = (query.terms.get(term) as number) * idf(stats.doc_count, Object.hasOwn(stats.df, term) ? (stats.df[term] as number) : posting.size);
      for (const [label, tf] of posting) {
        const dl = lexicon.lengths.get(label) as number;
        const score = (weight * tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * dl) / avgdl));
        scores.set(label, (scores.get(label) ?? 0) + score);
      }
    }
    const top = new TopK(query.k);
    for (const [label, score] of scores) {
      if (predicate !== undefined && !predicate(query.metadataOf(label))) continue;
      top.offer(label, score);
    }
    return top.sorted();
  }

  private lexicon(namespace: string): NamespaceLexicon {
    let lexicon = this.namespaces.get(namespace);
    if (lexicon === undefined) {
      lexicon = { postings: new Map(), lengths: new Map(), totalLength: 0 };
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
