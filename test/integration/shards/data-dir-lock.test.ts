// One process per data dir, with real `ragway shard` processes: a second shard on a dir in
// use exits non-zero at once naming the holder; after the holder is SIGKILLed its lock is
// stale and a new shard takes the dir over, with every acknowledged write.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ServiceProcess } from '../../../cli/service-process.js';
import { CLI } from '../../helpers/ragway-process.js';
import { randomUnitVectors } from '../../helpers/random.js';
import { chunkFor, DIM, ShardHttp, shardProcess, tempRoot, waitForExit } from './shard-http.js';

function runShard(dataDir: string): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, 'shard', '--port', '0', '--data', dataDir, '--dim', String(DIM)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (data: Buffer) => {
    stderr += data.toString();
  });
  child.stdout.resume();
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr, ms: Date.now() - started })));
}

describe('data dir lock (real processes)', () => {
  const http = new ShardHttp();
  let root: Awaited<ReturnType<typeof tempRoot>>;
  let first: ServiceProcess;
  let firstUrl: string;
  const dataDir = (): string => join(root.path, 'shard');

  before(async () => {
    root = await tempRoot('shard-lock');
    first = shardProcess('first', dataDir());
    firstUrl = await first.start();
  });
  after(async () => {
    await first.stop();
    await http.close();
    await root.remove();
  });

  it('a second shard on the same data dir exits non-zero, naming the lock holder', async () => {
    const second = await runShard(dataDir());
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, new RegExp(`in use by another ragway shard \\(pid ${first.pid}`));
    assert.ok(second.stderr.includes(firstUrl), second.stderr);
    assert.equal((await http.stats(firstUrl)).state, 'ready', 'the holder is untouched');
  });

  it('a crashed holder leaves a stale lock that the next shard replaces', async () => {
    const [vector] = randomUnitVectors(1, DIM, 11) as [Float32Array];
    assert.equal((await http.call(firstUrl, 'POST', '/v1/upsert', { chunks: [chunkFor(1, vector)] })).status, 200);
    const pid = first.pid;
    first.kill('SIGKILL');
    await waitForExit(pid);
    first = shardProcess('after-crash', dataDir());
    const url = await first.start();
    assert.equal((await http.stats(url)).count, 1, 'the acknowledged write survived');
    const third = await runShard(dataDir());
    assert.notEqual(third.code, 0);
    assert.match(third.stderr, new RegExp(`pid ${first.pid}`));
  });
});
