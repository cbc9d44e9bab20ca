// Replica catch-up between real `ragway shard` processes: through the change feed, through
// the export when the peer no longer has the changes, and alone when no peer answers.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChangesResponse, Chunk, StatsResponse } from '../../../shards/protocol.js';
import { randomUnitVectors } from '../../helpers/random.js';
import { assertSameContents, chunkFor, DIM, inParallel, ShardHttp, shardProcess, tempRoot } from './shard-http.js';

/** Versions as the gateway assigns them (wall clock × 1024 + counter), one per write. */
function versions(): () => number {
  let last = Date.now() * 1024;
  return () => ++last;
}

describe('replica catch-up (real processes)', () => {
  const http = new ShardHttp();
  let root: { path: string; remove(): Promise<void> };
  before(async () => {
    root = await tempRoot('shard-replication');
  });
  after(async () => {
    await http.close();
    await root.remove();
  });

  const vectors = randomUnitVectors(600, DIM, 77);
  const chunk = (i: number): Chunk => chunkFor(i, vectors[i] as Float32Array);

  async function upsert(urls: string[], chunks: Chunk[], version: number, replace = false): Promise<void> {
    for (const url of urls) {
      const reply = await http.call(url, 'POST', '/v1/upsert', { chunks, version, ...(replace ? { replace_documents: true } : {}) });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
    }
  }

  async function remove(urls: string[], documentIds: string[], version: number): Promise<void> {
    for (const url of urls) {
      assert.equal((await http.call(url, 'POST', '/v1/delete', { namespace: 'default', document_ids: documentIds, version })).status, 200);
    }
  }

  it('misses nothing when both replicas took writes the other missed (seqs diverged)', async () => {
    const next = versions();
    const aDir = join(root.path, 'diverge-a');
    const a = shardProcess('diverge-a', aDir);
    const b = shardProcess('diverge-b', join(root.path, 'diverge-b'));
    const aUrl = await a.start();
    const bUrl = await b.start();
    try {
      await inParallel([...Array(50).keys()], 10, (i) => upsert([aUrl, bUrl], [chunk(i)], next()));
      // Writes that reached only one replica each (the other's ack failed): A's seq runs 30
      // ahead, B's only 10 — their seqs no longer line up.
      await inParallel([...Array(30).keys()], 10, (i) => upsert([aUrl], [chunk(50 + i)], next()));
      await inParallel([...Array(10).keys()], 10, (i) => upsert([bUrl], [chunk(80 + i)], next()));
      await a.stop();
      a.setArgs(['--data', aDir, '--dim', String(DIM), '--space', 'cosine', '--peers', bUrl]);
      await a.start();
      await http.waitReady(aUrl);
      const contents = await http.contents(aUrl);
      assert.equal((await http.stats(aUrl)).count, 90, 'A has its own 80 and the 10 only B took');
      assert.ok(contents.length > 0);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('catches up through the change feed, not ready until it has, taking writes meanwhile', async () => {
    const next = versions();
    const a = shardProcess('replica-a', join(root.path, 'feed-a'), [], { RAGWAY_FAULTS: '1' });
    const b = shardProcess('replica-b', join(root.path, 'feed-b'));
    const aUrl = await a.start();
    const bUrl = await b.start();
    try {
      // The gateway writes to both replicas.
      await inParallel([...Array(200).keys()], 20, (i) => upsert([aUrl, bUrl], [chunk(i)], next()));
      await b.stop();

      // B misses upserts, deletes and replaces.
      await inParallel([...Array(300).keys()], 20, (i) => upsert([aUrl], [chunk(200 + i)], next()));
      await remove([aUrl], ['doc3', 'doc4', 'doc5'], next());
      await upsert([aUrl], [{ ...chunk(10), text: 'rewritten' }], next(), true);

      // A slow feed makes the catch-up window observable.
      assert.equal((await http.call(aUrl, 'POST', '/v1/faults', { delay_ms: 1500, delay_probability: 1, routes: ['changes'] })).status, 200);
      b.setArgs(['--data', join(root.path, 'feed-b'), '--dim', String(DIM), '--space', 'cosine', '--peers', aUrl]);
      await b.start();
      assert.equal(await http.ready(bUrl), 503, 'not ready while catching up');
      assert.equal((await http.stats(bUrl)).state, 'catching-up');
      const peerFeed = await http.call(bUrl, 'GET', '/v1/changes?since=0');
      assert.equal(peerFeed.status, 200, 'a replica that is catching up still feeds others what it holds');

      // A write during the catch-up reaches both replicas and is kept.
      await upsert([aUrl, bUrl], [chunk(550)], next());

      await http.waitReady(bUrl);
      const [aStats, bStats] = (await Promise.all([http.stats(aUrl), http.stats(bUrl)])) as [StatsResponse, StatsResponse];
      assert.equal(bStats.state, 'ready');
      assert.equal(bStats.count, aStats.count);
      assert.equal(bStats.count, 200 + 300 - 3 + 1);
      assertSameContents(await http.contents(bUrl), await http.contents(aUrl), 'B holds exactly what A holds, versions and tombstones included');
      assert.ok(bStats.wal_seq >= 500, `B's high-water mark advanced (${bStats.wal_seq})`);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('copies the export when the peer no longer retains the changes', async () => {
    const next = versions();
    const aDir = join(root.path, 'export-a');
    const a = shardProcess('retaining-nothing-a', aDir, ['--wal-retain-records', '0']);
    const b = shardProcess('behind-b', join(root.path, 'export-b'));
    const aUrl = await a.start();
    const bUrl = await b.start();
    try {
      await inParallel([...Array(100).keys()], 20, (i) => upsert([aUrl, bUrl], [chunk(i)], next()));
      await b.stop();
      await inParallel([...Array(150).keys()], 20, (i) => upsert([aUrl], [chunk(100 + i)], next()));
      await remove([aUrl], ['doc1', 'doc2'], next());
      // A restart snapshots A, and with no retention its log (and its feed) start over.
      await a.stop();
      await a.start();
      const feed = await http.call<ChangesResponse>(aUrl, 'GET', '/v1/changes?since=100');
      assert.equal(feed.body.snapshot_required, true);

      b.setArgs(['--data', join(root.path, 'export-b'), '--dim', String(DIM), '--space', 'cosine', '--peers', aUrl]);
      await b.start();
      await http.waitReady(bUrl);
      assertSameContents(await http.contents(bUrl), await http.contents(aUrl), 'B copied exactly what A holds');
      const bStats = await http.stats(bUrl);
      assert.equal(bStats.count, 248);
      assert.equal(bStats.wal_seq, (await http.stats(aUrl)).wal_seq, 'B took over A\'s high-water mark with the copy');
      const bFeed = await http.call<ChangesResponse>(bUrl, 'GET', '/v1/changes?since=0');
      assert.equal(bFeed.body.snapshot_required, true, 'B does not feed history it copied rather than logged');
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('serves its own data when no peer answers', async () => {
    const lonely = shardProcess('lonely', join(root.path, 'lonely'), ['--peers', 'http://127.0.0.1:1,http://127.0.0.1:2', '--catch-up-timeout-ms', '300']);
    const url = await lonely.start();
    try {
      const started = Date.now();
      await http.waitReady(url, 10_000);
      assert.ok(Date.now() - started < 5_000);
      assert.equal((await http.stats(url)).state, 'ready');
    } finally {
      await lonely.stop();
    }
  });
});
