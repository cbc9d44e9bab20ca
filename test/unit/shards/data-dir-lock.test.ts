// The data-dir lock's liveness rules, on real files: a live holder wins, a dead or reused pid
// is stale and replaced, and only the owner's release removes the file.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { acquireDataDirLock, DataDirLockedError, LOCK_FILE, processStartTicks } from '../../../shards/data-dir-lock.js';
import { tempDir } from '../../helpers/cluster.js';

describe('data dir lock', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir('lock');
  });
  after(() => dir.remove());

  it('refuses a second holder while the first is alive, naming it', () => {
    const path = join(dir.path, 'a');
    const first = acquireDataDirLock(path);
    first.setUrl('http://127.0.0.1:7001');
    assert.throws(
      () => acquireDataDirLock(path),
      (err: unknown) =>
        err instanceof DataDirLockedError &&
        err.holder.pid === process.pid &&
        err.message.includes(`pid ${process.pid}`) &&
        err.message.includes('http://127.0.0.1:7001'),
    );
    first.release();
    assert.equal(existsSync(join(path, LOCK_FILE)), false);
    acquireDataDirLock(path).release();
  });

  it('replaces the lock of a process that is gone', () => {
    const path = join(dir.path, 'b');
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(gone.stdout);
    acquireDataDirLock(path).release();
    writeFileSync(join(path, LOCK_FILE), JSON.stringify({ pid: deadPid, start_ticks: null, hostname: hostname(), since: 'then', token: 'old' }));
    const warnings: string[] = [];
    const lock = acquireDataDirLock(path, (message) => warnings.push(message));
    assert.match(warnings.join('\n'), new RegExp(`stale lock of pid ${deadPid}`));
    assert.equal(JSON.parse(readFileSync(join(path, LOCK_FILE), 'utf8')).pid, process.pid);
    lock.release();
  });

  it('treats a live pid with another start time as reused (stale), where /proc tells', (t) => {
    const ticks = processStartTicks(process.pid);
    if (ticks === undefined) return t.skip('no /proc on this platform');
    const path = join(dir.path, 'c');
    acquireDataDirLock(path).release();
    writeFileSync(
      join(path, LOCK_FILE),
      JSON.stringify({ pid: process.pid, start_ticks: ticks + 12345, hostname: hostname(), since: 'then', token: 'old' }),
    );
    acquireDataDirLock(path).release();
    return undefined;
  });

  it('honours a lock from another host (cannot check it) and never removes a lock it does not own', () => {
    const path = join(dir.path, 'd');
    acquireDataDirLock(path).release();
    const foreign = JSON.stringify({ pid: 1, start_ticks: null, hostname: `${hostname()}-elsewhere`, since: 'then', token: 'theirs' });
    writeFileSync(join(path, LOCK_FILE), foreign);
    assert.throws(() => acquireDataDirLock(path), /on host/);
    assert.equal(readFileSync(join(path, LOCK_FILE), 'utf8'), foreign);
  });
});
