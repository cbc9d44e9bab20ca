// Replicas joining and leaving a replica set while it serves (what DNS discovery does): a new
// replica takes writes at once and reads only once its stats say it is ready; a replica that
// leaves gets nothing new, its calls in flight finish (and succeed) before its client closes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ReplicaSet, type ReplicaSetObserver } from '../../../retriever/replica-set.js';
import { encodeVector } from '../../../shards/protocol.js';
import { IndexStore } from '../../../shards/index-store.js';
import { mulberry32 } from '../../helpers/random.js';
import { ControlledReplica, DIM, chunks, hasCode, query, sleep } from './replica-fixtures.js';

describe('ReplicaSet membership changes', () => {
  const dirs: string[] = [];
  const sets: ReplicaSet[] = [];
  let index = 0;
  const replica = (): ControlledReplica => {
    const dir = mkdtempSync(join(tmpdir(), 'ragway-replica-changes-'));
    dirs.push(dir);
    return new ControlledReplica(IndexStore.open({ dataDir: dir, dim: DIM, space: 'cosine', autoSaveMs: 0 }), index++);
  };
  const events: string[] = [];
  const observer: ReplicaSetObserver = {
    onReplicaAdded: (shard, url) => events.push(`added:${shard}:${url}`),
    onReplicaRemoved: (shard, url) => events.push(`removed:${shard}:${url}`),
    onReplicaCall: (shard, url, _seconds, outcome) => events.push(`call:${shard}:${url}:${outcome}`),
  };
  const write = (set: ReplicaSet) => set.upsert({ chunks: chunks.map((chunk) => ({ ...chunk, vector: encodeVector(chunk.vector as Float32Array) })) });

  after(async () => {
    for (const set of sets) await set.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('a discovered set may be empty, and then says no replica is known; a configured one may not', async () => {
    assert.throws(() => new ReplicaSet([]), /at least one replica/);
    const set = new ReplicaSet([], { shard: 3, discovered: true });
    sets.push(set);
    await assert.rejects(set.search(query(0)), hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /shard-3: no replica of this shard is known \(search\)/));
    await assert.rejects(write(set), /no replica of this shard is known \(upsert\)/);
  });

  it('a joining replica takes writes at once and reads once its stats say ready', async () => {
    const first = replica();
    const set = new ReplicaSet([first], { shard: 1, observer, hedge: { enabled: false }, random: mulberry32(7) });
    sets.push(set);
    await write(set);
    const joining = replica();
    joining.state = 'catching-up';
    assert.equal(set.addReplica(joining), true);
    assert.equal(set.addReplica(joining), false, 'the same URL joins once');
    assert.deepEqual(set.urls, [first.url, joining.url]);
    assert.ok(events.includes(`added:1:${joining.url}`));
    await write(set);
    assert.equal(joining.calls.upsert, 1, 'writes reach it while it catches up');
    for (let i = 0; i < 20; i += 1) await set.search(query(i));
    assert.equal(joining.calls.search, 0, 'no reads before it is ready');

    // The probe that found it catching up comes back within the probe backoff.
    joining.state = 'ready';
    for (let i = 0; joining.calls.search === 0 && i < 300; i += 1) {
      await set.search(query(i));
      await sleep(10);
    }
    assert.ok(joining.calls.search > 0, 'reads once ready');
    assert.ok(events.includes(`call:1:${joining.url}:ok`), 'per-replica call metrics name it');
  });

  it('a leaving replica finishes its calls in flight, then closes; nothing new reaches it', async () => {
    const [a, b] = [replica(), replica()];
    const set = new ReplicaSet([a, b], { shard: 2, observer, hedge: { enabled: false }, random: mulberry32(3) });
    sets.push(set);
    await write(set);
    a.delay = () => 150;
    b.delay = () => 150;
    const inFlight = set.search(query(1));
    await sleep(20);
    const busy = a.calls.search === 1 ? a : b;
    const other = busy === a ? b : a;
    let closed = false;
    const close = busy.close.bind(busy);
    busy.close = async () => {
      closed = true;
      await close();
    };
    const order: string[] = [];
    const removal = set.removeReplica(busy.url).then((removed) => {
      order.push('removed');
      return removed;
    });
    assert.deepEqual(set.urls, [other.url], 'out of every pick at once');
    assert.equal(closed, false);
    const answer = await inFlight;
    order.push('answered');
    assert.equal(answer.results.length, 1);
    assert.equal(await removal, true);
    assert.deepEqual(order, ['answered', 'removed']);
    assert.ok(closed, 'its client is closed once drained');
    assert.ok(events.includes(`removed:2:${busy.url}`));

    busy.delay = () => 0;
    other.delay = () => 0;
    const before = busy.calls.search;
    for (let i = 0; i < 10; i += 1) await set.search(query(i));
    await write(set);
    assert.equal(busy.calls.search, before);
    assert.equal(busy.calls.upsert, 1, 'only the write from before it left');
    assert.equal(await set.removeReplica(busy.url), false);
  });
});
