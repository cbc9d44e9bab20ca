// Summaries of what a replica holds, for anti-entropy (the scheme is described in
// shards/digest-protocol.ts): a hash per document of its last-writer-wins state, XORed into
// buckets, hashed into one digest per namespace. Computed from the catalog and the floors
// on demand and cached until the next change, so a peer asking while nothing changes costs
// a map lookup; after a change the next request recomputes in O(chunks) — fine for the
// intervals anti-entropy runs at, and the reason it is not done on every write.
import { createHash } from 'node:crypto';
import { DIGEST_BUCKETS, type BucketDigest, type DigestQuery, type NamespaceDigest, type RootDigest } from '../digest-protocol.js';
import type { DeleteRequest, ExportDocument, UpsertRequest } from '../protocol.js';
import type { WalOp } from '../wal-format.js';
import type { Catalog } from './catalog.js';
import type { VersionFloors } from './versions.js';

interface NamespaceSummary {
  /** document id → its state hash (hex). */
  documents: Map<string, string>;
  /** XOR of the documents' hashes per bucket; undefined for an empty bucket. */
  buckets: (Buffer | undefined)[];
  digest: string;
}

/** FNV-1a over UTF-16 code units: cheap, stable across processes, only used to spread ids over buckets. */
export function bucketOf(documentId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < documentId.length; i++) {
    hash ^= documentId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % DIGEST_BUCKETS;
}

export class DigestCache {
  #generation = -1;
  #summaries = new Map<string, NamespaceSummary>();

  constructor(
    private readonly catalog: Catalog,
    private readonly versions: VersionFloors,
  ) {}

  /** GET /v1/digest at any of its three levels. */
  answer(generation: number, query: DigestQuery): RootDigest | NamespaceDigest | BucketDigest {
    if (query.namespace === undefined) return this.root(generation);
    if (query.bucket === undefined) return this.namespace(generation, query.namespace);
    return this.bucket(generation, query.namespace, query.bucket);
  }

  root(generation: number): RootDigest {
    const namespaces: RootDigest['namespaces'] = {};
    for (const [name, summary] of this.#current(generation)) namespaces[name] = { documents: summary.documents.size, digest: summary.digest };
    return { buckets: DIGEST_BUCKETS, namespaces };
  }

  namespace(generation: number, namespace: string): NamespaceDigest {
    const summary = this.#current(generation).get(namespace);
    return { namespace, buckets: Array.from({ length: DIGEST_BUCKETS }, (_, i) => summary?.buckets[i]?.toString('hex') ?? '') };
  }

  bucket(generation: number, namespace: string, bucket: number): BucketDigest {
    const documents: [string, string][] = [];
    for (const [documentId, hash] of this.#current(generation).get(namespace)?.documents ?? []) {
      if (bucketOf(documentId) === bucket) documents.push([documentId, hash]);
    }
    return { namespace, bucket, documents };
  }

  #current(generation: number): Map<string, NamespaceSummary> {
    if (generation !== this.#generation) {
      this.#summaries = this.#compute();
      this.#generation = generation;
    }
    return this.#summaries;
  }

  #compute(): Map<string, NamespaceSummary> {
    const ids = new Map<string, Set<string>>();
    const add = (namespace: string, documentId: string): void => {
      let set = ids.get(namespace);
      if (set === undefined) {
        set = new Set();
        ids.set(namespace, set);
      }
      set.add(documentId);
    };
    for (const [name, namespace] of this.catalog.namespaces) for (const documentId of namespace.documents.keys()) add(name, documentId);
    for (const [namespace, documentId] of this.versions.lines()) add(namespace, documentId);

    const summaries = new Map<string, NamespaceSummary>();
    for (const [namespace, documentIds] of ids) {
      const documents = new Map<string, string>();
      const buckets: (Buffer | undefined)[] = new Array(DIGEST_BUCKETS).fill(undefined);
      for (const documentId of documentIds) {
        const hash = this.#documentHash(namespace, documentId);
        documents.set(documentId, hash.toString('hex'));
        const bucket = bucketOf(documentId);
        const acc = buckets[bucket];
        if (acc === undefined) buckets[bucket] = Buffer.from(hash);
        else for (let i = 0; i < acc.length; i++) acc[i] = (acc[i] as number) ^ (hash[i] as number);
      }
      const root = createHash('sha1');
      for (const bucket of buckets) root.update(bucket ?? Buffer.alloc(0)).update('|');
      summaries.set(namespace, { documents, buckets, digest: root.digest('hex') });
    }
    return summaries;
  }

  /** Floor plus each chunk's id and version, in id order: equal exactly when LWW would see the same document. */
  #documentHash(namespace: string, documentId: string): Buffer {
    const hash = createHash('sha1').update(documentId).update('\u0000').update(String(this.versions.floorOf(namespace, documentId)));
    const chunks = [...(this.catalog.documentChunks(namespace, documentId)?.values() ?? [])].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const chunk of chunks) hash.update('\u0000').update(chunk.id).update('\u0001').update(String(chunk.version));
    return hash.digest();
  }
}

/**
 * A document pulled from a peer, as log records that rebuild it by the ordinary write rules:
 * a delete at its floor, then one upsert per chunk version. Logged, the repair is durable
 * like any write and reaches other replicas through the change feed.
 */
export function repairRecords(document: ExportDocument): [WalOp, UpsertRequest | DeleteRequest][] {
  const { namespace, document_id: documentId } = document;
  const records: [WalOp, UpsertRequest | DeleteRequest][] = [];
  if (document.version > 0) records.push(['delete', { namespace, document_ids: [documentId], version: document.version }]);
  const byVersion = new Map<number, UpsertRequest['chunks']>();
  for (const chunk of document.chunks) {
    const chunks = byVersion.get(chunk.version) ?? [];
    chunks.push({ id: chunk.id, document_id: documentId, namespace, text: chunk.text, metadata: chunk.metadata, vector: chunk.vector });
    byVersion.set(chunk.version, chunks);
  }
  for (const version of [...byVersion.keys()].sort((a, b) => a - b)) {
    records.push(['upsert', { chunks: byVersion.get(version) as UpsertRequest['chunks'], version }]);
  }
  return records;
}
