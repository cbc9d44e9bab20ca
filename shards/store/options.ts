// IndexStore settings: what a caller may pass, the defaults, and the checks made at open.
import type { Space } from '../protocol.js';

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

export const DEFAULTS = {
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

export function resolveWalSettings(wal: WalSettings | undefined): Required<WalSettings> {
  return {
    groupCommit: wal?.groupCommit ?? true,
    segmentBytes: wal?.segmentBytes ?? 16 * 1024 * 1024,
    retainRecords: wal?.retainRecords ?? DEFAULTS.retainRecords,
    retainBytes: wal?.retainBytes ?? DEFAULTS.retainBytes,
  };
}

export function validateOptions(options: IndexStoreOptions): void {
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
