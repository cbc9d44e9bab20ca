// Wire contract between the gateway and shard nodes. Both sides import this file; the
// schemas validate requests on the shard and the static types are derived from them.
// Vectors travel as base64 of little-endian float32 (JSON arrays of floats are ~3x larger
// and slow to parse on the hot path).
import { Type, type Static } from '@sinclair/typebox';

/**
 * Bump on any incompatible change; both sides refuse to talk across versions.
 * 2: the "ids" query mode (hybrid search fetches text for its fused hits only).
 */
export const PROTOCOL_VERSION = 2;
export const PROTOCOL_HEADER = 'x-ragway-protocol';

export const DEFAULT_NAMESPACE = 'default';
export const NAMESPACE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';

export const SHARD_PATHS = {
  search: '/v1/search',
  upsert: '/v1/upsert',
  delete: '/v1/delete',
  document: '/v1/documents/:namespace/:document_id',
  stats: '/v1/stats',
  health: '/healthz',
  ready: '/readyz',
  changes: '/v1/changes',
  export: '/v1/export',
  faults: '/v1/faults',
} as const;

/** Remaining time budget of the caller, in ms; a shard stops work it can no longer deliver in time. */
export const DEADLINE_HEADER = 'x-ragway-deadline-ms';

/**
 * Write versions order writes to one document across replicas and gateways (last writer
 * wins): a hybrid logical clock, milliseconds since the epoch × 1024 + a counter, assigned
 * by the gateway. A replica applies a document write only when its version is newer than
 * what it holds (including a delete's tombstone), so replays and reorderings converge.
 */
export const Version = Type.Integer({ minimum: 0 });

/**
 * Namespaces are flat names: `/` would be ambiguous in the shard's document path and `,` in the
 * scope header; hierarchy belongs in document ids (which may hold `/`) or a `team-a.` prefix.
 */
export const Namespace = Type.String({
  pattern: NAMESPACE_PATTERN,
  errorMessage: "a namespace is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit (no '/': put paths in document ids, or use a prefix such as team-a.docs)",
});
export const Base64Vector = Type.String({ minLength: 1, contentEncoding: 'base64' });
export const Metadata = Type.Record(Type.String(), Type.Unknown());
/** Structure is checked by `compileFilter` (shards/filter.ts), which names the bad operator. */
export const Filter = Type.Record(Type.String(), Type.Unknown());

/**
 * BM25 corpus statistics of one namespace for a query's terms: a shard's own (QueryResult
 * `term_stats`), or their sum over every shard (ShardQuery `lexical_stats`), which makes
 * scores from different shards comparable (shards/lexical/bm25-index.ts).
 */
export const LexicalStats = Type.Object(
  {
    doc_count: Type.Integer({ minimum: 0 }),
    total_length: Type.Integer({ minimum: 0 }),
    /** Analyzed term → number of chunks containing it. */
    df: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type LexicalStats = Static<typeof LexicalStats>;

export const Bm25Params = Type.Object(
  {
    k1: Type.Number({ minimum: 0, maximum: 10 }),
    b: Type.Number({ minimum: 0, maximum: 1 }),
  },
  { additionalProperties: false },
);
export type Bm25Params = Static<typeof Bm25Params>;

export const SearchMode = Type.Union([Type.Literal('vector'), Type.Literal('lexical'), Type.Literal('ids')]);
export type SearchMode = Static<typeof SearchMode>;

export const ShardQuery = Type.Object(
  {
    /**
     * "vector" (default): nearest `vector`s; "lexical": BM25 over chunk text for `text`; "ids":
     * the chunks named in `ids` that this shard holds in the namespace (score 0, in `ids` order;
     * `k` is not used), so a caller that ranked candidates without their text fetches it for the winners only.
     */
    mode: Type.Optional(SearchMode),
    /** Required in vector mode. */
    vector: Type.Optional(Base64Vector),
    /** Required in lexical mode: the query text, analyzed by the shard. */
    text: Type.Optional(Type.String({ maxLength: 65_536 })),
    /** Required in ids mode: chunk ids. */
    ids: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { maxItems: 10_000 })),
    /** Lexical: global statistics to score with; absent = this shard's own (single-shard use). */
    lexical_stats: Type.Optional(LexicalStats),
    /** Lexical: only return this shard's term_stats, no hits (the statistics phase). */
    stats_only: Type.Optional(Type.Boolean()),
    bm25: Type.Optional(Bm25Params),
    k: Type.Integer({ minimum: 1, maximum: 10_000 }),
    namespace: Namespace,
    filter: Type.Optional(Filter),
    ef: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
  },
  { additionalProperties: false },
);
export type ShardQuery = Static<typeof ShardQuery>;

export const SearchRequest = Type.Object(
  {
    queries: Type.Array(ShardQuery, { minItems: 1, maxItems: 1024 }),
    include_text: Type.Optional(Type.Boolean()),
    include_metadata: Type.Optional(Type.Boolean()),
    /** Return each hit's stored vector (for diversity re-ranking at the gateway). */
    include_vectors: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type SearchRequest = Static<typeof SearchRequest>;

export const ShardHit = Type.Object({
  id: Type.String(),
  document_id: Type.String(),
  score: Type.Number(),
  text: Type.Optional(Type.String()),
  metadata: Type.Optional(Metadata),
  /** With include_vectors: the stored vector (normalized for cosine shards). */
  vector: Type.Optional(Base64Vector),
});
export type ShardHit = Static<typeof ShardHit>;

export const QueryResult = Type.Object({
  hits: Type.Array(ShardHit),
  /** False when this shard holds nothing in the namespace (the gateway turns all-false into a 404). */
  namespace_found: Type.Boolean(),
  /** Lexical queries: this shard's statistics for the query's terms (not when the query brought global ones). */
  term_stats: Type.Optional(LexicalStats),
});
export type QueryResult = Static<typeof QueryResult>;

export const SearchResponse = Type.Object({
  results: Type.Array(QueryResult),
  epoch: Type.Integer(),
  took_ms: Type.Number(),
});
export type SearchResponse = Static<typeof SearchResponse>;

export const Chunk = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 512 }),
    document_id: Type.String({ minLength: 1, maxLength: 512 }),
    namespace: Namespace,
    text: Type.String(),
    metadata: Type.Optional(Metadata),
    vector: Base64Vector,
  },
  { additionalProperties: false },
);
export type Chunk = Static<typeof Chunk>;

export const UpsertRequest = Type.Object(
  {
    chunks: Type.Array(Chunk, { minItems: 1, maxItems: 100_000 }),
    /**
     * When true, every document named in `chunks` loses the chunks this request does not
     * carry, so re-ingesting a shorter document leaves no orphans behind.
     */
    replace_documents: Type.Optional(Type.Boolean()),
    /** The write's version for every document it names; absent = newer than anything held (single-writer use). */
    version: Type.Optional(Version),
  },
  { additionalProperties: false },
);
export type UpsertRequest = Static<typeof UpsertRequest>;

export const UpsertResponse = Type.Object({
  upserted: Type.Integer(),
  removed: Type.Integer(),
  epoch: Type.Integer(),
});
export type UpsertResponse = Static<typeof UpsertResponse>;

export const DeleteRequest = Type.Object(
  {
    namespace: Namespace,
    document_ids: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { minItems: 1, maxItems: 100_000 }),
    /** The delete's version; the shard keeps a tombstone so an older upsert arriving later is ignored. */
    version: Type.Optional(Version),
  },
  { additionalProperties: false },
);
export type DeleteRequest = Static<typeof DeleteRequest>;

export const DeleteResponse = Type.Object({
  documents_deleted: Type.Integer(),
  chunks_deleted: Type.Integer(),
  epoch: Type.Integer(),
});
export type DeleteResponse = Static<typeof DeleteResponse>;

export const DocumentParams = Type.Object({
  namespace: Namespace,
  document_id: Type.String({ minLength: 1, maxLength: 512 }),
});
export type DocumentParams = Static<typeof DocumentParams>;

export const StoredChunk = Type.Object({
  id: Type.String(),
  text: Type.String(),
  metadata: Metadata,
});

export const DocumentResponse = Type.Object({
  document_id: Type.String(),
  namespace: Type.String(),
  chunks: Type.Array(StoredChunk),
});
export type DocumentResponse = Static<typeof DocumentResponse>;

export const Space = Type.Union([Type.Literal('cosine'), Type.Literal('ip'), Type.Literal('l2')]);
export type Space = Static<typeof Space>;

/**
 * A replica's own sync state: "ready", or "catching-up" while a restarted replica copies what it
 * missed from a peer. (The gateway's judgement of a replica is retriever/replica.ts ReplicaHealth.)
 */
export const ReplicaSyncState = Type.Union([Type.Literal('ready'), Type.Literal('catching-up')]);
export type ReplicaSyncState = Static<typeof ReplicaSyncState>;

/** In /v1/stats: what background anti-entropy with the peers has done (shards/digest-protocol.ts). */
export const AntiEntropyStats = Type.Object({
  interval_ms: Type.Integer(),
  rounds: Type.Integer(),
  /** Rounds in which a namespace digest differed from the peer's. */
  rounds_with_differences: Type.Integer(),
  /** Documents pulled from a peer that changed this replica, since start. */
  documents_repaired: Type.Integer(),
  /** Documents whose hash differed from the peer's in the last round (before repair). */
  last_differences: Type.Integer(),
  /** Requests to the peer in the last round (1 when nothing differed). */
  last_requests: Type.Integer(),
  last_peer: Type.Union([Type.String(), Type.Null()]),
  /** When the last round completed (ms since the epoch), null before the first. */
  last_sync_at_ms: Type.Union([Type.Integer(), Type.Null()]),
  last_duration_ms: Type.Union([Type.Number(), Type.Null()]),
  last_error: Type.Union([Type.String(), Type.Null()]),
});
export type AntiEntropyStats = Static<typeof AntiEntropyStats>;

export const StatsResponse = Type.Object({
  protocol_version: Type.Integer(),
  dim: Type.Integer(),
  space: Space,
  /** Live chunks (searchable vectors). */
  count: Type.Integer(),
  documents: Type.Integer(),
  /** Labels allocated in the hnswlib index, including deleted slots awaiting reuse. */
  index_elements: Type.Integer(),
  capacity: Type.Integer(),
  namespaces: Type.Record(Type.String(), Type.Integer()),
  epoch: Type.Integer(),
  m: Type.Integer(),
  ef_construction: Type.Integer(),
  ef_search: Type.Integer(),
  rss_bytes: Type.Integer(),
  /** Batch search requests served since the process started. */
  search_requests: Type.Integer(),
  /** Query vectors searched since the process started (a batch request counts each). */
  search_queries: Type.Integer(),
  /** Sequence number of the last write applied (the replica's high-water mark). */
  wal_seq: Type.Integer(),
  state: ReplicaSyncState,
  /** Background anti-entropy with the peers (shards/digest-protocol.ts); absent on a replica without peers. */
  anti_entropy: Type.Optional(AntiEntropyStats),
  /**
   * The shard this replica holds (`ragway shard --shard-index`), so a gateway that discovers
   * replicas through DNS can tell which shard an address belongs to; absent when not given.
   */
  shard_index: Type.Optional(Type.Integer({ minimum: 0 })),
});
export type StatsResponse = Static<typeof StatsResponse>;

export function encodeVector(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

/** Decodes a base64 float32 vector; returns undefined when the byte length is not a multiple of 4. */
export function decodeVector(encoded: string): Float32Array | undefined {
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.byteLength === 0 || bytes.byteLength % 4 !== 0) return undefined;
  // Copy into an aligned buffer: Buffer slices from the pool may not be 4-byte aligned.
  const vector = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(vector.buffer).set(bytes);
  return vector;
}

/** One applied write, as the change feed replays it to a replica that missed it. */
export const Change = Type.Object({
  seq: Type.Integer(),
  op: Type.Union([Type.Literal('upsert'), Type.Literal('delete')]),
  upsert: Type.Optional(UpsertRequest),
  delete: Type.Optional(DeleteRequest),
});
export type Change = Static<typeof Change>;

export const ChangesQuery = Type.Object({
  since: Type.Integer({ minimum: 0 }),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
});
export type ChangesQuery = Static<typeof ChangesQuery>;

export const ChangesResponse = Type.Object({
  /** The responder's high-water mark. */
  high_water: Type.Integer(),
  /** Changes with seq > since, oldest first, at most `limit`. */
  changes: Type.Array(Change),
  /** True when the changes after `since` are no longer retained: copy a snapshot (/v1/export) instead. */
  snapshot_required: Type.Boolean(),
});
export type ChangesResponse = Static<typeof ChangesResponse>;

/** Routes fault injection can affect; health, readiness, stats and /v1/faults itself never are. */
export const FaultRoute = Type.Union([
  Type.Literal('search'),
  Type.Literal('upsert'),
  Type.Literal('delete'),
  Type.Literal('changes'),
  Type.Literal('export'),
]);
export type FaultRoute = Static<typeof FaultRoute>;

/**
 * Fault injection (only when the shard runs with RAGWAY_FAULTS=1): for tests and benchmarks.
 * POST replaces the settings wholesale ({} turns everything off); each request on an
 * affected route rolls each probability independently: a delay first (delay_probability
 * defaults to 1 when delay_ms is set), then a drop, else a failure.
 */
export const FaultSettings = Type.Object(
  {
    delay_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
    delay_probability: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    fail_probability: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    drop_probability: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    /**
     * Which routes the faults apply to; default ["search"]. "changes"/"export" slow or break a
     * peer's catch-up (tests make a replica's catch-up observable with a delay there).
     */
    routes: Type.Optional(Type.Array(FaultRoute, { uniqueItems: true, maxItems: 5 })),
  },
  { additionalProperties: false },
);
export type FaultSettings = Static<typeof FaultSettings>;

/**
 * GET /v1/export: a full copy of a replica for catch-up, as NDJSON (`EXPORT_CONTENT_TYPE`),
 * one JSON object a line:
 *
 *   {"type":"header", ...ExportHeader}      first line
 *   {"type":"document", ...ExportDocument}  one per document, live or tombstoned
 *   {"type":"end", ...ExportEnd}            last line; a stream without it is incomplete
 *
 * The copy is taken while writes continue ("fuzzy"): every document is read as it is when
 * its line is written, so it reflects at least every write up to the header's high_water
 * and maybe some after. An importer merges documents by version (idempotent) and then
 * replays /v1/changes since high_water, which makes the result exact.
 */
export const EXPORT_FORMAT = 1;
export const EXPORT_CONTENT_TYPE = 'application/x-ndjson';

export const ExportHeader = Type.Object({
  type: Type.Literal('header'),
  format: Type.Integer(),
  /** The exporter's wal_seq when the export started: replay changes after it. */
  high_water: Type.Integer(),
  epoch: Type.Integer(),
  dim: Type.Integer(),
  space: Space,
});
export type ExportHeader = Static<typeof ExportHeader>;

export const ExportChunk = Type.Object({
  id: Type.String(),
  /** Version of the write that last set this chunk. */
  version: Version,
  text: Type.String(),
  metadata: Metadata,
  /** As stored: L2-normalized for cosine shards. */
  vector: Base64Vector,
});
export type ExportChunk = Static<typeof ExportChunk>;

export const ExportDocument = Type.Object({
  type: Type.Literal('document'),
  namespace: Namespace,
  document_id: Type.String(),
  /** The document's floor: version of its newest replace or delete (0 when none); older chunk writes are ignored. */
  version: Version,
  /** True when the document was deleted and only its floor remains (chunks is then empty). */
  tombstone: Type.Optional(Type.Boolean()),
  chunks: Type.Array(ExportChunk),
});
export type ExportDocument = Static<typeof ExportDocument>;

export const ExportEnd = Type.Object({
  type: Type.Literal('end'),
  documents: Type.Integer(),
  chunks: Type.Integer(),
});
export type ExportEnd = Static<typeof ExportEnd>;

export type ExportLine = ExportHeader | ExportDocument | ExportEnd;
