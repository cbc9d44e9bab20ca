// What hnswlib lacks: string chunk ids, documents, namespaces and metadata for each label.
// Every live label has one ChunkRecord; namespaces keep their live labels in an array (the
// candidate list for exact scans and filter sampling) with O(1) swap-removal.
import type { Metadata } from '../filter.js';
import type { ChunkLine } from '../snapshot.js';

export interface ChunkRecord {
  readonly label: number;
  readonly id: string;
  documentId: string;
  readonly namespace: NamespaceState;
  text: string;
  metadata: Metadata;
  /** Version of the write that last set this chunk. */
  version: number;
  /** Position in namespace.labels, kept so removal is an O(1) swap. */
  slot: number;
}

export interface NamespaceState {
  readonly name: string;
  /** Live labels in no particular order: the candidate list for exact scans and sampling. */
  readonly labels: number[];
  readonly chunks: Map<string, ChunkRecord>;
  /** document id → its chunks by id, in insertion order (Map order). */
  readonly documents: Map<string, Map<string, ChunkRecord>>;
}

export interface ChunkFields {
  id: string;
  documentId: string;
  namespace: string;
  text: string;
  metadata: Metadata;
}

export class Catalog {
  private readonly records: (ChunkRecord | undefined)[] = [];
  readonly namespaces = new Map<string, NamespaceState>();
  private live = 0;

  get liveCount(): number {
    return this.live;
  }

  record(label: number): ChunkRecord | undefined {
    return this.records[label];
  }

  chunk(namespace: string, id: string): ChunkRecord | undefined {
    return this.namespaces.get(namespace)?.chunks.get(id);
  }

  documentChunks(namespace: string, documentId: string): Map<string, ChunkRecord> | undefined {
    return this.namespaces.get(namespace)?.documents.get(documentId);
  }

  attach(label: number, chunk: ChunkFields, version: number): ChunkRecord {
    const namespace = this.namespaceFor(chunk.namespace);
    const record: ChunkRecord = {
      label,
      id: chunk.id,
      documentId: chunk.documentId,
      namespace,
      text: chunk.text,
      metadata: chunk.metadata,
      version,
      slot: namespace.labels.length,
    };
    namespace.labels.push(label);
    namespace.chunks.set(chunk.id, record);
    this.chunksOf(namespace, chunk.documentId).set(chunk.id, record);
    this.records[label] = record;
    this.live += 1;
    return record;
  }

  moveToDocument(record: ChunkRecord, documentId: string): void {
    this.detachFromDocument(record);
    record.documentId = documentId;
    this.chunksOf(record.namespace, documentId).set(record.id, record);
  }

  /** Forgets the record; the caller releases its label in the vector index. */
  remove(record: ChunkRecord): void {
    const { namespace } = record;
    const lastLabel = namespace.labels.pop() as number;
    if (lastLabel !== record.label) {
      namespace.labels[record.slot] = lastLabel;
      (this.records[lastLabel] as ChunkRecord).slot = record.slot;
    }
    namespace.chunks.delete(record.id);
    this.detachFromDocument(record);
    if (namespace.labels.length === 0) this.namespaces.delete(namespace.name);
    this.records[record.label] = undefined;
    this.live -= 1;
  }

  /** Document and chunk insertion order survive a round trip because lines follow Map order. */
  *chunkLines(): Generator<ChunkLine> {
    for (const namespace of this.namespaces.values()) {
      for (const [documentId, chunks] of namespace.documents) {
        for (const record of chunks.values()) {
          yield [record.label, namespace.name, documentId, record.id, record.text, record.metadata, record.version];
        }
      }
    }
  }

  private namespaceFor(name: string): NamespaceState {
    let namespace = this.namespaces.get(name);
    if (namespace === undefined) {
      namespace = { name, labels: [], chunks: new Map(), documents: new Map() };
      this.namespaces.set(name, namespace);
    }
    return namespace;
  }

  private chunksOf(namespace: NamespaceState, documentId: string): Map<string, ChunkRecord> {
    let chunks = namespace.documents.get(documentId);
    if (chunks === undefined) {
      chunks = new Map();
      namespace.documents.set(documentId, chunks);
    }
    return chunks;
  }

  private detachFromDocument(record: ChunkRecord): void {
    const { documents } = record.namespace;
    const chunks = documents.get(record.documentId);
    chunks?.delete(record.id);
    if (chunks?.size === 0) documents.delete(record.documentId);
  }
}
