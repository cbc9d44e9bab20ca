// What the scatter takes and returns: queries and their options, merged results with their
// coverage, write summaries with replica acknowledgements, and the cluster view of a shard.
import type { Bm25Params, Chunk, LexicalStats, ShardHit } from '../shards/protocol.js';
import type { Coverage } from './coverage.js';
import type { ReplicaAck, ReplicaSetObserver, ReplicaView } from './replica-types.js';
import type { VersionClock } from './version-clock.js';
import type { ShardCallTrace } from './call-trace.js';

/** The shard search endpoint's limit on queries per request (SearchRequest.queries maxItems). */
export const MAX_QUERIES_PER_REQUEST = 1024;

/**
 * Metric hooks. The replica hooks (hedges, ejections) are called by the ReplicaSets given the
 * same observer, not by the scatter; one object can serve both.
 */
export interface ScatterObserver extends ReplicaSetObserver {
  /**
   * One call per shard request that reached an outcome of its own. `ok` is false when the
   * shard could not answer (transport, timeout, 5xx); a 4xx answer is the caller's mistake and
   * counts as ok. A shard that missed the deadline is reported not ok. Calls cancelled because
   * the caller left or a sibling shard failed are not reported: their duration says nothing
   * about the shard.
   */
  onShardLatency?(shardIndex: number, seconds: number, ok: boolean): void;
  /** The coverage of each search round (one batch request per shard). */
  onCoverage?(coverage: Coverage): void;
}

/** A lexical (BM25) query: text, and the global statistics to score with (retriever/lexical-search.ts). */
export interface LexicalQuery {
  text: string;
  stats?: LexicalStats;
  /** The statistics phase: shards return term_stats only. */
  statsOnly?: boolean;
  bm25?: Bm25Params;
}

export interface ScatterQuery {
  /** Required unless `lexical` is given. */
  vector?: Float32Array | undefined;
  lexical?: LexicalQuery;
  /** Instead of a search: fetch these chunks (see fetchChunks in hybrid-search.ts). */
  ids?: readonly string[];
  k: number;
  namespace: string;
  filter?: Record<string, unknown>;
  ef?: number;
}

export interface IncludeOptions {
  includeText?: boolean;
  includeMetadata?: boolean;
  /** Hits carry their stored vectors (for MMR). */
  includeVectors?: boolean;
}

export interface DeadlineOptions {
  /** Absolute deadline, a Date.now() timestamp in ms; no deadline when absent. */
  deadline?: number;
}

export interface ScopeOptions {
  /**
   * The namespace patterns of the API key the call is made for, sent with every shard call
   * (the shards refuse any namespace outside them); absent = the cluster's own, unrestricted.
   */
  namespaces?: readonly string[] | undefined;
}

/** What a read or write that is not a search takes: a deadline and the caller's scope. */
export interface CallOptions extends DeadlineOptions, ScopeOptions {}

export interface CompletenessOptions {
  /** Fail (503, or 504 for a missed deadline) rather than answer without every shard. */
  requireComplete?: boolean;
}

export interface TraceOptions {
  /** Opens a span per replica call, whose context the shard continues; absent when tracing is off. */
  trace?: ShardCallTrace | undefined;
}

export interface BatchSearchOptions extends IncludeOptions, DeadlineOptions, ScopeOptions, CompletenessOptions, TraceOptions {}

export interface SearchOptions extends IncludeOptions, DeadlineOptions, ScopeOptions, CompletenessOptions, TraceOptions {
  k: number;
  namespace: string;
  filter?: Record<string, unknown>;
  ef?: number;
  lexical?: LexicalQuery;
  ids?: readonly string[];
}

export interface QueryHits {
  /** Merged top-k over all shards, best first. */
  hits: ShardHit[];
  /** True when at least one shard holds something in the query's namespace. */
  namespaceFound: boolean;
  /** Lexical queries: the statistics summed over the shards that answered. */
  termStats?: LexicalStats;
}

export interface ScatterBatchResult {
  /** One entry per query, in query order. */
  results: QueryHits[];
  coverage: Coverage;
  /** Index epoch reported by each shard, by shard index (cache keys include them); -1 for a missing shard. */
  epochs: number[];
  /** Round-trip time of each shard's request as seen from here, by shard index. */
  tookMs: number[];
}

export interface ScatterSearchResult extends QueryHits {
  coverage: Coverage;
  epochs: number[];
  tookMs: number[];
}

/** A chunk to write; the vector may still be a Float32Array, it is encoded here. */
export type ChunkInput = Omit<Chunk, 'vector'> & { vector: Float32Array | string };

export interface UpsertChunksOptions extends CallOptions {
  /** Drop the chunks of each named document that this call does not carry (re-ingest). */
  replaceDocuments?: boolean;
  /** The write's version; default: the next one from this scatter's clock. */
  version?: number;
}

export interface DeleteOptions extends CallOptions {
  version?: number;
}

export interface UpsertSummary {
  upserted: number;
  removed: number;
  /** New epoch of each shard written to, by shard index; undefined for shards not touched. */
  epochs: (number | undefined)[];
  /** The version every replica was given (0 when nothing was written). */
  version: number;
  /** Which replicas of each shard acknowledged, by shard index; undefined for shards not touched. */
  replicas: (ReplicaAck[] | undefined)[];
}

export interface DeleteSummary {
  documentsDeleted: number;
  chunksDeleted: number;
  epochs: (number | undefined)[];
  version: number;
  replicas: (ReplicaAck[] | undefined)[];
}

export interface ScatterOptions {
  /** Issues write versions; default a fresh clock owned by this scatter. */
  versionClock?: VersionClock;
}

/** One shard in the cluster view (GET /v1/cluster). */
export interface ShardView {
  shard: number;
  name: string;
  replicas: ReplicaView[];
}
