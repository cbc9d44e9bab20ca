// Search strategy for one vector query in one namespace: an exact scan when the candidate
// set is small (the namespace, or a filter's estimated matches), the HNSW graph otherwise,
// falling back to the exact scan when the graph comes back short.
import type { MetadataPredicate } from '../filter.js';
import type { Catalog, ChunkRecord, NamespaceState } from './catalog.js';
import { TopK, compareScored, type Scored } from './top-k.js';
import type { VectorIndex } from './vector-index.js';

/** Filter selectivity is estimated from this many evenly spaced namespace members. */
const SELECTIVITY_SAMPLE = 512;

export interface VectorQuery {
  vector: Float32Array;
  k: number;
  ef: number | undefined;
  predicate: MetadataPredicate | undefined;
}

export interface VectorSearchSettings {
  efSearch: number;
  bruteForceThreshold: number;
}

export function searchVectors(
  catalog: Catalog,
  index: VectorIndex,
  namespace: NamespaceState,
  query: VectorQuery,
  settings: VectorSearchSettings,
): Scored[] {
  const size = namespace.labels.length;
  const threshold = settings.bruteForceThreshold;
  const small =
    threshold > 0 &&
    (size <= threshold || (query.predicate !== undefined && estimateMatches(catalog, namespace, query.predicate) <= threshold));
  if (small) return exactSearch(catalog, index, namespace, query);
  const hits = graphSearch(catalog, index, namespace, query, settings.efSearch);
  // HNSW can come back short when matches are sparse or unreachable; the exact scan cannot.
  return hits.length < Math.min(query.k, size) ? exactSearch(catalog, index, namespace, query) : hits;
}

function estimateMatches(catalog: Catalog, namespace: NamespaceState, predicate: MetadataPredicate): number {
  const { labels } = namespace;
  const samples = Math.min(SELECTIVITY_SAMPLE, labels.length);
  const stride = labels.length / samples;
  let matched = 0;
  for (let s = 0; s < samples; s++) {
    const record = catalog.record(labels[Math.floor(s * stride)] as number) as ChunkRecord;
    if (predicate(record.metadata)) matched += 1;
  }
  return (matched / samples) * labels.length;
}

function graphSearch(catalog: Catalog, index: VectorIndex, namespace: NamespaceState, query: VectorQuery, efSearch: number): Scored[] {
  // hnswlib-node throws when k exceeds the index capacity; the namespace size bounds it.
  const k = Math.min(query.k, namespace.labels.length);
  const { predicate } = query;
  // With one namespace and no filter the callback-free path is hnswlib's fastest loop.
  const everything = predicate === undefined && namespace.labels.length === catalog.liveCount;
  const allowed = everything
    ? undefined
    : (label: number): boolean => {
        const record = catalog.record(label);
        return record !== undefined && record.namespace === namespace && (predicate === undefined || predicate(record.metadata));
      };
  return index.searchKnn(query.vector, k, Math.max(query.ef ?? efSearch, k), allowed).sort(compareScored);
}

function exactSearch(catalog: Catalog, index: VectorIndex, namespace: NamespaceState, query: VectorQuery): Scored[] {
  const top = new TopK(query.k);
  const { predicate, vector } = query;
  for (const label of namespace.labels) {
    if (predicate !== undefined && !predicate((catalog.record(label) as ChunkRecord).metadata)) continue;
    top.offer(label, index.exactScore(vector, label));
  }
  return top.sorted();
}
