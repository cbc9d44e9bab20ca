// One shard's vectors and chunks: an hnswlib HNSW graph for approximate search plus the
// bookkeeping hnswlib lacks — string chunk ids, documents, namespaces, metadata, a label
// free list — made durable by a write-ahead log (shards/wal.ts) and periodic snapshots
// (shards/snapshot.ts). It is synchronous on purpose: every mutation finishes within one
// event-loop turn, so the native index is never touched concurrently.
//
// Durability: a write is applied in memory, gets the next seq and is appended to the log
// in the same turn; `durable()` resolves once the log has it on disk, and the HTTP handler
// acknowledges only then. A crash before that loses at most unacknowledged writes; opening
// loads the newest snapshot and replays the log records after the snapshot's seq.
//
// Convergence of replicas: every write carries a version (protocol.ts `Version`; a write
// without one gets a fresh version above everything held). Each chunk keeps the version of
// the write that last set it, and each document keeps a floor: the version of its newest
// replace or delete. A chunk write at v applies when v ≥ the document's floor and v > the
// chunk's version; a replace or delete at v raises the floor to v and removes the
// document's chunks older than v. These rules commute, so replicas that receive the same
// writes in any order, any number of times, end up identical, and replaying a write is a
// no-op. A deleted document keeps its floor as a tombstone (in snapshots and exports) so
// an older upsert that arrives late stays deleted; tombstones older than
// `tombstoneRetentionMs` (default 7 days) are pruned at snapshot time, after which a write
// delayed by longer than that could resurrect a document — the usual bound of LWW stores.
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { abortError, createError } from '../core/errors.js';
import { compileFilter, type Metadata, type MetadataPredicate } from './filter.js';
import {
  EXPORT_FORMAT,
  PROTOCOL_VERSION,
  decodeVector,
  encodeVector,
  type Change,
  type ChangesResponse,
  type DeleteRequest,
  type DeleteResponse,
  type DocumentResponse,
  type ExportDocument,
  type ExportEnd,
  type ExportHeader,
  type QueryResult,
  type ReplicaSyncState,
  type SearchRequest,
  type SearchResponse,
  type ShardHit,
  type ShardQuery,
  type Space,
  type StatsResponse,
  type UpsertRequest,
  type UpsertResponse,
} from './protocol.js';
import type { SearchOptions, ShardStore } from './shard-store.js';
import { currentSnapshotName, loadSnapshot, removeStale, writeSnapshot, type ChunkLine, type FloorLine } from './snapshot.js';
import { WriteAheadLog, type WalOp, type WalRecord, type WalStats } from './wal.js';

const { HierarchicalNSW } = hnswlib;
type HnswIndex = InstanceType<typeof HierarchicalNSW>;

export interface WalSettings {
  /** Share one fsync among the appends that arrive while one is in flight (default true). */
  groupCommit?: boolean;
  /** Segment file size before the log starts a new one (default 16 MiB). */
  segmentBytes?: number;
  /**
   * Records kept after a snapshot for peers catching up through /v1/changes (default 100k);
   * a peer further behind copies /v1/export instead. Records newer than the snapshot are
   * always kept. Retention works in whole segments, so slightly more may stay.
   */
  retainRecords?: number;
  /** Caps that retention by size (default 256 MiB), so huge upserts cannot fill the disk. */
  retainBytes?: number;
}

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
  /**
   * Snapshot this long after the first write since the last snapshot (default 60 s); 0
   * disables timed snapshots. Writes are durable in the log either way: snapshots only
   * bound the log replay at start and let the log be truncated.
   */
  snapshotIntervalMs?: number;
  /** The name before the write-ahead log existed; same meaning as snapshotIntervalMs. */
  autoSaveMs?: number;
  /** Also snapshot once this many writes were logged since the last one (default 20k; 0: never). */
  snapshotEveryWrites?: number;
  wal?: WalSettings;
  /** Tombstones of deleted documents older than this are pruned at snapshot time (default 7 days; 0 keeps them forever). */
  tombstoneRetentionMs?: number;
  /** Where failures of background snapshots go (the store keeps its data; the log still has every write). */
  onBackgroundError?: (err: unknown) => void;
  /** Recoveries worth a log line, such as a torn log tail cut off after a crash. */
  onWarning?: (message: string) => void;
}

const DEFAULTS = {
  m: 16,
  efConstruction: 200,
  efSearch: 64,
  initialCapacity: 1024,
  bruteForceThreshold: 512,
  snapshotIntervalMs: 60_000,
  snapshotEveryWrites: 20_000,
  retainRecords: 100_000,
  retainBytes: 256 * 1024 * 1024,
  tombstoneRetentionMs: 7 * 24 * 3600 * 1000,
} as const;

/** protocol.ts `Version`: wall-clock milliseconds × 1024 plus a counter. */
const VERSION_TICKS_PER_MS = 1024;
const WAL_DIR = 'wal';

/** Filter selectivity is estimated from this many evenly spaced namespace members. */
const SELECTIVITY_SAMPLE = 512;

interface ChunkRecord {
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

interface Floor {
  version: number;
  /** When this store set it (ms since the epoch): tombstones are pruned by this age. */
  at: number;
}

interface ApplyOutcome {
  upserted: number;
  removed: number;
  /** Anything changed, floors included: the write must be logged. */
  changed: boolean;
}

export class IndexStore implements ShardStore {
  readonly dim: number;
  readonly space: Space;
  readonly dataDir: string;
  private readonly m: number;
  private readonly efConstruction: number;
  private readonly efSearch: number;
  private readonly bruteForceThreshold: number;
  private readonly snapshotIntervalMs: number;
  private readonly snapshotEveryWrites: number;
  private readonly walSettings: Required<WalSettings>;
  private readonly tombstoneRetentionMs: number;
  private readonly onBackgroundError: (err: unknown) => void;
  private readonly onWarning: (message: string) => void;

  private readonly index: HnswIndex;
  private capacity: number;
  /** Label-major copy of every stored (normalized, for cosine) vector, for exact scans. */
  private vectors: Float32Array;
  private readonly records: (ChunkRecord | undefined)[] = [];
  private readonly namespaces = new Map<string, NamespaceState>();
  /** namespace → document id → floor (kept when the document has no chunk: a tombstone). */
  private readonly floors = new Map<string, Map<string, Floor>>();
  private readonly freeLabels: number[] = [];
  private nextLabel = 0;
  private liveCount = 0;
  private epoch = 0;
  /** Seq of the last write applied (and logged): the replica's high-water mark. */
  private seq = 0;
  private maxVersion = 0;
  private replicaState: ReplicaSyncState = 'ready';
  /** Assigned by open() right after construction (the log replays into the built store). */
  private wal!: WriteAheadLog;

  private dirty = false;
  private closed = false;
  private writesSinceSnapshot = 0;
  private snapshotTimer: NodeJS.Timeout | undefined;
  /** The pending timer is the "snapshot now" one (write count reached), not the interval one. */
  private snapshotSoon = false;

  private constructor(options: IndexStoreOptions, index: HnswIndex, params: { m: number; efConstruction: number }) {
    this.dim = options.dim;
    this.space = options.space;
    this.dataDir = options.dataDir;
    this.m = params.m;
    this.efConstruction = params.efConstruction;
    this.efSearch = options.efSearch ?? DEFAULTS.efSearch;
    this.bruteForceThreshold = options.bruteForceThreshold ?? DEFAULTS.bruteForceThreshold;
    this.snapshotIntervalMs = options.snapshotIntervalMs ?? options.autoSaveMs ?? DEFAULTS.snapshotIntervalMs;
    this.snapshotEveryWrites = options.snapshotEveryWrites ?? DEFAULTS.snapshotEveryWrites;
    this.walSettings = {
      groupCommit: options.wal?.groupCommit ?? true,
      segmentBytes: options.wal?.segmentBytes ?? 16 * 1024 * 1024,
      retainRecords: options.wal?.retainRecords ?? DEFAULTS.retainRecords,
      retainBytes: options.wal?.retainBytes ?? DEFAULTS.retainBytes,
    };
    this.tombstoneRetentionMs = options.tombstoneRetentionMs ?? DEFAULTS.tombstoneRetentionMs;
    this.onBackgroundError =
      options.onBackgroundError ??
      ((err) => process.emitWarning(`ragway shard background snapshot failed: ${String(err)}`, 'RagwaySnapshotWarning'));
    this.onWarning = options.onWarning ?? ((message) => process.emitWarning(message, 'RagwayRecoveryWarning'));
    this.index = index;
    this.capacity = index.getMaxElements();
    this.vectors = new Float32Array(this.capacity * this.dim);
  }

  /**
   * Loads the newest snapshot in `dataDir` (any format this build reads) and replays the
   * write-ahead log after it; an empty dir starts an empty index.
   */
  static open(options: IndexStoreOptions): IndexStore {
    validateOptions(options);
    const snapshot = loadSnapshot(options.dataDir);
    let store: IndexStore;
    if (snapshot === undefined) {
      const index = new HierarchicalNSW(options.space, options.dim);
      const m = options.m ?? DEFAULTS.m;
      const efConstruction = options.efConstruction ?? DEFAULTS.efConstruction;
      index.initIndex({ maxElements: options.initialCapacity ?? DEFAULTS.initialCapacity, m, efConstruction });
      store = new IndexStore(options, index, { m, efConstruction });
    } else {
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
      store = new IndexStore(options, index, { m: manifest.m, efConstruction: manifest.ef_construction });
      store.restore(manifest, snapshot.vectors, snapshot.chunks, snapshot.floors);
    }
    store.openLog();
    const current = currentSnapshotName(options.dataDir);
    if (current !== undefined) removeStale(options.dataDir, current);
    return store;
  }

  // ---------------------------------------------------------------- writes

  upsert(request: UpsertRequest): UpsertResponse {
    this.assertWritable();
    const prepared = this.prepareChunks(request);
    const version = request.version ?? this.nextLocalVersion();
    const outcome = this.applyUpsert(prepared, version, request.replace_documents === true);
    // Logged with its version, so a replay or a peer applying it decides exactly the same.
    if (outcome.changed) this.log('upsert', request.version === undefined ? { ...request, version } : request);
    return { upserted: outcome.upserted, removed: outcome.removed, epoch: this.epoch };
  }

  delete(request: DeleteRequest): DeleteResponse {
    this.assertWritable();
    const version = request.version ?? this.nextLocalVersion();
    const outcome = this.applyDelete(request.namespace, request.document_ids, version);
    if (outcome.changed) this.log('delete', request.version === undefined ? { ...request, version } : request);
    return { documents_deleted: outcome.documentsDeleted, chunks_deleted: outcome.chunksDeleted, epoch: this.epoch };
  }

  /**
   * Resolves once every write applied so far is on disk: a handler awaits it before
   * acknowledging. A write that changed nothing still waits, because the state that made it
   * a no-op may itself not be on disk yet.
   */
  async durable(): Promise<void> {
    try {
      await this.wal.sync();
    } catch (err) {
      throw this.walFailure(err);
    }
  }

  // ---------------------------------------------------------------- reads

  search(request: SearchRequest, options: SearchOptions = {}): SearchResponse {
    const started = performance.now();
    const { deadline, signal } = options;
    checkBudget(deadline, signal);
    // Validate the whole batch first so a bad query 7 does not waste queries 0-6's work.
    const queries = request.queries.map((query, i) => this.prepareQuery(query, i));
    const includeText = request.include_text !== false;
    const includeMetadata = request.include_metadata !== false;
    this.searchRequests += 1;
    this.searchQueries += queries.length;
    const results = queries.map((query): QueryResult => {
      // A batch can be long: stop as soon as nobody can use the answer any more.
      checkBudget(deadline, signal);
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
      wal_seq: this.seq,
      state: this.replicaState,
    };
  }

  /** Search requests and queries served since this process opened the store (operators, and cache tests, count them). */
  private searchRequests = 0;
  private searchQueries = 0;

  /** The counter bumped by every write that changed something; part of the gateway's cache keys. */
  get currentEpoch(): number {
    return this.epoch;
  }

  /** Seq of the last write applied: the replica's high-water mark. */
  get walSeq(): number {
    return this.seq;
  }

  /** "catching-up" while a restarted replica copies what it missed (set by the server). */
  get state(): ReplicaSyncState {
    return this.replicaState;
  }

  setState(state: ReplicaSyncState): void {
    this.replicaState = state;
  }

  /** Why the store refuses writes, when it does (closed, or its log failed). */
  get unavailableReason(): string | undefined {
    if (this.closed) return 'the shard store is closed';
    const failed = this.wal.failed;
    return failed === undefined ? undefined : `the write-ahead log failed (${failed.message}); this shard takes no more writes`;
  }

  walStats(): WalStats & { floor: number; durableSeq: number } {
    return { ...this.wal.stats(), floor: this.wal.floor, durableSeq: this.wal.durableSeq };
  }

  // ---------------------------------------------------------------- replication

  /** The change feed (GET /v1/changes): logged writes after `since`, oldest first. */
  async changesSince(since: number, limit: number): Promise<ChangesResponse> {
    const highWater = this.seq;
    const { snapshotRequired, records } = await this.wal.readSince(since, limit);
    return { high_water: highWater, snapshot_required: snapshotRequired, changes: records.map(toChange) };
  }

  /**
   * The export (GET /v1/export) as NDJSON lines, produced lazily: between lines the store
   * keeps serving writes, and each document is read when its line is made (protocol.ts
   * describes why that is enough). Documents created after the header come through the
   * change feed after high_water.
   */
  *exportLines(): Generator<string> {
    const header: ExportHeader = {
      type: 'header',
      format: EXPORT_FORMAT,
      high_water: this.seq,
      epoch: this.epoch,
      dim: this.dim,
      space: this.space,
    };
    yield JSON.stringify(header);
    const keys: [string, string][] = [];
    for (const [name, namespace] of this.namespaces) {
      for (const documentId of namespace.documents.keys()) keys.push([name, documentId]);
    }
    for (const [name, floors] of this.floors) {
      const live = this.namespaces.get(name)?.documents;
      for (const documentId of floors.keys()) if (live?.has(documentId) !== true) keys.push([name, documentId]);
    }
    let documents = 0;
    let chunks = 0;
    for (const [namespace, documentId] of keys) {
      const line = this.exportDocument(namespace, documentId);
      if (line === undefined) continue;
      documents += 1;
      chunks += line.chunks.length;
      yield JSON.stringify(line);
    }
    const end: ExportEnd = { type: 'end', documents, chunks };
    yield JSON.stringify(end);
  }

  /**
   * Merges one document of a peer's export, by the same version rules as any write, without
   * logging it: `completeImport` snapshots the result. Returns whether anything changed.
   */
  importDocument(document: ExportDocument): boolean {
    this.assertWritable();
    const prepared = document.chunks.map((chunk, i) => ({
      id: chunk.id,
      documentId: document.document_id,
      namespace: document.namespace,
      text: chunk.text,
      metadata: chunk.metadata,
      // Exported vectors are stored ones, already normalized: normalizing again could move the last bit.
      vector: this.decodeChecked(chunk.vector, `chunks[${i}].vector`, false),
      version: chunk.version,
    }));
    let touched = 0;
    let floorChanged = false;
    if (document.version > 0) {
      this.observeVersion(document.version);
      floorChanged = this.raiseFloor(document.namespace, document.document_id, document.version);
      touched += this.removeOlder(document.namespace, document.document_id, document.version);
    }
    for (const chunk of prepared) {
      this.observeVersion(chunk.version);
      if (!this.accepts(chunk, chunk.version)) continue;
      this.ensureCapacity(this.countNewChunks([chunk]));
      this.upsertChunk(chunk, chunk.version);
      touched += 1;
    }
    if (touched > 0) this.epoch += 1;
    if (touched === 0 && !floorChanged) return false;
    this.markDirty();
    return true;
  }

  /**
   * Ends an import from a peer whose export started at `highWater`: the store's seq moves up
   * to it (so the next catch-up asks that peer for what follows), a snapshot makes the
   * imported state durable, and the feed stops claiming history the import bypassed.
   */
  completeImport(highWater: number): void {
    this.assertWritable();
    this.seq = Math.max(this.seq, highWater);
    this.save();
    this.wal.skipTo(this.seq);
  }

  // ---------------------------------------------------------------- persistence

  /** Writes a snapshot now (atomically: CURRENT moves only once the new one is whole), then trims the log. */
  save(): void {
    this.clearSnapshotTimer();
    this.pruneTombstones();
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
        wal_seq: this.seq,
        max_version: this.maxVersion,
      },
      writeIndex: (path) => this.index.writeIndexSync(path),
      vectors: this.vectors.subarray(0, this.nextLabel * this.dim),
      chunks: this.chunkLines(),
      floors: this.floorLines(),
    });
    this.dirty = false;
    this.writesSinceSnapshot = 0;
    const { retainRecords, retainBytes } = this.walSettings;
    this.wal.applyRetention(this.seq, retainRecords, retainBytes);
  }

  /** Saves only when something changed since the last snapshot. */
  flush(): void {
    if (this.dirty) this.save();
  }

  /**
   * Snapshots (when anything changed) and closes the log; later writes are refused.
   * Synchronous, so callers without an event loop to spare can use it; everything applied is
   * in the snapshot, so log writes still queued are no longer needed. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.clearSnapshotTimer();
    let covered = false;
    try {
      this.flush();
      covered = true;
    } finally {
      this.closed = true;
      if (covered) this.wal.closeCovered();
      else void this.wal.close().catch(() => undefined);
    }
  }

  /** Graceful close: lets queued log writes reach the disk (their acks go out), then close(). */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    try {
      await this.wal.sync();
    } catch (err) {
      this.onBackgroundError(err);
    }
    this.close();
  }

  private openLog(): void {
    let replayed = 0;
    this.wal = WriteAheadLog.open(
      { dir: join(this.dataDir, WAL_DIR), groupCommit: this.walSettings.groupCommit, segmentBytes: this.walSettings.segmentBytes },
      {
        afterSeq: this.seq,
        onRecord: (record) => {
          this.replay(record);
          replayed += 1;
        },
        onWarning: this.onWarning,
      },
    );
    this.seq = Math.max(this.seq, this.wal.lastSeq);
    if (replayed > 0) {
      this.writesSinceSnapshot = replayed;
      this.markDirty();
    }
  }

  private replay(record: WalRecord): void {
    try {
      if (record.op === 'upsert') {
        const request = record.request as UpsertRequest;
        this.applyUpsert(this.prepareChunks(request), loggedVersion(request.version), request.replace_documents === true);
      } else {
        const request = record.request as DeleteRequest;
        this.applyDelete(request.namespace, request.document_ids, loggedVersion(request.version));
      }
    } catch (err) {
      throw new Error(`write-ahead log record seq ${record.seq} (${record.op}) in ${this.dataDir} does not apply: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.seq = record.seq;
  }

  private log(op: WalOp, request: UpsertRequest | DeleteRequest): void {
    this.seq += 1;
    // The log encodes the record now and keeps the promise from rejecting unobserved;
    // durable() is how callers wait for (and learn about the failure of) the disk write.
    void this.wal.append({ seq: this.seq, op, request });
    this.writesSinceSnapshot += 1;
    this.markDirty();
  }

  private markDirty(): void {
    this.dirty = true;
    if (this.closed) return;
    if (this.snapshotEveryWrites > 0 && this.writesSinceSnapshot >= this.snapshotEveryWrites) {
      // Soon, not inside the write: the caller's response should not wait for a snapshot.
      this.armSnapshot(0);
      return;
    }
    // Not re-armed per write: a steady stream of writes must still be snapshotted every interval.
    if (this.snapshotIntervalMs > 0 && this.snapshotTimer === undefined) this.armSnapshot(this.snapshotIntervalMs);
  }

  private armSnapshot(delayMs: number): void {
    if (this.snapshotTimer !== undefined) {
      if (delayMs > 0 || this.snapshotSoon) return;
      clearTimeout(this.snapshotTimer);
    }
    this.snapshotSoon = delayMs === 0;
    this.snapshotTimer = setTimeout(() => {
      this.snapshotTimer = undefined;
      this.snapshotSoon = false;
      try {
        this.flush();
      } catch (err) {
        this.onBackgroundError(err);
      }
    }, delayMs);
    // A pending snapshot must not keep a finished process alive; close() snapshots explicitly.
    this.snapshotTimer.unref();
  }

  private clearSnapshotTimer(): void {
    if (this.snapshotTimer === undefined) return;
    clearTimeout(this.snapshotTimer);
    this.snapshotTimer = undefined;
    this.snapshotSoon = false;
  }

  /** Document and chunk insertion order survive a round trip because lines follow Map order. */
  private *chunkLines(): Generator<ChunkLine> {
    for (const namespace of this.namespaces.values()) {
      for (const [documentId, chunks] of namespace.documents) {
        for (const record of chunks.values()) {
          yield [record.label, namespace.name, documentId, record.id, record.text, record.metadata, record.version];
        }
      }
    }
  }

  private *floorLines(): Generator<FloorLine> {
    for (const [namespace, floors] of this.floors) {
      for (const [documentId, floor] of floors) yield [namespace, documentId, floor.version, floor.at];
    }
  }

  private restore(
    manifest: { epoch: number; next_label: number; free_labels: number[]; wal_seq: number; max_version: number },
    vectors: Float32Array,
    lines: ChunkLine[],
    floors: FloorLine[],
  ): void {
    this.epoch = manifest.epoch;
    this.nextLabel = manifest.next_label;
    this.seq = manifest.wal_seq;
    this.maxVersion = manifest.max_version;
    this.freeLabels.push(...manifest.free_labels);
    this.vectors.set(vectors);
    // A format-1 snapshot has no versions: its chunks count as version 0, older than any write.
    for (const [label, namespace, documentId, id, text, metadata, version = 0] of lines) {
      this.attachRecord(label, { id, documentId, namespace, text, metadata }, version);
      this.observeVersion(version);
    }
    for (const [namespace, documentId, version, at] of floors) {
      this.raiseFloor(namespace, documentId, version, at);
      this.observeVersion(version);
    }
  }

  /**
   * Drops floors of documents without chunks (tombstones) set longer ago than the retention.
   * Age is local time since the floor was set, not the version: versions need not be clocks.
   */
  private pruneTombstones(): void {
    if (this.tombstoneRetentionMs <= 0) return;
    const horizon = Date.now() - this.tombstoneRetentionMs;
    for (const [name, floors] of this.floors) {
      const live = this.namespaces.get(name)?.documents;
      for (const [documentId, floor] of floors) {
        if (floor.at < horizon && live?.has(documentId) !== true) floors.delete(documentId);
      }
      if (floors.size === 0) this.floors.delete(name);
    }
  }

  // ---------------------------------------------------------------- write helpers

  private assertWritable(): void {
    const reason = this.unavailableReason;
    if (reason !== undefined) throw createError('RAGWAY_ERR_NOT_READY', reason);
  }

  private walFailure(err: unknown): Error {
    return createError('RAGWAY_ERR_NOT_READY', `the write-ahead log failed (${(err as Error).message}); the write may not be durable`, {
      cause: err,
    });
  }

  /** A version above everything this store holds, from the wall clock when it is ahead (like the gateway's clock). */
  private nextLocalVersion(): number {
    const version = Math.max(Date.now() * VERSION_TICKS_PER_MS, this.maxVersion + 1);
    this.maxVersion = version;
    return version;
  }

  private observeVersion(version: number): void {
    if (version > this.maxVersion) this.maxVersion = version;
  }

  private floorOf(namespace: string, documentId: string): number {
    return this.floors.get(namespace)?.get(documentId)?.version ?? 0;
  }

  private raiseFloor(namespace: string, documentId: string, version: number, at = Date.now()): boolean {
    if (version <= this.floorOf(namespace, documentId)) return false;
    let floors = this.floors.get(namespace);
    if (floors === undefined) {
      floors = new Map();
      this.floors.set(namespace, floors);
    }
    floors.set(documentId, { version, at });
    return true;
  }

  /** Whether a chunk write at `version` wins over what the store holds. */
  private accepts(chunk: { namespace: string; documentId: string; id: string }, version: number): boolean {
    if (version < this.floorOf(chunk.namespace, chunk.documentId)) return false;
    const existing = this.namespaces.get(chunk.namespace)?.chunks.get(chunk.id);
    return existing === undefined || existing.version < version;
  }

  private applyUpsert(prepared: PreparedChunk[], version: number, replaceDocuments: boolean): ApplyOutcome {
    this.observeVersion(version);
    let removed = 0;
    let floorsChanged = false;
    if (replaceDocuments) {
      // A replace is a delete of the document at this version plus the chunks it carries;
      // listed chunks are left in place (and overwritten below) so their labels are kept.
      for (const [namespace, byDocument] of groupByDocument(prepared)) {
        for (const [documentId, listed] of byDocument) {
          if (this.raiseFloor(namespace, documentId, version)) floorsChanged = true;
          removed += this.removeOlder(namespace, documentId, version, listed);
        }
      }
    }
    const winners = prepared.filter((chunk) => this.accepts(chunk, version));
    this.ensureCapacity(this.countNewChunks(winners));
    for (const chunk of winners) this.upsertChunk(chunk, version);
    const upserted = winners.length;
    if (upserted + removed > 0) this.epoch += 1;
    return { upserted, removed, changed: upserted + removed > 0 || floorsChanged };
  }

  private applyDelete(
    namespace: string,
    documentIds: readonly string[],
    version: number,
  ): { documentsDeleted: number; chunksDeleted: number; changed: boolean } {
    this.observeVersion(version);
    let documentsDeleted = 0;
    let chunksDeleted = 0;
    let floorsChanged = false;
    for (const documentId of new Set(documentIds)) {
      // The floor stays even when nothing was there: an older upsert may still be on its way.
      if (this.raiseFloor(namespace, documentId, version)) floorsChanged = true;
      const removed = this.removeOlder(namespace, documentId, version);
      if (removed > 0) {
        documentsDeleted += 1;
        chunksDeleted += removed;
      }
    }
    if (chunksDeleted > 0) this.epoch += 1;
    return { documentsDeleted, chunksDeleted, changed: chunksDeleted > 0 || floorsChanged };
  }

  /** Removes the document's chunks set by writes older than `version` (except `keep`). */
  private removeOlder(namespace: string, documentId: string, version: number, keep?: ReadonlySet<string>): number {
    const chunks = this.namespaces.get(namespace)?.documents.get(documentId);
    if (chunks === undefined) return 0;
    let removed = 0;
    for (const record of [...chunks.values()]) {
      if (record.version >= version || keep?.has(record.id) === true) continue;
      this.removeChunk(record);
      removed += 1;
    }
    return removed;
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
  private decodeChecked(encoded: string, param: string, normalizeCosine = true): Float32Array {
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
    if (this.space === 'cosine' && normalizeCosine) normalize(vector);
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

  private upsertChunk(chunk: PreparedChunk, version: number): void {
    const existing = this.namespaces.get(chunk.namespace)?.chunks.get(chunk.id);
    if (existing !== undefined) {
      this.writeVector(existing.label, chunk.vector);
      existing.text = chunk.text;
      existing.metadata = chunk.metadata;
      existing.version = version;
      if (existing.documentId !== chunk.documentId) this.moveToDocument(existing, chunk.documentId);
      return;
    }
    // A reused label is marked deleted in hnswlib; addPoint on it unmarks it and rewires it.
    const label = this.freeLabels.pop() ?? this.nextLabel++;
    this.writeVector(label, chunk.vector);
    this.attachRecord(label, chunk, version);
  }

  private writeVector(label: number, vector: Float32Array): void {
    // hnswlib-node accepts only plain arrays (it rejects typed arrays).
    this.index.addPoint(Array.from(vector), label);
    this.vectors.set(vector, label * this.dim);
  }

  private attachRecord(
    label: number,
    chunk: { id: string; documentId: string; namespace: string; text: string; metadata: Metadata },
    version: number,
  ): void {
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

  private exportDocument(namespace: string, documentId: string): ExportDocument | undefined {
    const records = this.namespaces.get(namespace)?.documents.get(documentId);
    const floor = this.floorOf(namespace, documentId);
    if ((records === undefined || records.size === 0) && floor === 0) return undefined;
    const chunks = [...(records?.values() ?? [])].map((record) => ({
      id: record.id,
      version: record.version,
      text: record.text,
      metadata: record.metadata,
      vector: encodeVector(this.vectors.subarray(record.label * this.dim, (record.label + 1) * this.dim)),
    }));
    return {
      type: 'document',
      namespace,
      document_id: documentId,
      version: floor,
      ...(chunks.length === 0 ? { tombstone: true } : {}),
      chunks,
    };
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

/** Before a search and before each query of a batch: is anyone still waiting for the answer? */
function checkBudget(deadline: number | undefined, signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortError(signal);
  if (deadline !== undefined && Date.now() >= deadline) {
    throw createError('RAGWAY_ERR_DEADLINE_EXCEEDED', 'the deadline passed before the shard finished the search; the rest of it was skipped');
  }
}

/** Logged writes always carry the version they were applied with (see upsert/delete). */
function loggedVersion(version: number | undefined): number {
  if (version === undefined) throw new Error('the record carries no version');
  return version;
}

function toChange(record: WalRecord): Change {
  return record.op === 'upsert'
    ? { seq: record.seq, op: 'upsert', upsert: record.request as UpsertRequest }
    : { seq: record.seq, op: 'delete', delete: record.request as DeleteRequest };
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
