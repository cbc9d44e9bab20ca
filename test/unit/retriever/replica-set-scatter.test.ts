import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ReplicaSet } from '../../../retriever/replica-set.js';
import { Scatter, type ChunkInput } from '../../../retriever/scatter.js';
import { SearchCoalescer } from '../../../retriever/search-coalescer.js';
import { VersionClock } from '../../../retriever/version-clock.js';
import { IndexStore } from '../../../shards/index-store.js';
import { ControlledReplica, DIM, NS, chunks, hasCode, refused, vectors } from './replica-fixtures.js';

describe('Scatter over replica sets', () => {
  const dirs: string[] = [];
  let scatter: Scatter;
  let shards: ControlledReplica[][];

  before(async () => {
    shards = [0, 1].map((shard) =>
      [0, 1].map((index) => {
        const dir = mkdtempSync(join(tmpdir(), 'ragway-scatter-replicas-'));
        dirs.push(dir);
        return new ControlledReplica(IndexStore.open({ dataDir: dir, dim: DIM, space: 'cosine', autoSaveMs: 0 }), shard * 2 + index);
      }),
    );
    const sets = shards.map((replicas, shard) => new ReplicaSet(replicas, { shard, hedge: { enabled: false }, ejection: { failures: 100, baseBackoffMs: 60_000 } }));
    scatter = new Scatter(sets, {}, { versionClock: new VersionClock() });
    const summary = await scatter.upsertChunks(chunks);
    assert.equal(summary.upserted, chunks.length);
    assert.deepEqual(summary.replicas.map((acks) => acks?.map((ack) => ack.ok)), [[true, true], [true, true]]);
    // One version for the whole write, on every replica of every shard.
    assert.ok(summary.version > 0);
    assert.deepEqual(shards.flat().map((replica) => replica.versions.at(-1)), [summary.version, summary.version, summary.version, summary.version]);
  });

  after(async () => {
    await scatter.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const heal = (): void => {
    for (const replica of shards.flat()) {
      replica.failure = undefined;
      replica.delay = () => 0;
    }
  };

  it('a shard with no live replica is missing from coverage; requireComplete makes it a 503', async () => {
    for (const replica of shards[1] ?? []) replica.failure = refused(replica);
    try {
      const result = await scatter.search(vectors[0] as Float32Array, { k: 5, namespace: NS });
      assert.equal(result.hits.length, 5);
      assert.equal(result.coverage.partial, true);
      assert.equal(result.coverage.shards_ok, 1);
      assert.deepEqual(result.coverage.missing?.map((m) => [m.shard, m.code]), [[1, 'RAGWAY_ERR_SHARD_UNAVAILABLE']]);
      assert.match(result.coverage.missing?.[0]?.reason ?? '', /^shard-1: 2 of 2 replicas failed \(search\): .*ECONNREFUSED/);
      // Only shard 0's documents in the answer.
      assert.ok(result.hits.every((hit) => scatter.shardFor(hit.document_id) === 0));

      await assert.rejects(
        scatter.search(vectors[0] as Float32Array, { k: 5, namespace: NS, requireComplete: true }),
        hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /^search needs all 2 shards: shard-1: 2 of 2 replicas failed/),
      );

      // Coalesced callers share one batch; each decides for itself.
      const coalescer = new SearchCoalescer(scatter);
      const [lenient, strict] = await Promise.allSettled([
        coalescer.search(vectors[1] as Float32Array, { k: 3, namespace: NS }),
        coalescer.search(vectors[2] as Float32Array, { k: 3, namespace: NS, requireComplete: true }),
      ]);
      assert.equal(lenient.status, 'fulfilled');
      assert.equal(lenient.status === 'fulfilled' && lenient.value.coverage.partial, true);
      assert.equal(strict.status, 'rejected');
      assert.ok(strict.status === 'rejected' && hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /shard-1: 2 of 2/)(strict.reason));

      const view = await scatter.cluster();
      assert.deepEqual(view.map((shard) => shard.replicas.map((r) => r.url)), [['mem://replica-0', 'mem://replica-1'], ['mem://replica-2', 'mem://replica-3']]);
      assert.deepEqual(view[1]?.replicas.map((r) => r.state), ['down', 'down']);
    } finally {
      heal();
    }
  });

  it('a deadline is a 504 with requireComplete and never waited past (coalesced too)', async () => {
    for (const replica of shards[0] ?? []) replica.delay = () => 400;
    try {
      let started = performance.now();
      const partial = await scatter.search(vectors[3] as Float32Array, { k: 3, namespace: NS, deadline: Date.now() + 60 });
      assert.ok(performance.now() - started < 150);
      assert.deepEqual(partial.coverage.missing?.map((m) => [m.shard, m.code]), [[0, 'RAGWAY_ERR_DEADLINE_EXCEEDED']]);

      const coalescer = new SearchCoalescer(scatter);
      started = performance.now();
      await assert.rejects(
        coalescer.search(vectors[3] as Float32Array, { k: 3, namespace: NS, deadline: Date.now() + 60, requireComplete: true }),
        hasCode('RAGWAY_ERR_DEADLINE_EXCEEDED', /shard-0/),
      );
      const waited = performance.now() - started;
      assert.ok(waited >= 50 && waited < 150, `waited ${waited} ms for a 60 ms budget`);
    } finally {
      heal();
    }
  });

  it('writes report per-shard replica acks, and fail naming the shard when no replica accepts', async () => {
    const doc = chunks.find((chunk) => scatter.shardFor(chunk.document_id) === 1) as ChunkInput;
    const [r2, r3] = shards[1] as ControlledReplica[];
    assert.ok(r2 && r3);
    r2.failure = refused(r2);
    try {
      const summary = await scatter.upsertChunks([{ ...doc, id: 'r1' }]);
      assert.deepEqual(summary.replicas[0], undefined);
      assert.deepEqual(summary.replicas[1]?.map((ack) => [ack.url, ack.ok]), [['mem://replica-2', false], ['mem://replica-3', true]]);
      r3.failure = refused(r3);
      await assert.rejects(
        scatter.deleteDocuments(NS, [doc.document_id]),
        hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /delete reached 0 of 1 shards .*shard-1: 2 of 2 replicas failed \(delete\)/),
      );
    } finally {
      heal();
    }
    const second = await scatter.deleteDocuments(NS, [doc.document_id]);
    assert.equal(second.documentsDeleted, 1);
    assert.ok(second.version > (shards[1]?.[1]?.versions.at(-2) ?? Infinity), 'versions only go up');
  });
});

describe('VersionClock', () => {
  it('is monotonic, even within one millisecond and when the wall clock steps back', () => {
    let now = 1_700_000_000_000;
    const clock = new VersionClock(() => now);
    const first = clock.next();
    assert.equal(first, now * 1024);
    const burst = Array.from({ length: 2000 }, () => clock.next());
    assert.ok(burst.every((v, i) => v > (i === 0 ? first : (burst[i - 1] as number))));
    now -= 5_000;
    const afterStepBack = clock.next();
    assert.ok(afterStepBack > (burst.at(-1) as number));
    now += 10_000;
    assert.equal(clock.next(), now * 1024);
    clock.observe(now * 1024 + 50);
    assert.equal(clock.next(), now * 1024 + 51);
    assert.ok(Number.isSafeInteger(clock.next()));
  });

  it('two Scatter writes get increasing versions from the scatter’s own clock', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ragway-version-'));
    try {
      const replica = new ControlledReplica(IndexStore.open({ dataDir: dir, dim: DIM, space: 'cosine', autoSaveMs: 0 }), 0);
      const scatter = new Scatter([replica]);
      const one = await scatter.upsertChunks(chunks.slice(0, 2));
      const two = await scatter.deleteDocuments(NS, ['d0']);
      assert.ok(two.version > one.version);
      assert.deepEqual(replica.versions, [one.version, two.version]);
      assert.deepEqual(one.replicas, [[{ url: 'mem://replica-0', ok: true }]]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
