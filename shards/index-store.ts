// One shard's vectors and chunks: an hnswlib HNSW graph for approximate search plus the
// bookkeeping hnswlib lacks — string chunk ids, documents, namespaces, metadata, a label
// free list — and snapshots on disk. It is synchronous on purpose: every mutation finishes
// within one event-loop turn, so the native index is never touched concurrently.
import hnswlib from 'hnswlib-node';
import { createError } from '../gateway/errors.js';
import { compileFilter, type Metadata, type MetadataPredicate } from './filter.js';
import {
  PROTOCOL_VERSION,
  decodeVector,
  type DeleteRequest,
  type DeleteResponse,
  type DocumentResponse,
  type QueryResult,
  type SearchRequest,
  type SearchResponse,
  type ShardHit,
  type ShardQuery,
  type Space,
  type StatsResponse,
  type UpsertRequest,
  type UpsertResponse,
} from './protocol.js';
import type { ShardStore } from './shard-store.js';
import { currentSnapshotName, loadSnapshot, removeStale, writeSnapshot, type ChunkLine } from './snapshot.js';

const { HierarchicalNSW } = hnswlib;
type HnswIndex = InstanceType<typeof HierarchicalNSW>;

export interface IndexStoreOptions {
  dataDir: string;
  dim: number;
  space: Space;
  /** HNSW graph degree; fixed when the index is created (a loaded index keeps its own). */
  m?: number;
  efConstruction?: number;
  /** Default search breadth; a query's `ef` overrides it and k raises it. */
  efSearch?: number;
  initialCapacity?: number;
  /**
   * Candidate sets (a namespace, or a filter's estimated matches) at or below this size are
   * scanned exactly instead of searched in the graph: cheaper, and a very selective filter
   * makes HNSW wander the whole graph or miss matches. 0 always searches the graph (tests).
   */
  bruteForceThreshold?: number;
  /** Snapshot this long after the first unsaved write; 0 disables (call save()/close()). */
  autoSaveMs?: number;
  /** Where auto-save failures go (the store keeps its data and retries on the next write). */
  onAutoSaveError?: (err: unknown) => void;
}

const DEFAULTS = {
  m: 16,
  efConstruction: 200,
  efSearch: 64,
  initialCapacity: 1024,
  bruteForceThreshold: 512,
  autoSaveMs: 1000,
} as const;

/** Filter selectivity is estimated from this many evenly spaced namespace members. */
const SELECTIVITY_SAMPLE = 512;

interface ChunkRecord {
  readonly label: number;
  readonly id: string;
  documentId: string;
  readonly namespace: NamespaceState;
  text: string;
  metadata: Metadata;
  /** Position in namespace.labels, kept so removal is an O(1) swap. */
  slot: number;
}

interface NamespaceState {
  readonly name: string;
  /** Live labels in no particular order: the candidate list for exact scans and sampling. */
  readonly labels: number[];
  readonly chunks: Map<string, ChunkRecord>;
  /** document id → its chunks by id, in insertion order (Map order). */
  readonly documents: Map<string, Map<string, ChunkRecord>>;
}

interface PreparedChunk {
  id: string;
  documentId: string;
  namespace: string;
  text: string;
  metadata: Metadata;
  vector: Float32Array;
}

interface PreparedQuery {
  vector: Float32Array;
  k: number;
  namespace: string;
  ef: number | undefined;
  predicate: MetadataPredicate | undefined;
}

interface Scored {
  label: number;
  score: number;
}

export class IndexStore implements ShardStore {
  readonly dim: number;
  readonly space: Space;
  readonly dataDir: string;
  private readonly m: number;
  private readonly efConstruction: number;
  private readonly efSearch: number;
  private readonly bruteForceThreshold: number;
  private readonly autoSaveMs: number;
  private readonly onAutoSaveError: (err: unknown) => void;

  private readonly index: HnswIndex;
  private capacity: number;
  /** Label-major copy of every stored (normalized, for cosine) vector, for exact scans. */
  private vectors: Float32Array;
  private readonly records: (ChunkRecord | undefined)[] = [];
  private readonly namespaces = new Map<string, NamespaceState>();
  private readonly freeLabels: number[] = [];
  private nextLabel = 0;
  private liveCount = 0;
  private epoch = 0;

  private dirty = false;
  private closed = false;
  private saveTimer: NodeJS.Timeout | undefined;

  private constructor(options: IndexStoreOptions, index: HnswIndex, params: { m: number; efConstruction: number }) {
    this.dim = options.dim;
    this.space = options.space;
    this.dataDir = options.dataDir;
    this.m = params.m;
    this.efConstruction = params.efConstruction;
    this.efSearch = options.efSearch ?? DEFAULTS.efSearch;
    this.bruteForceThreshold = options.bruteForceThreshold ?? DEFAULTS.bruteForceThreshold;
    this.autoSaveMs = options.autoSaveMs ?? DEFAULTS.autoSaveMs;
    this.onAutoSaveError =
      options.onAutoSaveError ??
      ((err) => process.emitWarning(`ragway shard auto-save failed: ${String(err)}`, 'RagwayAutoSaveWarning'));
    this.index = index;
    this.capacity = index.getMaxElements();
    this.vectors = new Float32Array(this.capacity * this.dim);
  }

  /** Loads the snapshot in `dataDir` when there is one, else starts an empty index. */
  static open(options: IndexStoreOptions): IndexStore {
    validateOptions(options);
    const snapshot = loadSnapshot(options.dataDir);
    if (snapshot === undefined) {
      const index = new HierarchicalNSW(options.space, options.dim);
      const m = options.m ?? DEFAULTS.m;
      const efConstruction = options.efConstruction ?? DEFAULTS.efConstruction;
      index.initIndex({ maxElements: options.initialCapacity ?? DEFAULTS.initialCapacity, m, efConstruction });
      return new IndexStore(options, index, { m, efConstruction });
    }
    const { manifest } = snapshot;
    if (manifest.dim !== options.dim || manifest.space !== options.space) {
      throw new Error(
        `${options.dataDir} holds a ${manifest.dim}-dimensional ${manifest.space} index, but this shard was ` +
          `configured for ${options.dim} dimensions and space ${options.space}; use another data dir or matching settings`,
      );
    }
    const index = new HierarchicalNSW(options.space, options.dim);
    index.readIndexSync(snapshot.indexPath);
    // hnswlib reloads an index that holds no elements with capacity 0.
    if (index.getMaxElements() < manifest.capacity) index.resizeIndex(manifest.capacity);
    const store = new IndexStore(options, index, { m: manifest.m, efConstruction: manifest.ef_construction });
    store.restore(manifest.epoch, manifest.next_label, manifest.free_labels, snapshot.vectors, snapshot.chunks);
    const current = currentSnapshotName(options.dataDir);
    if (current !== undefined) removeStale(options.dataDir, current);
    return store;
  }

  // ---------------------------------------------------------------- writes

  upsert(request: UpsertRequest): UpsertResponse {
    this.assertOpen();
    const prepared = this.prepareChunks(request);
    this.ensureCapacity(this.countNewChunks(prepared));
    for (const chunk of prepared) this.upsertChunk(chunk);
    const removed = request.replace_documents === true ? this.removeUnlisted(prepared) : 0;
    this.epoch += 1;
    this.markDirty();
    return { upserted: prepared.length, removed, epoch: this.epoch };
  }

  delete(request: DeleteRequest): DeleteResponse {
    this.assertOpen();
    const namespace = this.namespaces.get(request.namespace);
    let documentsDeleted = 0;
    let chunksDeleted = 0;
    for (const documentId of new Set(request.document_ids)) {
      const chunks = namespace?.documents.get(documentId);
      if (chunks === undefined) continue;
      documentsDeleted += 1;
      for (const record of [...chunks.values()]) {
        this.removeChunk(record);
        chunksDeleted += 1;
      }
    }
    if (chunksDeleted > 0) {
      this.epoch += 1;
      this.markDirty();
    }
    return { documents_deleted: documentsDeleted, chunks_deleted: chunksDeleted, epoch: this.epoch };
  }

  // ---------------------------------------------------------------- reads

  search(request: SearchRequest): SearchResponse {
    const started = performance.now();
    // Validate the whole batch first so a bad query 7 does not waste queries 0-6's work.
    const queries = request.queries.map((query, i) => this.prepareQuery(query, i));
    const includeText = request.include_text !== false;
    const includeMetadata = request.include_metadata !== false;
    this.searchRequests += 1;
    this.searchQueries += queries.length;
    const results = queries.map((query): QueryResult => {
      const namespace = this.namespaces.get(query.namespace);
      if (namespace === undefined) return { hits: [], namespace_found: false };
      const scored = this.searchNamespace(namespace, query);
      return { hits: scored.map((s) => this.toHit(s, includeText, includeMetadata)), namespace_found: true };
    });
    return { results, epoch: this.epoch, took_ms: performance.now() - started };
  }

  getDocument(namespace: string, documentId: string): DocumentResponse | undefined {
    const chunks = this.namespaces.get(namespace)?.documents.get(documentId);
    if (chunks === undefined) return undefined;
    return {
      document_id: documentId,
      namespace,
      chunks: [...chunks.values()].map((r) => ({ id: r.id, text: r.text, metadata: r.metadata })),
    };
  }

  stats(): StatsResponse {
    let documents = 0;
    const namespaces: Record<string, number> = {};
    for (const [name, state] of this.namespaces) {
      namespaces[name] = state.labels.length;
      documents += state.documents.size;
    }
    return {
      protocol_version: PROTOCOL_VERSION,
      dim: this.dim,
      space: this.space,
      count: this.liveCount,
      documents,
      index_elements: this.index.getCurrentCount(),
      capacity: this.capacity,
      namespaces,
      epoch: this.epoch,
      m: this.m,
      ef_construction: this.efConstruction,
      ef_search: this.efSearch,
      rss_bytes: process.memoryUsage().rss,
      search_requests: this.searchRequests,
      search_queries: this.searchQueries,
    };
  }

  /** Search requests and queries served since this process opened the store (operators, and cache tests, count them). */
  private searchRequests = 0;
  private searchQueries = 0;

  /** The counter bumped by every write that changed something; part of the gateway's cache keys. */
  get currentEpoch(): number {
    return this.epoch;
  }

  // ---------------------------------------------------------------- persistence

  /** Writes a snapshot now (atomically: CURRENT moves only once the new one is whole). */
  save(): void {
    this.clearSaveTimer();
    writeSnapshot(this.dataDir, {
      manifest: {
        dim: this.dim,
        space: this.space,
        m: this.m,
        ef_construction: this.efConstruction,
        epoch: this.epoch,
        next_label: this.nextLabel,
        capacity: this.capacity,
        count: this.liveCount,
        free_labels: [...this.freeLabels],
      },
      writeIndex: (path) => this.index.writeIndexSync(path),
      vectors: this.vectors.subarray(0, this.nextLabel * this.dim),
      chunks: this.chunkLines(),
    });
    this.dirty = false;
  }

  /** Saves only when something changed since the last snapshot. */
  flush(): void {
    if (this.dirty) this.save();
  }

  /** Flushes and stops auto-save; later writes are refused. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.clearSaveTimer();
    this.flush();
    this.closed = true;
  }

  private markDirty(): void {
    this.dirty = true;
    // Not re-armed per write: a steady stream of writes must still be saved every autoSaveMs.
    if (this.autoSaveMs <= 0 || this.saveTimer !== undefined) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      try {
        this.flush();
      } catch (err) {
        this.onAutoSaveError(err);
      }
    }, this.autoSaveMs);
    // A pending save must not keep a finished process alive; close() flushes explicitly.
    this.saveTimer.unref();
  }

  private clearSaveTimer(): void {
    if (this.saveTimer === undefined) return;
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
  }

  /** Document and chunk insertion order survive a round trip because lines follow Map order. */
  private *chunkLines(): Generator<ChunkLine> {
    for (const namespace of this.namespaces.values()) {
      for (const [documentId, chunks] of namespace.documents) {
        for (const record of chunks.values()) {
          yield [record.label, namespace.name, documentId, record.id, record.text, record.metadata];
        }
      }
    }
  }

  private restore(epoch: number, nextLabel: number, freeLabels: number[], vectors: Float32Array, lines: ChunkLine[]): void {
    this.epoch = epoch;
    this.nextLabel = nextLabel;
    this.freeLabels.push(...freeLabels);
    this.vectors.set(vectors);
    for (const [label, namespace, documentId, id, text, metadata] of lines) {
      this.attachRecord(label, { id, documentId, namespace, text, metadata });
    }
  }

  // ---------------------------------------------------------------- write helpers

  private assertOpen(): void {
    if (this.closed) throw createError('RAGWAY_ERR_NOT_READY', 'the shard store is closed');
  }

  private prepareChunks(request: UpsertRequest): PreparedChunk[] {
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
        vector: this.decodeChecked(chunk.vector, `chunks[${i}].vector`),
      };
    });
  }

  /** Decodes, checks dimension and finiteness, and normalizes for cosine (as hnswlib stores it). */
  private decodeChecked(encoded: string, param: string): Float32Array {
    const vector = decodeVector(encoded);
    if (vector === undefined) {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', `${param} is not base64 of little-endian float32 values`, { param });
    }
    if (vector.length !== this.dim) {
      throw createError(
        'RAGWAY_ERR_INVALID_REQUEST',
        `${param} has ${vector.length} dimensions; this shard's index has ${this.dim}`,
        { param },
      );
    }
    for (let d = 0; d < vector.length; d++) {
      if (!Number.isFinite(vector[d])) {
        throw createError('RAGWAY_ERR_INVALID_REQUEST', `${param} has a non-finite value at index ${d}`, { param });
      }
    }
    if (this.space === 'cosine') normalize(vector);
    return vector;
  }

  private countNewChunks(prepared: PreparedChunk[]): number {
    return prepared.filter((c) => this.namespaces.get(c.namespace)?.chunks.has(c.id) !== true).length;
  }

  /** Doubles the index (and the vector copy) until `newChunks` more labels fit. */
  private ensureCapacity(newChunks: number): void {
    const fresh = Math.max(0, newChunks - this.freeLabels.length);
    const needed = this.nextLabel + fresh;
    if (needed <= this.capacity) return;
    let capacity = Math.max(this.capacity, 1);
    while (capacity < needed) capacity *= 2;
    this.index.resizeIndex(capacity);
    const vectors = new Float32Array(capacity * this.dim);
    vectors.set(this.vectors);
    this.vectors = vectors;
    this.capacity = capacity;
  }

  private upsertChunk(chunk: PreparedChunk): void {
    const existing = this.namespaces.get(chunk.namespace)?.chunks.get(chunk.id);
    if (existing !== undefined) {
      this.writeVector(existing.label, chunk.vector);
      existing.text = chunk.text;
      existing.metadata = chunk.metadata;
      if (existing.documentId !== chunk.documentId) this.moveToDocument(existing, chunk.documentId);
      return;
    }
    // A reused label is marked deleted in hnswlib; addPoint on it unmarks it and rewires it.
    const label = this.freeLabels.pop() ?? this.nextLabel++;
    this.writeVector(label, chunk.vector);
    this.attachRecord(label, chunk);
  }

  private writeVector(label: number, vector: Float32Array): void {
    // hnswlib-node accepts only plain arrays (it rejects typed arrays).
    this.index.addPoint(Array.from(vector), label);
    this.vectors.set(vector, label * this.dim);
  }

  private attachRecord(
    label: number,
    chunk: { id: string; documentId: string; namespace: string; text: string; metadata: Metadata },
  ): void {
    const namespace = this.namespaceFor(chunk.namespace);
    const record: ChunkRecord = {
      label,
      id: chunk.id,
      documentId: chunk.documentId,
      namespace,
      text: chunk.text,
      metadata: chunk.metadata,
      slot: namespace.labels.length,
    };
    namespace.labels.push(label);
    namespace.chunks.set(chunk.id, record);
    this.documentChunks(namespace, chunk.documentId).set(chunk.id, record);
    this.records[label] = record;
    this.liveCount += 1;
  }

  private namespaceFor(name: string): NamespaceState {
    let namespace = this.namespaces.get(name);
    if (namespace === undefined) {
      namespace = { name, labels: [], chunks: new Map(), documents: new Map() };
      this.namespaces.set(name, namespace);
    }
    return namespace;
  }

  private documentChunks(namespace: NamespaceState, documentId: string): Map<string, ChunkRecord> {
    let chunks = namespace.documents.get(documentId);
    if (chunks === undefined) {
      chunks = new Map();
      namespace.documents.set(documentId, chunks);
    }
    return chunks;
  }

  private moveToDocument(record: ChunkRecord, documentId: string): void {
    this.detachFromDocument(record);
    record.documentId = documentId;
    this.documentChunks(record.namespace, documentId).set(record.id, record);
  }

  private detachFromDocument(record: ChunkRecord): void {
    const { documents } = record.namespace;
    const chunks = documents.get(record.documentId);
    chunks?.delete(record.id);
    if (chunks?.size === 0) documents.delete(record.documentId);
  }

  /** replace_documents: drops chunks of the named documents that the request did not carry. */
  private removeUnlisted(prepared: PreparedChunk[]): number {
    const listed = new Map<string, Map<string, Set<string>>>();
    for (const chunk of prepared) {
      const byDocument = listed.get(chunk.namespace) ?? new Map<string, Set<string>>();
      listed.set(chunk.namespace, byDocument);
      const ids = byDocument.get(chunk.documentId) ?? new Set<string>();
      byDocument.set(chunk.documentId, ids);
      ids.add(chunk.id);
    }
    let removed = 0;
    for (const [namespaceName, byDocument] of listed) {
      const namespace = this.namespaces.get(namespaceName);
      for (const [documentId, keep] of byDocument) {
        const chunks = namespace?.documents.get(documentId);
        if (chunks === undefined) continue;
        for (const record of [...chunks.values()]) {
          if (keep.has(record.id)) continue;
          this.removeChunk(record);
          removed += 1;
        }
      }
    }
    return removed;
  }

  private removeChunk(record: ChunkRecord): void {
    this.index.markDelete(record.label);
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
    this.freeLabels.push(record.label);
    this.liveCount -= 1;
  }

  // ---------------------------------------------------------------- search helpers

  private prepareQuery(query: ShardQuery, i: number): PreparedQuery {
    return {
      vector: this.decodeChecked(query.vector, `queries[${i}].vector`),
      k: query.k,
      namespace: query.namespace,
      ef: query.ef,
      predicate: query.filter === undefined ? undefined : compileFilter(query.filter, `queries[${i}].filter`),
    };
  }

  private searchNamespace(namespace: NamespaceState, query: PreparedQuery): Scored[] {
    const size = namespace.labels.length;
    const threshold = this.bruteForceThreshold;
    const small =
      threshold > 0 &&
      (size <= threshold ||
        (query.predicate !== undefined && this.estimateMatches(namespace, query.predicate) <= threshold));
    if (small) return this.exactSearch(namespace, query);
    const hits = this.graphSearch(namespace, query);
    // HNSW can come back short when matches are sparse or unreachable; the exact scan cannot.
    return hits.length < Math.min(query.k, size) ? this.exactSearch(namespace, query) : hits;
  }

  private estimateMatches(namespace: NamespaceState, predicate: MetadataPredicate): number {
    const { labels } = namespace;
    const samples = Math.min(SELECTIVITY_SAMPLE, labels.length);
    const stride = labels.length / samples;
    let matched = 0;
    for (let s = 0; s < samples; s++) {
      const record = this.records[labels[Math.floor(s * stride)] as number] as ChunkRecord;
      if (predicate(record.metadata)) matched += 1;
    }
    return (matched / samples) * labels.length;
  }

  private graphSearch(namespace: NamespaceState, query: PreparedQuery): Scored[] {
    // hnswlib-node throws when k exceeds the index capacity; the namespace size bounds it.
    const k = Math.min(query.k, namespace.labels.length);
    this.index.setEf(Math.max(query.ef ?? this.efSearch, k));
    const { predicate } = query;
    // With one namespace and no filter the callback-free path is hnswlib's fastest loop.
    const everything = predicate === undefined && namespace.labels.length === this.liveCount;
    const allowed = everything
      ? undefined
      : (label: number): boolean => {
          const record = this.records[label];
          return record !== undefined && record.namespace === namespace && (predicate === undefined || predicate(record.metadata));
        };
    const { neighbors, distances } = this.index.searchKnn(Array.from(query.vector), k, allowed);
    const scored: Scored[] = neighbors.map((label, i) => ({ label, score: this.scoreFromDistance(distances[i] as number) }));
    return scored.sort(compareScored);
  }

  private scoreFromDistance(distance: number): number {
    return this.space === 'l2' ? -distance : 1 - distance;
  }

  private exactSearch(namespace: NamespaceState, query: PreparedQuery): Scored[] {
    const top = new TopK(query.k);
    const { predicate, vector } = query;
    for (const label of namespace.labels) {
      if (predicate !== undefined && !predicate((this.records[label] as ChunkRecord).metadata)) continue;
      top.offer(label, this.exactScore(vector, label));
    }
    return top.sorted();
  }

  private exactScore(query: Float32Array, label: number): number {
    const { vectors, dim } = this;
    const offset = label * dim;
    let sum = 0;
    if (this.space === 'l2') {
      for (let d = 0; d < dim; d++) {
        const diff = (query[d] as number) - (vectors[offset + d] as number);
        sum += diff * diff;
      }
      return -sum;
    }
    for (let d = 0; d < dim; d++) sum += (query[d] as number) * (vectors[offset + d] as number);
    return sum;
  }

  private toHit(scored: Scored, includeText: boolean, includeMetadata: boolean): ShardHit {
    const record = this.records[scored.label] as ChunkRecord;
    const hit: ShardHit = { id: record.id, document_id: record.documentId, score: scored.score };
    if (includeText) hit.text = record.text;
    if (includeMetadata) hit.metadata = record.metadata;
    return hit;
  }
}

/** Best first; equal scores fall back to the label so results never depend on scan order. */
function compareScored(a: Scored, b: Scored): number {
  return b.score - a.score || a.label - b.label;
}

/** Bounded min-heap keeping the k best (score, label) pairs seen. */
class TopK {
  private readonly heap: Scored[] = [];
  constructor(private readonly k: number) {}

  offer(label: number, score: number): void {
    const item = { label, score };
    if (this.heap.length < this.k) {
      this.heap.push(item);
      this.siftUp(this.heap.length - 1);
    } else if (compareScored(item, this.heap[0] as Scored) < 0) {
      this.heap[0] = item;
      this.siftDown(0);
    }
  }

  sorted(): Scored[] {
    return [...this.heap].sort(compareScored);
  }

  /** The heap's root is its worst item: "worse" means it would sort later. */
  private worse(i: number, j: number): boolean {
    return compareScored(this.heap[i] as Scored, this.heap[j] as Scored) > 0;
  }

  private swap(i: number, j: number): void {
    const tmp = this.heap[i] as Scored;
    this.heap[i] = this.heap[j] as Scored;
    this.heap[j] = tmp;
  }

  private siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.worse(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(i: number): void {
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let worst = i;
      if (left < this.heap.length && this.worse(left, worst)) worst = left;
      if (right < this.heap.length && this.worse(right, worst)) worst = right;
      if (worst === i) return;
      this.swap(i, worst);
      i = worst;
    }
  }
}

function normalize(vector: Float32Array): void {
  let norm = 0;
  for (let d = 0; d < vector.length; d++) norm += (vector[d] as number) * (vector[d] as number);
  norm = Math.sqrt(norm);
  // A zero vector stays zero (score 0 against everything), exactly as hnswlib treats it.
  if (norm === 0) return;
  for (let d = 0; d < vector.length; d++) vector[d] = (vector[d] as number) / norm;
}

function validateOptions(options: IndexStoreOptions): void {
  const positiveInts: [string, number | undefined][] = [
    ['dim', options.dim],
    ['m', options.m],
    ['efConstruction', options.efConstruction],
    ['efSearch', options.efSearch],
    ['initialCapacity', options.initialCapacity],
  ];
  for (const [name, value] of positiveInts) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      throw new Error(`IndexStore option ${name} must be a positive integer (got ${String(value)})`);
    }
  }
  if (!['cosine', 'ip', 'l2'].includes(options.space)) {
    throw new Error(`IndexStore option space must be cosine, ip or l2 (got ${String(options.space)})`);
  }
}
