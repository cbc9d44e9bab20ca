// Wire contract between the gateway and shard nodes. Both sides import this file; the
// schemas validate requests on the shard and the static types are derived from them.
// Vectors travel as base64 of little-endian float32 (JSON arrays of floats are ~3x larger
// and slow to parse on the hot path).
import { Type, type Static } from '@sinclair/typebox';

/** Bump on any incompatible change; both sides refuse to talk across versions. */
export const PROTOCOL_VERSION = 1;
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
} as const;

export const Namespace = Type.String({ pattern: NAMESPACE_PATTERN });
export const Base64Vector = Type.String({ minLength: 1, contentEncoding: 'base64' });
export const Metadata = Type.Record(Type.String(), Type.Unknown());
/** Structure is checked by `compileFilter` (shards/filter.ts), which names the bad operator. */
export const Filter = Type.Record(Type.String(), Type.Unknown());

export const ShardQuery = Type.Object(
  {
    vector: Base64Vector,
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
});
export type ShardHit = Static<typeof ShardHit>;

export const QueryResult = Type.Object({
  hits: Type.Array(ShardHit),
  /** False when this shard holds nothing in the namespace (the gateway turns all-false into a 404). */
  namespace_found: Type.Boolean(),
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
