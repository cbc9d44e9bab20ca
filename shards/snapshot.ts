// On-disk snapshots of a shard's index. Layout under dataDir:
//
//   CURRENT                      name of the live snapshot directory, e.g. "snapshot-000000000007"
//   snapshot-000000000007/
//     manifest.json              dim, space, hnsw params, epoch, label allocator state
//     index.hnsw                 hnswlib's own file (graph + vectors, deleted marks)
//     vectors.f32                label-major little-endian float32 copy used by exact search
//     chunks.jsonl               one [label, namespace, document_id, id, text, metadata, version] per live chunk
//     floors.jsonl               one [namespace, document_id, version, set_at_ms] per document floor: the version of
//                                the newest replace or delete of that document (a tombstone when the
//                                document holds no chunk), so an older write arriving later is ignored
//
// Format 1 (before the write-ahead log) had no versions, floors or wal_seq; it still loads,
// with every version 0 and wal_seq 0. A save always writes format 2.
//
// A save builds a complete directory under a temporary name, fsyncs it, renames it into
// place and only then swings CURRENT (itself replaced by rename), so a crash at any moment
// leaves either the old or the new snapshot whole — never a torn one. POSIX cannot rename a
// directory over a non-empty one, hence the pointer file rather than a fixed "snapshot/".
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Space } from './protocol.js';

export const SNAPSHOT_FORMAT = 2;
/** Older formats this build still reads. */
const READABLE_FORMATS = new Set([1, 2]);
const CURRENT_FILE = 'CURRENT';
const SNAPSHOT_PREFIX = 'snapshot-';
const TEMP_PREFIX = '.tmp-';
export const INDEX_FILE = 'index.hnsw';
const VECTORS_FILE = 'vectors.f32';
const CHUNKS_FILE = 'chunks.jsonl';
const FLOORS_FILE = 'floors.jsonl';
const MANIFEST_FILE = 'manifest.json';
/** Lines are flushed in batches so a large corpus never becomes one giant string. */
const WRITE_BATCH_BYTES = 4 * 1024 * 1024;

export interface SnapshotManifest {
  format: number;
  sequence: number;
  dim: number;
  space: Space;
  m: number;
  ef_construction: number;
  epoch: number;
  /** Labels below this have been handed out at least once. */
  next_label: number;
  capacity: number;
  count: number;
  free_labels: number[];
  /** Seq of the last write-ahead log record the snapshot contains (format 2; 0 for format 1). */
  wal_seq: number;
  /** The highest write version seen, so versions a shard assigns itself keep increasing (format 2). */
  max_version: number;
}

/** [label, namespace, document_id, chunk id, text, metadata, version (absent in format 1: 0)] */
export type ChunkLine = [number, string, string, string, string, Record<string, unknown>, number?];

/** [namespace, document_id, version, set at (ms since the epoch)] */
export type FloorLine = [string, string, number, number?];

export interface SnapshotContents {
  manifest: Omit<SnapshotManifest, 'format' | 'sequence'>;
  /** Writes hnswlib's index file to the given path (writeIndexSync). */
  writeIndex(path: string): void;
  /** next_label × dim floats. */
  vectors: Float32Array;
  chunks: Iterable<ChunkLine>;
  floors: Iterable<FloorLine>;
}

export interface LoadedSnapshot {
  manifest: SnapshotManifest;
  directory: string;
  indexPath: string;
  vectors: Float32Array;
  chunks: ChunkLine[];
  floors: FloorLine[];
}

function snapshotName(sequence: number): string {
  return `${SNAPSHOT_PREFIX}${String(sequence).padStart(12, '0')}`;
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } catch (err) {
    // Some platforms (Windows) refuse fsync on directories; the rename is still atomic there.
    if (!isErrno(err, 'EISDIR') && !isErrno(err, 'EPERM') && !isErrno(err, 'EINVAL')) throw err;
  } finally {
    closeSync(fd);
  }
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

function writeFileDurably(path: string, write: (fd: number) => void): void {
  const fd = openSync(path, 'w');
  try {
    write(fd);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, buffer: Uint8Array): void {
  let offset = 0;
  while (offset < buffer.byteLength) offset += writeSync(fd, buffer, offset, buffer.byteLength - offset);
}

function writeJsonLines(fd: number, chunks: Iterable<unknown>): void {
  let pending: string[] = [];
  let pendingBytes = 0;
  const flush = (): void => {
    if (pending.length === 0) return;
    writeAll(fd, Buffer.from(pending.join(''), 'utf8'));
    pending = [];
    pendingBytes = 0;
  };
  for (const line of chunks) {
    const text = `${JSON.stringify(line)}\n`;
    pending.push(text);
    pendingBytes += text.length;
    if (pendingBytes >= WRITE_BATCH_BYTES) flush();
  }
  flush();
}

function readJsonLines<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  const bytes = readFileSync(path);
  const lines: T[] = [];
  let start = 0;
  while (start < bytes.byteLength) {
    let end = bytes.indexOf(0x0a, start);
    if (end === -1) end = bytes.byteLength;
    if (end > start) lines.push(JSON.parse(bytes.toString('utf8', start, end)) as T);
    start = end + 1;
  }
  return lines;
}

function readCurrentName(dataDir: string): string | undefined {
  const path = join(dataDir, CURRENT_FILE);
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  // CURRENT is written after the directory rename; a crash in between leaves a complete
  // snapshot that CURRENT does not name yet, and it is newer than anything else here.
  return listSnapshots(dataDir).filter((name) => existsSync(join(dataDir, name, MANIFEST_FILE))).at(-1);
}

function listSnapshots(dataDir: string): string[] {
  if (!existsSync(dataDir)) return [];
  return readdirSync(dataDir)
    .filter((name) => name.startsWith(SNAPSHOT_PREFIX))
    .sort();
}

/** The live snapshot, or undefined when dataDir holds none (a fresh shard). */
export function loadSnapshot(dataDir: string): LoadedSnapshot | undefined {
  const name = readCurrentName(dataDir);
  if (name === undefined) return undefined;
  const directory = join(dataDir, name);
  const manifestPath = join(directory, MANIFEST_FILE);
  if (!existsSync(manifestPath)) {
    throw new Error(`${join(dataDir, CURRENT_FILE)} names ${name}, but ${manifestPath} is missing`);
  }
  const stored = JSON.parse(readFileSync(manifestPath, 'utf8')) as Partial<SnapshotManifest> & Omit<SnapshotManifest, 'wal_seq' | 'max_version'>;
  if (!READABLE_FORMATS.has(stored.format)) {
    throw new Error(`${manifestPath} has snapshot format ${stored.format}; this build reads formats ${[...READABLE_FORMATS].join(', ')}`);
  }
  const manifest: SnapshotManifest = { ...stored, wal_seq: stored.wal_seq ?? 0, max_version: stored.max_version ?? 0 };
  const vectorBytes = readFileSync(join(directory, VECTORS_FILE));
  const expectedBytes = manifest.next_label * manifest.dim * 4;
  if (vectorBytes.byteLength !== expectedBytes) {
    throw new Error(`${join(directory, VECTORS_FILE)} has ${vectorBytes.byteLength} bytes; expected ${expectedBytes}`);
  }
  const vectors = new Float32Array(expectedBytes / 4);
  new Uint8Array(vectors.buffer).set(vectorBytes);
  return {
    manifest,
    directory,
    indexPath: join(directory, INDEX_FILE),
    vectors,
    chunks: readJsonLines<ChunkLine>(join(directory, CHUNKS_FILE)),
    floors: readJsonLines<FloorLine>(join(directory, FLOORS_FILE)),
  };
}

/** Writes a new snapshot and makes it current; returns its directory. */
export function writeSnapshot(dataDir: string, contents: SnapshotContents): string {
  mkdirSync(dataDir, { recursive: true });
  const previous = readCurrentName(dataDir);
  const sequence = previous === undefined ? 1 : Number(previous.slice(SNAPSHOT_PREFIX.length)) + 1;
  const name = snapshotName(sequence);
  const temp = join(dataDir, `${TEMP_PREFIX}${name}`);
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp);

  const indexPath = join(temp, INDEX_FILE);
  contents.writeIndex(indexPath);
  fsyncPath(indexPath);
  const { vectors } = contents;
  writeFileDurably(join(temp, VECTORS_FILE), (fd) =>
    writeAll(fd, new Uint8Array(vectors.buffer, vectors.byteOffset, vectors.byteLength)),
  );
  writeFileDurably(join(temp, CHUNKS_FILE), (fd) => writeJsonLines(fd, contents.chunks));
  writeFileDurably(join(temp, FLOORS_FILE), (fd) => writeJsonLines(fd, contents.floors));
  const manifest: SnapshotManifest = { format: SNAPSHOT_FORMAT, sequence, ...contents.manifest };
  writeFileDurably(join(temp, MANIFEST_FILE), (fd) => writeAll(fd, Buffer.from(`${JSON.stringify(manifest)}\n`)));
  fsyncPath(temp);

  const directory = join(dataDir, name);
  rmSync(directory, { recursive: true, force: true });
  renameSync(temp, directory);
  fsyncPath(dataDir);

  const currentTemp = join(dataDir, `${TEMP_PREFIX}${CURRENT_FILE}`);
  writeFileDurably(currentTemp, (fd) => writeAll(fd, Buffer.from(`${name}\n`)));
  renameSync(currentTemp, join(dataDir, CURRENT_FILE));
  fsyncPath(dataDir);

  removeStale(dataDir, name);
  return directory;
}

/** Drops older snapshots and leftovers of interrupted saves; only ever after CURRENT moved. */
export function removeStale(dataDir: string, current: string): void {
  if (!existsSync(dataDir)) return;
  for (const entry of readdirSync(dataDir)) {
    const stale = (entry.startsWith(SNAPSHOT_PREFIX) && entry !== current) || entry.startsWith(TEMP_PREFIX);
    if (stale) rmSync(join(dataDir, entry), { recursive: true, force: true });
  }
}

/** Name of the live snapshot directory, for cleaning up after a successful load. */
export function currentSnapshotName(dataDir: string): string | undefined {
  return readCurrentName(dataDir);
}
