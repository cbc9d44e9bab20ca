// Crash safety and graceful shutdown of real `ragway shard` processes.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SearchResponse, UpsertResponse } from '../../../shards/protocol.js';
import { encodeVector } from '../../../shards/protocol.js';
import { randomUnitVectors } from '../../helpers/random.js';
import { chunkFor, DIM, inParallel, ShardHttp, shardProcess, tempRoot, waitForExit } from './shard-http.js';

describe('shard durability (real processes)', () => {
  const http = new ShardHttp();
  let root: { path: string; remove(): Promise<void> };
  before(async () => {
    root = await tempRoot('shard-durability');
  });
  after(async () => {
    await http.close();
    await root.remove();
  });

  it('keeps all 1,000 acknowledged upserts through a kill -9 right after the last ack', async () => {
    const dataDir = join(root.path, 'crash');
    // No timed snapshot: everything must come back from the write-ahead log alone.
    const shard = shardProcess('crash-shard', dataDir, ['--snapshot-interval-ms', '0']);
    const url = await shard.start();
    const vectors = randomUnitVectors(1_000, DIM, 4242);
    const acked: number[] = [];
    try {
      await inParallel(vectors, 50, async (vector, i) => {
        const reply = await http.call<UpsertResponse>(url, 'POST', '/v1/upsert', { chunks: [chunkFor(i, vector)] });
        assert.equal(reply.status, 200, JSON.stringify(reply.body));
        acked.push(i);
      });
    } finally {
      shard.kill('SIGKILL');
    }
    assert.equal(acked.length, 1_000);
    await waitForExit(shard.pid);
    assert.ok(!existsSync(join(dataDir, 'CURRENT')), 'no snapshot: recovery is the log replay');

    const restarted = shardProcess('crash-shard-restarted', dataDir);
    const restartedUrl = await restarted.start();
    try {
      const stats = await http.stats(restartedUrl);
      assert.equal(stats.count, 1_000);
      assert.equal(stats.wal_seq, 1_000);
      const search = await http.call<SearchResponse>(restartedUrl, 'POST', '/v1/search', {
        queries: vectors.map((vector) => ({ vector: encodeVector(vector), k: 1, namespace: 'default' })),
        include_text: false,
        include_metadata: false,
      });
      assert.equal(search.status, 200);
      const found = search.body.results.map((result) => result.hits[0]?.id);
      assert.deepEqual(found, vectors.map((_, i) => `c${i}`), 'every acknowledged chunk is its own nearest neighbour');
    } finally {
      await restarted.stop();
    }
  });

  it('lets an in-flight request finish on SIGTERM, then snapshots and exits', async () => {
    const dataDir = join(root.path, 'graceful');
    const shard = shardProcess('graceful-shard', dataDir, ['--grace-ms', '5000'], { RAGWAY_FAULTS: '1' });
    const url = await shard.start();
    const [vector] = randomUnitVectors(1, DIM, 7) as [Float32Array];
    assert.equal((await http.call(url, 'POST', '/v1/upsert', { chunks: [chunkFor(0, vector)] })).status, 200);
    assert.equal((await http.call(url, 'POST', '/v1/faults', { delay_ms: 700, delay_probability: 1 })).status, 200);
    const started = Date.now();
    const slowSearch = http.call<SearchResponse>(url, 'POST', '/v1/search', { queries: [{ vector: encodeVector(vector), k: 1, namespace: 'default' }] });
    await sleep(150);
    const pid = shard.pid;
    shard.kill('SIGTERM');
    const reply = await slowSearch;
    assert.equal(reply.status, 200, 'the in-flight search was allowed to finish');
    assert.equal(reply.body.results[0]?.hits[0]?.id, 'c0');
    assert.ok(Date.now() - started >= 650);
    await waitForExit(pid);
    assert.ok(existsSync(join(dataDir, 'CURRENT')), 'shutdown wrote a snapshot');
    await assert.rejects(http.call(url, 'GET', '/healthz'), 'the port is closed');
  });

  it('cuts requests that outlast the grace period', async () => {
    const shard = shardProcess('impatient-shard', join(root.path, 'impatient'), ['--grace-ms', '200'], { RAGWAY_FAULTS: '1' });
    const url = await shard.start();
    assert.equal((await http.call(url, 'POST', '/v1/faults', { delay_ms: 60_000 })).status, 200);
    const [vector] = randomUnitVectors(1, DIM, 8) as [Float32Array];
    const stuck = http.call(url, 'POST', '/v1/search', { queries: [{ vector: encodeVector(vector), k: 1, namespace: 'default' }] });
    await sleep(100);
    const pid = shard.pid;
    const stopped = Date.now();
    shard.kill('SIGTERM');
    await assert.rejects(stuck);
    await waitForExit(pid);
    assert.ok(Date.now() - stopped < 5_000, 'the shard exited soon after the grace period');
  });
});
