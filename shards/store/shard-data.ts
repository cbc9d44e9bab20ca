// A shard's data and the rules that change it: the catalog of chunks, the vector index and
// the last-writer-wins floors, changed only by applying a versioned write (an upsert, a
// delete, or one document of a peer's export). Applying is deterministic and idempotent,
// which is what lets the same write come from the client, the log replay or a peer.
import { createError } from '../../core/errors.js';
import type { Metadata } from '../filter.js';
import type { ExportDocument, UpsertRequest } from '../protocol.js';
import type { ChunkLine, FloorLine } from '../snapshot.js';
import { Catalog, type ChunkRecord } from './catalog.js';
import type { VectorIndex } from './vector-index.js';
import { VersionFloors } from './versions.js';

export interface PreparedChunk {
  id: string;
  documentId: string;
  namespace: string;
  text: string;
  metadata: Metadata;
  vector: Float32Array;
}

export interface ApplyOutcome {
  upserted: number;
  removed: number;
  /** Anything changed, floors included: the write must be logged. */
  changed: boolean;
}

export interface DeleteOutcome {
  documentsDeleted: number;
  chunksDeleted: number;
  changed: boolean;
}

export class ShardData {
  readonly catalog = new Catalog();
  readonly versions = new VersionFloors();
  /** The counter bumped by every write that changed a chunk; part of the gateway's cache keys. */
  epoch = 0;

  constructor(readonly vectors: VectorIndex) {}

  /** Validates a request's chunks (duplicate ids, vectors) before anything is applied. */
  prepareChunks(request: UpsertRequest): PreparedChunk[] {
    const seen = new Set<string>();
    return request.chunks.map((chunk, i) => {
      const key = `${chunk.namespace}\u0000${chunk.id}`;
      if (seen.has(key)) {
        throw createError(
          'RAGWAY_ERR_INVALID_REQUEST',
          `chunk id ${JSON.stringify(chunk.id)} appears more than once in namespace ${JSON.stringify(chunk.namespace)}`,
          { param: `chunks[${i}].id` },
        );
      }
      seen.add(key);
      return {
        id: chunk.id,
        documentId: chunk.document_id,
        namespace: chunk.namespace,
        text: chunk.text,
        metadata: chunk.metadata ?? {},
        vector: this.vectors.decodeChecked(chunk.vector, `chunks[${i}].vector`),
      };
    });
  }

  applyUpsert(prepared: PreparedChunk[], version: number, replaceDocuments: boolean): ApplyOutcome {
    this.versions.observe(version);
    let removed = 0;
    let floorsChanged = false;
    if (replaceDocuments) {
      // A replace is a delete of the document at this version plus the chunks it carries;
      // listed chunks are left in place (and overwritten below) so their labels are kept.
      for (const [namespace, byDocument] of groupByDocument(prepared)) {
        for (const [documentId, listed] of byDocument) {
          if (this.versions.raise(namespace, documentId, version)) floorsChanged = true;
          removed += this.removeOlder(namespace, documentId, version, listed);
        }
      }
    }
    const winners = prepared.filter((chunk) => this.accepts(chunk, version));
    this.vectors.ensureCapacity(this.countNew(winners));
    for (const chunk of winners) this.upsertChunk(chunk, version);
    const upserted = winners.length;
    if (upserted + removed > 0) this.epoch += 1;
    return { upserted, removed, changed: upserted + removed > 0 || floorsChanged };
  }

  applyDelete(namespace: string, documentIds: readonly string[], version: number): DeleteOutcome {
    this.versions.observe(version);
    let documentsDeleted = 0;
    let chunksDeleted = 0;
    let floorsChanged = false;
    for (const documentId of new Set(documentIds)) {
      // The floor stays even when nothing was there: an older upsert may still be on its way.
      if (this.versions.raise(namespace, documentId, version)) floorsChanged = true;
      const removed = this.removeOlder(namespace, documentId, version);
      if (removed > 0) {
        documentsDeleted += 1;
        chunksDeleted += removed;
      }
    }
    if (chunksDeleted > 0) this.epoch += 1;
    return { documentsDeleted, chunksDeleted, changed: chunksDeleted > 0 || floorsChanged };
  }

  /** Merges one document of a peer's export by the same version rules; returns whether anything changed. */
  importDocument(document: ExportDocument): boolean {
    const prepared = document.chunks.map((chunk, i) => ({
      id: chunk.id,
      documentId: document.document_id,
      namespace: document.namespace,
      text: chunk.text,
      metadata: chunk.metadata,
      // Exported vectors are stored ones, already normalized: normalizing again could move the last bit.
      vector: this.vectors.decodeChecked(chunk.vector, `chunks[${i}].vector`, false),
      version: chunk.version,
    }));
    let touched = 0;
    let floorChanged = false;
    if (document.version > 0) {
      this.versions.observe(document.version);
      floorChanged = this.versions.raise(document.namespace, document.document_id, document.version);
      touched += this.removeOlder(document.namespace, document.document_id, document.version);
    }
    for (const chunk of prepared) {
      this.versions.observe(chunk.version);
      if (!this.accepts(chunk, chunk.version)) continue;
      this.vectors.ensureCapacity(this.countNew([chunk]));
      this.upsertChunk(chunk, chunk.version);
      touched += 1;
    }
    if (touched > 0) this.epoch += 1;
    return touched > 0 || floorChanged;
  }

  /** Rebuilds the catalog and floors from a snapshot (the vector index loads its own files). */
  restore(manifest: { epoch: number; max_version: number }, lines: readonly ChunkLine[], floors: readonly FloorLine[]): void {
    this.epoch = manifest.epoch;
    this.versions.observe(manifest.max_version);
    // A format-1 snapshot has no versions: its chunks count as version 0, older than any write.
    for (const [label, namespace, documentId, id, text, metadata, version = 0] of lines) {
      this.attach(label, { id, documentId, namespace, text, metadata }, version);
      this.versions.observe(version);
    }
    for (const [namespace, documentId, version, at] of floors) {
      this.versions.raise(namespace, documentId, version, at);
      this.versions.observe(version);
    }
  }

  isLive = (namespace: string, documentId: string): boolean => this.catalog.documentChunks(namespace, documentId) !== undefined;

  /** Whether a chunk write at `version` wins over what the store holds. */
  private accepts(chunk: { namespace: string; documentId: string; id: string }, version: number): boolean {
    const held = this.catalog.chunk(chunk.namespace, chunk.id)?.version;
    return this.versions.accepts(chunk.namespace, chunk.documentId, held, version);
  }

  private countNew(prepared: readonly { namespace: string; id: string }[]): number {
    return prepared.filter((c) => this.catalog.chunk(c.namespace, c.id) === undefined).length;
  }

  private upsertChunk(chunk: PreparedChunk, version: number): void {
    const existing = this.catalog.chunk(chunk.namespace, chunk.id);
    if (existing !== undefined) {
      this.vectors.write(existing.label, chunk.vector);
      existing.text = chunk.text;
      existing.metadata = chunk.metadata;
      existing.version = version;
      if (existing.documentId !== chunk.documentId) this.catalog.moveToDocument(existing, chunk.documentId);
      return;
    }
    const label = this.vectors.allocate();
    this.vectors.write(label, chunk.vector);
    this.attach(label, chunk, version);
  }

  private attach(label: number, chunk: Omit<PreparedChunk, 'vector'>, version: number): void {
    this.catalog.attach(label, chunk, version);
  }

  private removeChunk(record: ChunkRecord): void {
    this.vectors.release(record.label);
    this.catalog.remove(record);
  }

  /** Removes the document's chunks set by writes older than `version` (except `keep`). */
  private removeOlder(namespace: string, documentId: string, version: number, keep?: ReadonlySet<string>): number {
    const chunks = this.catalog.documentChunks(namespace, documentId);
    if (chunks === undefined) return 0;
    let removed = 0;
    for (const record of [...chunks.values()]) {
      if (record.version >= version || keep?.has(record.id) === true) continue;
      this.removeChunk(record);
      removed += 1;
    }
    return removed;
  }
}

/** namespace → document id → the chunk ids a request carries for it. */
function groupByDocument(prepared: readonly PreparedChunk[]): Map<string, Map<string, Set<string>>> {
  const listed = new Map<string, Map<string, Set<string>>>();
  for (const chunk of prepared) {
    let byDocument = listed.get(chunk.namespace);
    if (byDocument === undefined) {
      byDocument = new Map();
      listed.set(chunk.namespace, byDocument);
    }
    let ids = byDocument.get(chunk.documentId);
    if (ids === undefined) {
      ids = new Set();
      byDocument.set(chunk.documentId, ids);
    }
    ids.add(chunk.id);
  }
  return listed;
}
