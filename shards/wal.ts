// The shard's write-ahead log: every upsert and delete is appended here and fsynced before
// the shard acknowledges it, so a crash (kill -9, power loss) after the ack never loses it.
// The file layout, record format and crash recovery are in wal-format.ts.
//
// Group commit: appends that arrive while a write+fsync is in flight wait for the next one
// and share it, so N concurrent writers cost ~1 fsync per round instead of N — throughput
// rises with concurrency while each ack still means "on disk". `groupCommit: false` writes
// and fsyncs every record alone (the baseline the benchmark compares against).
import { mkdirSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import {
  decodeRecord,
  encodeRecord,
  errnoCode,
  firstGreater,
  fsyncDirectory,
  scanLog,
  segmentName,
  writeFloor,
  type Segment,
  type WalRecord,
} from './wal-format.js';

export { encodeRecord, type WalOp, type WalRecord } from './wal-format.js';

export interface WalOptions {
  /** The log's own directory (created if missing), e.g. <dataDir>/wal. */
  dir: string;
  /** Batch appends that arrive during an fsync into the next one (default true). */
  groupCommit?: boolean;
  /** A new segment starts once the current one reaches this size (default 16 MiB). */
  segmentBytes?: number;
  /** One write+fsync carries at most this much (default 8 MiB); larger bursts take several rounds. */
  maxBatchBytes?: number;
}

export interface WalOpenOptions {
  /** Records with seq ≤ this are already in the snapshot: read, checked, not handed to onRecord. */
  afterSeq?: number;
  onRecord?: (record: WalRecord) => void;
  /** Told when a torn tail was cut off (a crash mid-write). */
  onWarning?: (message: string) => void;
}

export interface WalStats {
  appends: number;
  /** write+fsync rounds: appends / fsyncs is the mean group size. */
  fsyncs: number;
  bytes: number;
  segments: number;
}

export interface ReadSinceResult {
  /** The records after `since` are no longer all here (truncated, or copied in from a peer's export). */
  snapshotRequired: boolean;
  records: WalRecord[];
}

const DEFAULTS = { segmentBytes: 16 * 1024 * 1024, maxBatchBytes: 8 * 1024 * 1024 } as const;

interface Batch {
  readonly records: { seq: number; bytes: Buffer }[];
  bytes: number;
  /** Set when its write starts: later appends go to a new batch. */
  sealed: boolean;
  readonly promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers that never await (the in-process store) must not turn a disk error into an
  // unhandled rejection; those that do still receive it.
  promise.catch(() => undefined);
  return { records: [], bytes: 0, sealed: false, promise, resolve, reject };
}

export class WriteAheadLog {
  readonly dir: string;
  readonly groupCommit: boolean;
  private readonly segmentBytes: number;
  private readonly maxBatchBytes: number;

  private readonly segments: Segment[] = [];
  /** The segment new batches go to; undefined until the first write after open or a rotation. */
  private active: { segment: Segment; handle: FileHandle } | undefined;
  private readonly queue: Batch[] = [];
  private draining = false;
  private closed = false;
  private failure: Error | undefined;
  private lastAppended: number;
  private durable: number;
  private floorSeq: number;
  private persistedFloor: number;
  private readonly counters = { appends: 0, fsyncs: 0, bytes: 0 };

  private constructor(options: WalOptions, state: { segments: Segment[]; lastSeq: number; floor: number; persistedFloor: number }) {
    this.dir = options.dir;
    this.groupCommit = options.groupCommit ?? true;
    this.segmentBytes = options.segmentBytes ?? DEFAULTS.segmentBytes;
    this.maxBatchBytes = options.maxBatchBytes ?? DEFAULTS.maxBatchBytes;
    this.segments.push(...state.segments);
    this.lastAppended = state.lastSeq;
    this.durable = state.lastSeq;
    this.floorSeq = state.floor;
    this.persistedFloor = state.persistedFloor;
  }

  /**
   * Opens (or creates) the log, replays every record after `afterSeq` through `onRecord` in
   * seq order, and cuts off a torn tail. Synchronous: a shard serves nothing until it is done.
   */
  static open(options: WalOptions, openOptions: WalOpenOptions = {}): WriteAheadLog {
    const { dir } = options;
    const afterSeq = openOptions.afterSeq ?? 0;
    mkdirSync(dir, { recursive: true });
    const { segments, lastSeq, floor, persistedFloor } = scanLog(dir, afterSeq, openOptions.onRecord, openOptions.onWarning);
    const wal = new WriteAheadLog(options, { segments, lastSeq, floor, persistedFloor });
    wal.persistFloor();
    return wal;
  }

  /** Seq of the last record appended (or skipped to); the next append must be greater. */
  get lastSeq(): number {
    return this.lastAppended;
  }

  /** Every record up to this seq is on disk. */
  get durableSeq(): number {
    return this.durable;
  }

  /** The feed answers `readSince(since)` for since ≥ floor; older callers need a snapshot. */
  get floor(): number {
    return this.floorSeq;
  }

  /** The error that stopped the log (a failed write or fsync); it then refuses appends. */
  get failed(): Error | undefined {
    return this.failure;
  }

  stats(): WalStats {
    return { ...this.counters, segments: this.segments.length };
  }

  /**
   * Queues `record` and resolves once it (and everything appended before it) is on disk.
   * The record is encoded now, so the caller may reuse its objects; ordering is the call order.
   */
  append(record: WalRecord): Promise<void> {
    if (this.failure !== undefined) return rejected(this.failure);
    if (this.closed) return rejected(new Error('the write-ahead log is closed'));
    if (!Number.isSafeInteger(record.seq) || record.seq <= this.lastAppended) {
      return rejected(new Error(`write-ahead log seq ${record.seq} does not follow ${this.lastAppended}`));
    }
    const bytes = encodeRecord(record);
    let batch = this.queue.at(-1);
    if (batch === undefined || batch.sealed || !this.groupCommit || batch.bytes + bytes.byteLength > this.maxBatchBytes) {
      batch = newBatch();
      this.queue.push(batch);
    }
    batch.records.push({ seq: record.seq, bytes });
    batch.bytes += bytes.byteLength;
    this.lastAppended = record.seq;
    this.counters.appends += 1;
    if (!this.draining) {
      this.draining = true;
      // A microtask, not a macrotask: appends made in the same synchronous run share the
      // first write without adding latency to a lone writer.
      queueMicrotask(() => void this.drain());
    }
    return batch.promise;
  }

  /** Resolves once everything appended so far is on disk (rejects if the log failed). */
  sync(): Promise<void> {
    if (this.failure !== undefined) return rejected(this.failure);
    return this.queue.at(-1)?.promise ?? Promise.resolve();
  }

  /**
   * Records with seq > since, oldest first, at most `limit` records and about `maxBytes`
   * (always at least one), only durable ones. `snapshotRequired` when since < floor.
   */
  async readSince(since: number, limit: number, maxBytes = 8 * 1024 * 1024): Promise<ReadSinceResult> {
    if (since < this.floorSeq) return { snapshotRequired: true, records: [] };
    const records: WalRecord[] = [];
    let bytes = 0;
    const durable = this.durable;
    for (const segment of this.segmentsFrom(since)) {
      let index = firstGreater(segment.seqs, since);
      if (index >= segment.seqs.length) continue;
      let handle: FileHandle;
      try {
        handle = await open(segment.path, 'r');
      } catch (err) {
        // Truncated meanwhile: the floor moved past it.
        if (errnoCode(err) === 'ENOENT' && since < this.floorSeq) return { snapshotRequired: true, records: [] };
        throw err;
      }
      try {
        for (; index < segment.seqs.length; index++) {
          const seq = segment.seqs[index] as number;
          if (seq > durable || records.length >= limit || (records.length > 0 && bytes >= maxBytes)) return { snapshotRequired: false, records };
          const length = segment.lengths[index] as number;
          const buffer = Buffer.allocUnsafe(length);
          const { bytesRead } = await handle.read(buffer, 0, length, segment.offsets[index] as number);
          const decoded = bytesRead === length ? decodeRecord(buffer, 0) : undefined;
          if (decoded === undefined) throw new Error(`${segment.path}: record seq ${seq} no longer reads back intact`);
          records.push(decoded.record);
          bytes += length;
        }
      } finally {
        await handle.close();
      }
    }
    return { snapshotRequired: false, records };
  }

  /**
   * Deletes whole segments whose records all have seq < `seq` (the newest segment too, once
   * nothing is being written to it) and raises the floor to match. Synchronous and cheap.
   */
  truncateBefore(seq: number): void {
    let removedUpTo = 0;
    while (this.segments.length > 0) {
      const segment = this.segments[0] as Segment;
      const last = segment.seqs.at(-1) ?? 0;
      if (last >= seq) break;
      if (this.active?.segment === segment) {
        if (this.draining) break;
        const { handle } = this.active;
        this.active = undefined;
        void handle.close().catch(() => undefined);
      }
      rmSync(segment.path, { force: true });
      this.segments.shift();
      removedUpTo = last;
    }
    if (removedUpTo === 0) return;
    const oldest = this.segments[0]?.seqs[0];
    this.raiseFloor(oldest === undefined ? removedUpTo : oldest - 1);
  }

  /**
   * Retention after a snapshot that holds everything up to `snapshotSeq`: a segment goes once
   * the snapshot covers it and the newer history is long enough without it — at least
   * `keepRecords` records, or `keepBytes` bytes (whichever is reached first), for peers that
   * catch up through the feed.
   */
  applyRetention(snapshotSeq: number, keepRecords: number, keepBytes: number): void {
    let newerBytes = this.segments.reduce((sum, segment) => sum + segment.size, 0);
    let cutoff = 0;
    for (const segment of this.segments) {
      const last = segment.seqs.at(-1) ?? 0;
      newerBytes -= segment.size;
      const enoughNewer = this.lastAppended - last >= keepRecords || newerBytes >= keepBytes;
      if (last > snapshotSeq || !enoughNewer) break;
      cutoff = last + 1;
    }
    if (cutoff > 0) this.truncateBefore(cutoff);
  }

  /**
   * Moves the log forward to `seq` without records (a replica that imported a peer's copy
   * up to `seq`): later appends must be above it, and the feed no longer claims anything
   * before it, since the imported state never passed through this log.
   */
  skipTo(seq: number): void {
    if (seq > this.lastAppended) this.lastAppended = seq;
    this.raiseFloor(seq);
  }

  /** Waits for every queued record to be on disk, then closes the file. */
  async close(): Promise<void> {
    this.closed = true;
    try {
      await this.sync();
    } finally {
      await this.closeHandle();
    }
  }

  /**
   * Closes now, when a snapshot already holds everything appended: queued records that have
   * not started writing are resolved as durable (the snapshot made them so) and dropped; a
   * write already in flight finishes in the background.
   */
  closeCovered(): void {
    this.closed = true;
    while (this.queue.length > 0 && !(this.queue.at(-1) as Batch).sealed) {
      const batch = this.queue.pop() as Batch;
      for (const { seq } of batch.records) this.durable = Math.max(this.durable, seq);
      batch.resolve();
    }
    if (!this.draining) void this.closeHandle();
  }

  private async closeHandle(): Promise<void> {
    const active = this.active;
    this.active = undefined;
    await active?.handle.close();
  }

  private raiseFloor(seq: number): void {
    if (seq <= this.floorSeq) return;
    this.floorSeq = seq;
    this.persistFloor();
  }

  /** Written atomically so a crash leaves the old floor or the new one. */
  private persistFloor(): void {
    if (this.floorSeq <= this.persistedFloor) return;
    writeFloor(this.dir, this.floorSeq);
    this.persistedFloor = this.floorSeq;
  }

  /**
   * The segments that can hold records after `since`, as a copy: truncation may drop
   * segments from the live list while a read awaits, which must not shift what it visits.
   */
  private segmentsFrom(since: number): Segment[] {
    // The last segment whose first seq ≤ since + 1 holds the first record after since.
    let start = 0;
    for (let i = 0; i < this.segments.length; i++) {
      if ((this.segments[i] as Segment).firstSeq <= since + 1) start = i;
      else break;
    }
    return this.segments.slice(start);
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.failure === undefined) {
        const batch = this.queue[0] as Batch;
        batch.sealed = true;
        try {
          await this.writeBatch(batch);
        } catch (err) {
          this.fail(err);
          return;
        }
        this.queue.shift();
        this.durable = Math.max(this.durable, (batch.records.at(-1) as { seq: number }).seq);
        batch.resolve();
      }
    } finally {
      this.draining = false;
      if (this.closed) await this.closeHandle().catch(() => undefined);
    }
  }

  private async writeBatch(batch: Batch): Promise<void> {
    const first = batch.records[0] as { seq: number };
    if (this.active === undefined || this.active.segment.size >= this.segmentBytes) await this.rotate(first.seq);
    const { segment, handle } = this.active as { segment: Segment; handle: FileHandle };
    const data = batch.records.length === 1 ? (batch.records[0] as { bytes: Buffer }).bytes : Buffer.concat(batch.records.map((r) => r.bytes), batch.bytes);
    let written = 0;
    while (written < data.byteLength) {
      const { bytesWritten } = await handle.write(data, written, data.byteLength - written, segment.size + written);
      written += bytesWritten;
    }
    await handle.datasync();
    this.counters.fsyncs += 1;
    this.counters.bytes += data.byteLength;
    let offset = segment.size;
    for (const { seq, bytes } of batch.records) {
      segment.seqs.push(seq);
      segment.offsets.push(offset);
      segment.lengths.push(bytes.byteLength);
      offset += bytes.byteLength;
    }
    segment.size = offset;
  }

  private async rotate(firstSeq: number): Promise<void> {
    await this.closeHandle();
    const path = join(this.dir, segmentName(firstSeq));
    const handle = await open(path, 'w');
    // The new file's directory entry must be durable before any ack that depends on it.
    fsyncDirectory(this.dir);
    const segment: Segment = { firstSeq, path, size: 0, seqs: [], offsets: [], lengths: [] };
    this.segments.push(segment);
    this.active = { segment, handle };
  }

  private fail(err: unknown): void {
    this.failure = err instanceof Error ? err : new Error(String(err));
    for (const batch of this.queue.splice(0)) batch.reject(this.failure);
  }
}

/** A rejected promise that does not count as unhandled when its caller ignores it. */
function rejected(err: Error): Promise<void> {
  const promise = Promise.reject(err);
  promise.catch(() => undefined);
  return promise;
}

