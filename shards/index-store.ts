// One shard's store: the chunks and their vectors (store/shard-data.ts: catalog, vector
// index, last-writer-wins floors), made durable by a write-ahead log (shards/wal.ts) and
// periodic snapshots (shards/snapshot.ts, store/snapshot-schedule.ts), served to the
// change feed and export (store/change-feed.ts), searched by store/vector-search.ts. It is
// synchronous on purpose: every mutation finishes within one event-loop turn, so the native
// index is never touched concurrently.
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
import { abortError, createError } from '../core/errors.js';
import {
  PROTOCOL_VERSION,
  type ChangesResponse,
  type DeleteRequest,
  type DeleteResponse,
  type DocumentResponse,
  type ExportDocument,
  type QueryResult,
  type SearchRequest,
  type SearchResponse,
  type ReplicaSyncState,
  type Space,
  type StatsResponse,
  type UpsertRequest,
  type UpsertResponse,
} from './protocol.js';
import type { SearchOptions, ShardStore } from './shard-store.js';
import { currentSnapshotName, loadSnapshot, removeStale, writeSnapshot } from './snapshot.js';
import type { BucketDigest, DigestQuery, NamespaceDigest, RootDigest } from './digest-protocol.js';
import { exportDocument, exportLines, toChange } from './store/change-feed.js';
import { DigestCache, repairRecords } from './store/digest.js';
import { DEFAULTS, resolveWalSettings, validateOptions, type IndexStoreOptions, type WalSettings } from './store/options.js';
import { ShardData } from './store/shard-data.js';
import { SnapshotSchedule } from './store/snapshot-schedule.js';
import { VectorIndex } from './store/vector-index.js';
import { fetchByIds, prepareQuery, searchLexical, toHit } from './store/queries.js';
import { searchVectors } from './store/vector-search.js';
import { WriteAheadLog, type WalOp, type WalRecord, type WalStats } from './wal.js';

export type { IndexStoreOptions, WalSettings } from './store/options.js';

const WAL_DIR = 'wal';

export class IndexStore implements ShardStore {
  readonly dim: number;
  readonly space: Space;
  readonly dataDir: string;
  private readonly efSearch: number;
  private readonly bruteForceThreshold: number;
  private readonly walSettings: Required<WalSettings>;
  private readonly tombstoneRetentionMs: number;
  private readonly onBackgroundError: (err: unknown) => void;
  private readonly onWarning: (message: string) => void;

  private readonly data: ShardData;
  private readonly schedule: SnapshotSchedule;
  /** Seq of the last write applied (and logged): the replica's high-water mark. */
  private seq = 0;
  private replicaState: ReplicaSyncState = 'ready';
  /** Assigned by open() right after construction (the log replays into the built store). */
  private wal!: WriteAheadLog;
  private closed = false;
  /** Search requests and queries served since this process opened the store (operators, and cache tests, count them). */
  private searchRequests = 0;
  private searchQueries = 0;
  /** Bumped by every change, tombstone pruning included: the digests' cache key. */
  private mutations = 0;
  private readonly digests: DigestCache;

  private constructor(options: IndexStoreOptions, vectors: VectorIndex) {
    this.dim = options.dim;
    this.space = options.space;
    this.dataDir = options.dataDir;
    this.efSearch = options.efSearch ?? DEFAULTS.efSearch;
    this.bruteForceThreshold = options.bruteForceThreshold ?? DEFAULTS.bruteForceThreshold;
    this.walSettings = resolveWalSettings(options.wal);
    this.tombstoneRetentionMs = options.tombstoneRetentionMs ?? DEFAULTS.tombstoneRetentionMs;
    this.onBackgroundError =
      options.onBackgroundError ??
      ((err) => process.emitWarning(`ragway shard background snapshot failed: ${String(err)}`, 'RagwaySnapshotWarning'));
    this.onWarning = options.onWarning ?? ((message) => process.emitWarning(message, 'RagwayRecoveryWarning'));
    this.data = new ShardData(vectors);
    this.digests = new DigestCache(this.data.catalog, this.data.versions);
    this.schedule = new SnapshotSchedule({
      intervalMs: options.snapshotIntervalMs ?? options.autoSaveMs ?? DEFAULTS.snapshotIntervalMs,
      everyWrites: options.snapshotEveryWrites ?? DEFAULTS.snapshotEveryWrites,
      snapshot: () => this.flush(),
      onError: this.onBackgroundError,
    });
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
      const params = {
        dim: options.dim,
        space: options.space,
        m: options.m ?? DEFAULTS.m,
        efConstruction: options.efConstruction ?? DEFAULTS.efConstruction,
      };
      store = new IndexStore(options, VectorIndex.create(params, options.initialCapacity ?? DEFAULTS.initialCapacity));
    } else {
      const { manifest } = snapshot;
      if (manifest.dim !== options.dim || manifest.space !== options.space) {
        throw new Error(
          `${options.dataDir} holds a ${manifest.dim}-dimensional ${manifest.space} index, but this shard was ` +
            `configured for ${options.dim} dimensions and space ${options.space}; use another data dir or matching settings`,
        );
      }
      const params = { dim: options.dim, space: options.space, m: manifest.m, efConstruction: manifest.ef_construction };
      const vectors = VectorIndex.load(params, snapshot.indexPath, {
        capacity: manifest.capacity,
        nextLabel: manifest.next_label,
        freeLabels: manifest.free_labels,
        vectors: snapshot.vectors,
      });
      store = new IndexStore(options, vectors);
      store.seq = manifest.wal_seq;
      store.data.restore(manifest, snapshot.chunks, snapshot.floors);
    }
    store.openLog();
    const current = currentSnapshotName(options.dataDir);
    if (current !== undefined) removeStale(options.dataDir, current);
    return store;
  }

  // ---------------------------------------------------------------- writes

  upsert(request: UpsertRequest): UpsertResponse {
    this.assertWritable();
    const prepared = this.data.prepareChunks(request);
    const version = request.version ?? this.data.versions.nextLocal();
    const outcome = this.data.applyUpsert(prepared, version, request.replace_documents === true);
    // Logged with its version, so a replay or a peer applying it decides exactly the same.
    if (outcome.changed) this.log('upsert', request.version === undefined ? { ...request, version } : request);
    return { upserted: outcome.upserted, removed: outcome.removed, epoch: this.data.epoch };
  }

  delete(request: DeleteRequest): DeleteResponse {
    this.assertWritable();
    const version = request.version ?? this.data.versions.nextLocal();
    const outcome = this.data.applyDelete(request.namespace, request.document_ids, version);
    if (outcome.changed) this.log('delete', request.version === undefined ? { ...request, version } : request);
    return { documents_deleted: outcome.documentsDeleted, chunks_deleted: outcome.chunksDeleted, epoch: this.data.epoch };
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
      throw createError('RAGWAY_ERR_NOT_READY', `the write-ahead log failed (${(err as Error).message}); the write may not be durable`, {
        cause: err,
      });
    }
  }

  // ---------------------------------------------------------------- reads

  search(request: SearchRequest, options: SearchOptions = {}): SearchResponse {
    const started = performance.now();
    const { deadline, signal } = options;
    checkBudget(deadline, signal);
    // Validate the whole batch first so a bad query 7 does not waste queries 0-6's work.
    const queries = request.queries.map((query, i) => prepareQuery(this.data, query, i));
    const include = { text: request.include_text !== false, metadata: request.include_metadata !== false, vectors: request.include_vectors === true };
    this.searchRequests += 1;
    this.searchQueries += queries.length;
    const { catalog, vectors } = this.data;
    const settings = { efSearch: this.efSearch, bruteForceThreshold: this.bruteForceThreshold };
    const results = queries.map((query): QueryResult => {
      // A batch can be long: stop as soon as nobody can use the answer any more.
      checkBudget(deadline, signal);
      const namespace = catalog.namespaces.get(query.namespace);
      if (query.mode === 'lexical') return searchLexical(this.data, query, namespace !== undefined, include);
      if (query.mode === 'ids') return fetchByIds(this.data, query, include);
      if (namespace === undefined) return { hits: [], namespace_found: false };
      const scored = searchVectors(catalog, vectors, namespace, query, settings);
      return { hits: scored.map((s) => toHit(this.data, s, include)), namespace_found: true };
    });
    return { results, epoch: this.data.epoch, took_ms: performance.now() - started };
  }

  getDocument(namespace: string, documentId: string): DocumentResponse | undefined {
    const chunks = this.data.catalog.documentChunks(namespace, documentId);
    if (chunks === undefined) return undefined;
    return {
      document_id: documentId,
      namespace,
      chunks: [...chunks.values()].map((r) => ({ id: r.id, text: r.text, metadata: r.metadata })),
    };
  }

  stats(): StatsResponse {
    const { catalog, vectors } = this.data;
    let documents = 0;
    const namespaces: Record<string, number> = {};
    for (const [name, state] of catalog.namespaces) {
      namespaces[name] = state.labels.length;
      documents += state.documents.size;
    }
    return {
      protocol_version: PROTOCOL_VERSION,
      dim: this.dim,
      space: this.space,
      count: catalog.liveCount,
      documents,
      index_elements: vectors.elements,
      capacity: vectors.capacity,
      namespaces,
      epoch: this.data.epoch,
      m: vectors.m,
      ef_construction: vectors.efConstruction,
      ef_search: this.efSearch,
      rss_bytes: process.memoryUsage().rss,
      search_requests: this.searchRequests,
      search_queries: this.searchQueries,
      wal_seq: this.seq,
      state: this.replicaState,
    };
  }

  /** The counter bumped by every write that changed something; part of the gateway's cache keys. */
  get currentEpoch(): number {
    return this.data.epoch;
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

  /** The export (GET /v1/export) as NDJSON lines, produced lazily (store/change-feed.ts). */
  exportLines(): Generator<string> {
    const { catalog, vectors, versions, epoch } = this.data;
    return exportLines({ catalog, vectors, versions, highWater: this.seq, epoch, dim: this.dim, space: this.space });
  }

  /**
   * Merges one document of a peer's export, by the same version rules as any write, without
   * logging it: `completeImport` snapshots the result. Returns whether anything changed.
   */
  importDocument(document: ExportDocument): boolean {
    this.assertWritable();
    if (!this.data.importDocument(document)) return false;
    this.mutations += 1;
    this.schedule.markDirty();
    return true;
  }

  /** Anti-entropy (store/digest.ts): what this replica holds, at the level the query asks. */
  digest(query: DigestQuery): RootDigest | NamespaceDigest | BucketDigest {
    return this.digests.answer(this.mutations, query);
  }

  /** The named documents as export lines, for a peer whose digest differs. */
  exportDocuments(namespace: string, documentIds: readonly string[]): ExportDocument[] {
    const { catalog, vectors, versions, epoch } = this.data;
    const source = { catalog, vectors, versions, highWater: this.seq, epoch, dim: this.dim, space: this.space };
    return documentIds.flatMap((id) => exportDocument(source, namespace, id) ?? []);
  }

  /** Merges a peer's document like importDocument, but logged (durable, and in the change feed). */
  repairFrom(document: ExportDocument): boolean {
    this.assertWritable();
    if (!this.data.importDocument(document)) return false;
    for (const [op, request] of repairRecords(document)) this.log(op, request);
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
    this.schedule.clear();
    const { catalog, vectors, versions } = this.data;
    versions.prune(this.tombstoneRetentionMs, this.data.isLive);
    this.mutations += 1;
    writeSnapshot(this.dataDir, {
      manifest: {
        dim: this.dim,
        space: this.space,
        m: vectors.m,
        ef_construction: vectors.efConstruction,
        epoch: this.data.epoch,
        next_label: vectors.nextLabel,
        capacity: vectors.capacity,
        count: catalog.liveCount,
        free_labels: [...vectors.freeLabels],
        wal_seq: this.seq,
        max_version: versions.maxVersion,
      },
      writeIndex: (path) => vectors.writeIndex(path),
      vectors: vectors.usedVectors(),
      chunks: catalog.chunkLines(),
      floors: versions.lines(),
    });
    this.schedule.saved();
    const { retainRecords, retainBytes } = this.walSettings;
    this.wal.applyRetention(this.seq, retainRecords, retainBytes);
  }

  /** Saves only when something changed since the last snapshot. */
  flush(): void {
    if (this.schedule.dirty) this.save();
  }

  /**
   * Snapshots (when anything changed) and closes the log; later writes are refused.
   * Synchronous, so callers without an event loop to spare can use it; everything applied is
   * in the snapshot, so log writes still queued are no longer needed. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.schedule.clear();
    let covered = false;
    try {
      this.flush();
      covered = true;
    } finally {
      this.closed = true;
      this.schedule.stop();
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
    if (replayed > 0) this.schedule.wrote(replayed);
  }

  private replay(record: WalRecord): void {
    try {
      if (record.op === 'upsert') {
        const request = record.request as UpsertRequest;
        this.data.applyUpsert(this.data.prepareChunks(request), loggedVersion(request.version), request.replace_documents === true);
      } else {
        const request = record.request as DeleteRequest;
        this.data.applyDelete(request.namespace, request.document_ids, loggedVersion(request.version));
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
    this.mutations += 1;
    // The log encodes the record now and keeps the promise from rejecting unobserved;
    // durable() is how callers wait for (and learn about the failure of) the disk write.
    void this.wal.append({ seq: this.seq, op, request });
    this.schedule.wrote();
  }

  private assertWritable(): void {
    const reason = this.unavailableReason;
    if (reason !== undefined) throw createError('RAGWAY_ERR_NOT_READY', reason);
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
