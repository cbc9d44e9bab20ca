// Wire types of anti-entropy between the replicas of a shard (shards/anti-entropy.ts does
// the comparing). Beside protocol.ts, whose version and header they share.
//
// What a replica holds is summarised per document by a hash of its last-writer-wins state:
// its floor (newest replace or delete, so a tombstone counts) and each chunk's id and
// version. Documents fall into DIGEST_BUCKETS buckets by a hash of their id; a bucket's
// digest is the XOR of its documents' hashes and a namespace's digest is the hash of its
// buckets' digests. Two replicas compare namespace digests (one request when nothing
// differs), then the buckets of a namespace that differs, then the documents of a bucket
// that differs, and pull only the documents whose hashes differ.
import { Type, type Static } from '@sinclair/typebox';
import { ExportDocument, Namespace } from './protocol.js';

export const DIGEST_BUCKETS = 64;

export const DIGEST_PATHS = {
  digest: '/v1/digest',
  documents: '/v1/digest/documents',
} as const;

export const DigestQuery = Type.Object(
  {
    namespace: Type.Optional(Namespace),
    bucket: Type.Optional(Type.Integer({ minimum: 0, maximum: DIGEST_BUCKETS - 1 })),
  },
  { additionalProperties: false },
);
export type DigestQuery = Static<typeof DigestQuery>;

/** GET /v1/digest: every namespace (tombstones included) with its document count and digest. */
export const RootDigest = Type.Object({
  buckets: Type.Integer(),
  namespaces: Type.Record(Type.String(), Type.Object({ documents: Type.Integer(), digest: Type.String() })),
});
export type RootDigest = Static<typeof RootDigest>;

/** GET /v1/digest?namespace=: one hex digest per bucket ("" for an empty bucket). */
export const NamespaceDigest = Type.Object({
  namespace: Type.String(),
  buckets: Type.Array(Type.String()),
});
export type NamespaceDigest = Static<typeof NamespaceDigest>;

/** GET /v1/digest?namespace=&bucket=: the bucket's documents as [document id, hash]. */
export const BucketDigest = Type.Object({
  namespace: Type.String(),
  bucket: Type.Integer(),
  documents: Type.Array(Type.Tuple([Type.String(), Type.String()])),
});
export type BucketDigest = Static<typeof BucketDigest>;

/** POST /v1/digest/documents: the named documents as export lines (absent ones are left out). */
export const DigestDocumentsRequest = Type.Object(
  {
    namespace: Namespace,
    document_ids: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { minItems: 1, maxItems: 1_000 }),
  },
  { additionalProperties: false },
);
export type DigestDocumentsRequest = Static<typeof DigestDocumentsRequest>;

export const DigestDocumentsResponse = Type.Object({ documents: Type.Array(ExportDocument) });
export type DigestDocumentsResponse = Static<typeof DigestDocumentsResponse>;
