// Reading a search batch: each wire query validated into a prepared one (vector, lexical or
// ids), lexical queries answered from the BM25 index, ids queries from the catalog, and hits
// built from the catalog.
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
  }
| { mode: 'ids'; namespace: string; ids: readonly string[]; predicate: MetadataPredicate | undefined };


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
  if (query.mode === 'ids') {
    if (query.ids === undefined) {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', `queries[${i}] is an ids query and needs ids`, { param: `queries[${i}].ids` });
    }
    return { mode: 'ids', namespace: query.namespace, ids: query.ids, predicate };
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

/**
 * BM25 with the query's global statistics, or this shard's own when it carries none. The
 * shard's own statistics come back (`term_stats`) when asked for or scored with; a query that
 * brought global ones (phase 2 of the gateway's DFS) has no use for them.
 */
export function searchLexical(
data: ShardData,
query: Extract<PreparedQuery, { mode: 'lexical' }>,
found: boolean,
include: HitFields,
): QueryResult {
  const { lexical, catalog } = data;
  if (query.statsOnly || !found) return { hits: [], namespace_found: found, term_stats: lexical.stats(query.namespace, query.terms.keys()) };
  const stats = query.stats ?? lexical.stats(query.namespace, query.terms.keys());
  const scored = lexical.search(query.namespace, {
    terms: query.terms,
    k: query.k,
    stats,
    k1: query.bm25.k1,
    b: query.bm25.b,
    predicate: query.predicate,
    metadataOf: (label) => catalog.record(label)?.metadata ?? {},
  });
  const hits = scored.map((s) => toHit(data, s, include));
  return query.stats === undefined ? { hits, namespace_found: true, term_stats: stats } : { hits, namespace_found: true };
}

/**
 * The chunks named by an ids query that this shard holds in the namespace, in the order asked
 * (an id named twice comes back once). The filter still applies: a chunk whose metadata changed
 * since the caller ranked it must not slip past the filter it was ranked under.
 */
export function fetchByIds(data: ShardData, query: Extract<PreparedQuery, { mode: 'ids' }>, include: HitFields): QueryResult {
  const namespace = data.catalog.namespaces.get(query.namespace);
  if (namespace === undefined) return { hits: [], namespace_found: false };
  const hits: ShardHit[] = [];
  const seen = new Set<string>();
  for (const id of query.ids) {
    if (seen.has(id)) continue;
    seen.add(id);
    const record = namespace.chunks.get(id);
    if (record === undefined) continue;
    if (query.predicate !== undefined && !query.predicate(record.metadata)) continue;
    hits.push(toHit(data, { label: record.label, score: 0 }, include));
  }
  return { hits, namespace_found: true };
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
