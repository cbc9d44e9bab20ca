// Reading a search batch: each wire query validated into a prepared one (vector or
// lexical), lexical queries answered from the BM25 index, and hits built from the catalog.
import { createError } from '../../core/errors.js';
import { compileFilter, type MetadataPredicate } from '../filter.js';
import { BM25_DEFAULTS } from '../lexical/bm25-index.js';
import { termFrequencies, tokenize } from '../lexical/tokenizer.js';
import { encodeVector, type Bm25Params, type LexicalStats, type QueryResult, type ShardHit, type ShardQuery } from '../protocol.js';
import type { ShardData } from './shard-data.js';
import type { Scored } from './top-k.js';
import type { VectorQuery } from './vector-search.js';

export interface HitFields {
  text: boolean;
  metadata: boolean;
  vectors: boolean;
}

export type PreparedQuery =
| (VectorQuery & { mode: 'vector'; namespace: string })
| {
    mode: 'lexical';
    namespace: string;
    k: number;
    terms: Map<string, number>;
    stats: LexicalStats | undefined;
    statsOnly: boolean;
    bm25: Bm25Params;
    predicate: MetadataPredicate | undefined;
  };


export function prepareQuery(data: ShardData, query: ShardQuery, i: number): PreparedQuery {
  const predicate = query.filter === undefined ? undefined : compileFilter(query.filter, `queries[${i}].filter`);
  if (query.mode === 'lexical') {
    if (query.text === undefined) {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', `queries[${i}] is lexical and needs a text`, { param: `queries[${i}].text` });
    }
    return {
      mode: 'lexical',
      namespace: query.namespace,
      k: query.k,
      terms: termFrequencies(tokenize(query.text)),
      stats: query.lexical_stats,
      statsOnly: query.stats_only === true,
      bm25: query.bm25 ?? BM25_DEFAULTS,
      predicate,
    };
  }
  if (query.vector === undefined) {
    throw createError('RAGWAY_ERR_INVALID_REQUEST', `queries[${i}] is a vector query and needs a vector`, { param: `queries[${i}].vector` });
  }
  return {
    mode: 'vector',
    vector: data.vectors.decodeChecked(query.vector, `queries[${i}].vector`),
    k: query.k,
    namespace: query.namespace,
    ef: query.ef,
    predicate,
  };
}

/** BM25 with the query's global statistics, or this shard's own when it carries none. */
export function searchLexical(
data: ShardData,
query: Extract<PreparedQuery, { mode: 'lexical' }>,
found: boolean,
include: HitFields,
): QueryResult {
const { lexical, catalog } = data;
  const local = lexical.stats(query.namespace, query.terms.keys());
  if (query.statsOnly || !found) return { hits: [], namespace_found: found, term_stats: local };
  const scored = lexical.search(query.namespace, {
    terms: query.terms,
    k: query.k,
    stats: query.stats ?? local,
    k1: query.bm25.k1,
    b: query.bm25.b,
    predicate: query.predicate,
    metadataOf: (label) => catalog.record(label)?.metadata ?? {},
  });
  return { hits: scored.map((s) => toHit(data, s, include)), namespace_found: true, term_stats: local };
}


export function toHit(data: ShardData, scored: Scored, include: HitFields): ShardHit {
  const record = data.catalog.record(scored.label);
  if (record === undefined) throw new Error(`label ${scored.label} has no chunk record`);
  const hit: ShardHit = { id: record.id, document_id: record.documentId, score: scored.score };
  if (include.text) hit.text = record.text;
  if (include.metadata) hit.metadata = record.metadata;
  if (include.vectors) hit.vector = encodeVector(data.vectors.vectorOf(record.label));
  return hit;
}
