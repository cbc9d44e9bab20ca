// One process per data dir. Two shard processes writing one write-ahead log and one snapshot
// directory would corrupt both, so a shard takes `<dataDir>/LOCK` before it opens anything
// and a second one fails at once, naming the holder.
//
// The lock is a small JSON file created atomically (written to a temp file, then hard-linked
// into place: link fails with EEXIST when the lock exists, and a reader never sees half a
// file). A crash leaves it behind, so an existing lock is checked for liveness: its pid must
// be running *and*, where /proc exists, have the start time recorded in the lock — after a
// reboot or a long time, the pid may belong to an unrelated process. A lock written on
// another host (a shared network volume) cannot be checked and is always honoured.
import { randomUUID } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const LOCK_FILE = 'LOCK';

export interface LockHolder {
  pid: number;
  /** The holder's start time in clock ticks since boot (/proc/<pid>/stat), null where unknown. */
  start_ticks: number | null;
  hostname: string;
  /** ISO time the lock was taken. */
  since: string;
  /** The holder's URL, once it listens. */
  url?: string;
  token: string;
}

export class DataDirLockedError extends Error {
  readonly holder: LockHolder;

  constructor(dataDir: string, holder: LockHolder) {
    const where = holder.url !== undefined ? `, serving ${holder.url}` : '';
    const host = holder.hostname === hostname() ? '' : ` on host ${holder.hostname}`;
    super(
      `data dir ${dataDir} is in use by another ragway shard (pid ${holder.pid}${host}, since ${holder.since}${where}); ` +
        `one process per data dir — stop that one first, or give this one another --data (lock: ${join(dataDir, LOCK_FILE)})`,
    );
    this.name = 'DataDirLockedError';
    this.holder = holder;
  }
}

export interface DataDirLock {
  readonly path: string;
  /** Records where the holder serves, for the message a second process prints. */
  setUrl(url: string): void;
  /** Removes the lock if it is still this process's. Idempotent. */
  release(): void;
}

/** Linux's start time of `pid` in clock ticks since boot; undefined without /proc or when the process is gone. */
export function processStartTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(holder: LockHolder): boolean {
  if (holder.hostname !== hostname()) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    // EPERM: the pid runs under another user — alive.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (holder.start_ticks === null) return true;
  const ticks = processStartTicks(holder.pid);
  return ticks === undefined || ticks === holder.start_ticks;
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number' || typeof parsed.token !== 'string') return undefined;
    return {
      pid: parsed.pid,
      start_ticks: typeof parsed.start_ticks === 'number' ? parsed.start_ticks : null,
      hostname: typeof parsed.hostname === 'string' ? parsed.hostname : hostname(),
      since: typeof parsed.since === 'string' ? parsed.since : 'an unknown time',
      ...(typeof parsed.url === 'string' ? { url: parsed.url } : {}),
      token: parsed.token,
    };
  } catch {
    return undefined;
  }
}

function writeAtomically(path: string, holder: LockHolder, mode: 'create' | 'replace'): void {
  const temp = `${path}.${process.pid}.${holder.token.slice(0, 8)}.tmp`;
  writeFileSync(temp, `${JSON.stringify(holder)}\n`, { flush: true });
  try {
    if (mode === 'create') linkSync(temp, path);
    else renameSync(temp, path);
  } finally {
    if (mode === 'create') unlinkSync(temp);
  }
}

/**
 * Takes the data dir's lock (creating the dir), or throws DataDirLockedError naming the live
 * holder. A stale lock (its process is gone) is replaced, with a note through `warn`.
 */
export function acquireDataDirLock(dataDir: string, warn: (message: string) => void = () => undefined): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, LOCK_FILE);
  const mine: LockHolder = {
    pid: process.pid,
    start_ticks: processStartTicks(process.pid) ?? null,
    hostname: hostname(),
    since: new Date().toISOString(),
    token: randomUUID(),
  };
  for (let attempt = 0; ; attempt++) {
    try {
      writeAtomically(path, mine, 'create');
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
    }
    const holder = readHolder(path);
    if (holder !== undefined && isAlive(holder)) throw new DataDirLockedError(dataDir, holder);
    // Stale: removed only if it is still the file judged stale (another starter may have
    // replaced it meanwhile, and its fresh lock must survive).
    const again = readHolder(path);
    if (again?.token === holder?.token) {
      warn(
        holder === undefined
          ? `removing an unreadable lock file ${path}`
          : `removing a stale lock of pid ${holder.pid} (since ${holder.since}), which is no longer running`,
      );
      try {
        unlinkSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
  let released = false;
  return {
    path,
    setUrl(url) {
      if (released || readHolder(path)?.token !== mine.token) return;
      mine.url = url;
      writeAtomically(path, mine, 'replace');
    },
    release() {
      if (released) return;
      released = true;
      if (readHolder(path)?.token !== mine.token) return;
      try {
        unlinkSync(path);
      } catch {
        // Already gone (the data dir was removed): nothing to release.
      }
    },
  };
}
