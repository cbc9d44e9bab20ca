// The write-ahead log's on-disk format and its recovery scan (the log itself is wal.ts).
//
//   wal/00000000000000000001.wal   segments, named by the seq of their first record
//   wal/00000000000000004097.wal
//   wal/FLOOR                      the feed floor (see WriteAheadLog.floor) when something raised it
//
// Each record is [u32 LE payload length][u32 LE crc32(payload)][payload: JSON {seq, op, request}].
// Seqs strictly increase (gaps are allowed: a replica that copied a peer's export jumps
// forward to the peer's high-water mark).
//
// Crash safety: only the newest segment is ever written, and a process starts a fresh
// segment each time it opens the log, so a crash can tear only the tail of the newest
// segment. The scan stops at the first record whose length, checksum or JSON is bad and
// truncates the file there; a bad record in an older segment is real corruption and
// refuses to open rather than silently dropping acknowledged writes.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readdirSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Change } from './protocol.js';

export type WalOp = Change['op'];

export interface WalRecord<T = unknown> {
  seq: number;
  op: WalOp;
  request: T;
}

const SEGMENT_PATTERN = /^(\d{20})\.wal$/;
const FLOOR_FILE = 'FLOOR';
const HEADER_BYTES = 8;
/** A length field beyond this is garbage, not a record (requests are capped well below). */
const MAX_RECORD_BYTES = 1024 * 1024 * 1024;

export interface Segment {
  readonly firstSeq: number;
  readonly path: string;
  /** Bytes of whole, durable records. */
  size: number;
  /** Per record, in order: its seq, its offset and its total length (header included). */
  readonly seqs: number[];
  readonly offsets: number[];
  readonly lengths: number[];
}

export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}.wal`;
}

export function encodeRecord(record: WalRecord): Buffer {
  const payload = Buffer.from(JSON.stringify(record), 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.byteLength);
  out.writeUInt32LE(payload.byteLength, 0);
  out.writeUInt32LE(crc32(payload), 4);
  payload.copy(out, HEADER_BYTES);
  return out;
}

/** Parses the record at `offset`, or returns undefined when it is torn or corrupt. */
export function decodeRecord(bytes: Buffer, offset: number): { record: WalRecord; length: number } | undefined {
  if (offset + HEADER_BYTES > bytes.byteLength) return undefined;
  const length = bytes.readUInt32LE(offset);
  if (length === 0 || length > MAX_RECORD_BYTES || offset + HEADER_BYTES + length > bytes.byteLength) return undefined;
  const payload = bytes.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
  if (crc32(payload) !== bytes.readUInt32LE(offset + 4)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isWalRecord(parsed)) return undefined;
  return { record: parsed, length: HEADER_BYTES + length };
}

function isWalRecord(value: unknown): value is WalRecord {
  if (typeof value !== 'object' || value === null) return false;
  const { seq, op, request } = value as Partial<WalRecord>;
  return Number.isSafeInteger(seq) && (seq as number) > 0 && (op === 'upsert' || op === 'delete') && typeof request === 'object' && request !== null;
}

export function fsyncDirectory(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } catch (err) {
    // Some platforms refuse fsync on directories; creating the file is still ordered there.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL') throw err;
  } finally {
    closeSync(fd);
  }
}

export function errnoCode(err: unknown): string | undefined {
  return err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
}

/** Writes the FLOOR file atomically (temp file, fsync, rename, fsync dir) so a crash leaves old or new. */
export function writeFloor(dir: string, seq: number): void {
  const temp = join(dir, `.${FLOOR_FILE}.tmp`);
  const fd = openSync(temp, 'w');
  try {
    writeFileSync(fd, `${seq}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, join(dir, FLOOR_FILE));
  fsyncDirectory(dir);
}

function readFloor(dir: string): number {
  const path = join(dir, FLOOR_FILE);
  if (!existsSync(path)) return 0;
  const value = Number(readFileSync(path, 'utf8').trim());
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${path} does not hold a sequence number`);
  return value;
}

export interface ScannedLog {
  segments: Segment[];
  lastSeq: number;
  floor: number;
  persistedFloor: number;
}

/**
 * Reads every segment in `dir`, hands each record after `afterSeq` to `onRecord` in seq
 * order, cuts off a torn tail and computes the feed floor.
 */
export function scanLog(
  dir: string,
  afterSeq: number,
  onRecord: ((record: WalRecord) => void) | undefined,
  onWarning: ((message: string) => void) | undefined,
): ScannedLog {
  const persistedFloor = readFloor(dir);
  const names = readdirSync(dir)
    .filter((name) => SEGMENT_PATTERN.test(name))
    .sort();
  const segments: Segment[] = [];
  let lastRecordSeq = 0;
  names.forEach((name, index) => {
    const path = join(dir, name);
    const bytes = readFileSync(path);
    const segment: Segment = { firstSeq: Number(name.slice(0, 20)), path, size: 0, seqs: [], offsets: [], lengths: [] };
    let offset = 0;
    while (offset < bytes.byteLength) {
      const decoded = decodeRecord(bytes, offset);
      if (decoded === undefined) break;
      const { record, length } = decoded;
      if (record.seq <= lastRecordSeq) {
        throw new Error(`${path}: record seq ${record.seq} at byte ${offset} does not follow seq ${lastRecordSeq}; the log is corrupt`);
      }
      lastRecordSeq = record.seq;
      segment.seqs.push(record.seq);
      segment.offsets.push(offset);
      segment.lengths.push(length);
      offset += length;
      if (record.seq > afterSeq) onRecord?.(record);
    }
    if (offset < bytes.byteLength) {
      if (index !== names.length - 1) {
        throw new Error(
          `${path}: unreadable record at byte ${offset} of ${bytes.byteLength}, and newer segments follow; ` +
            'the log is corrupt (a crash can only tear the newest segment), refusing to drop acknowledged writes',
        );
      }
      truncateSync(path, offset);
      const fd = openSync(path, 'r+');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      onWarning?.(`${path}: cut ${bytes.byteLength - offset} bytes of a torn or corrupt tail after seq ${lastRecordSeq} (a crash mid-write)`);
    }
    segment.size = offset;
    if (segment.seqs.length === 0) {
      // An empty segment (a crash right after creating it, or a fully torn one) holds nothing.
      rmSync(path, { force: true });
      return;
    }
    segments.push(segment);
  });

  // The feed can serve `since` only if every change after it is in the log. Records older
  // than the oldest segment were truncated; a snapshot newer than the last record means the
  // records between were lost in a crash (acked writes are all in the snapshot, but the feed
  // cannot replay them).
  let floor = persistedFloor;
  const oldest = segments[0]?.seqs[0];
  if (oldest === undefined) floor = Math.max(floor, afterSeq);
  else {
    floor = Math.max(floor, oldest - 1);
    if (lastRecordSeq < afterSeq) floor = Math.max(floor, afterSeq);
  }
  const lastSeq = Math.max(lastRecordSeq, afterSeq, floor);
  return { segments, lastSeq, floor, persistedFloor };
}

/** Index of the first element > value in an ascending array (its length when none). */
export function firstGreater(values: readonly number[], value: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((values[mid] as number) <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
