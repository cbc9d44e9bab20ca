// Replica sets over real shard processes: SIGKILL a replica while searches stream through the
// gateway's retriever, then the whole shard, then bring a replica back.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ServiceProcess } from '../../../cli/service-process.js';
import { isRagwayError } from '../../../core/errors.js';
import { ReplicaSet, replicaSetsFromSpec } from '../../../retriever/replica-set.js';
import { Scatter, type ChunkInput } from '../../../retriever/scatter.js';
import { randomUnitVectors } from '../../helpers/random.js';
import { until } from '../../helpers/until.js';

const DIM = 8;
const NS = 'ns';


describe('ReplicaSet over shard processes (shard 0 × 2 replicas, shard 1 × 1)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ragway-replicas-'));
  const names = ['shard-0a', 'shard-0b', 'shard-1'];
  const processes = names.map(
    (label) =>
      new ServiceProcess({
        label,
        host: '127.0.0.1',
        args: ['--data', join(dataDir, label), '--dim', String(DIM), '--space', 'cosine'],
        restart: false,
      }),
  );
  const [replicaA, replicaB] = processes;
  const events: string[] = [];
  const vectors = randomUnitVectors(300, DIM, 21);
  const chunks: ChunkInput[] = vectors.map((vector, i) => ({ id: `c${i}`, document_id: `d${i}`, namespace: NS, text: `t${i}`, vector }));
  let scatter: Scatter;

  before(async () => {
    const urls = await Promise.all(processes.map((process) => process.start()));
    const observer = {
      onReplicaEjected: (shard: number, url: string) => events.push(`ejected ${shard} ${url}`),
      onReplicaRestored: (shard: number, url: string) => events.push(`restored ${shard} ${url}`),
    };
    const sets = replicaSetsFromSpec([[urls[0] as string, urls[1] as string], [urls[2] as string]], {
      observer,
      ejection: { failures: 2, baseBackoffMs: 100, maxBackoffMs: 500 },
      probeIntervalMs: 200,
      http: { connections: 4, connectTimeoutMs: 1_000, requestTimeoutMs: 5_000 },
    });
    scatter = new Scatter(sets, observer);
    scatter.start();
    await scatter.check(DIM);
    const summary = await scatter.upsertChunks(chunks);
    assert.equal(summary.upserted, chunks.length);
    assert.deepEqual(summary.replicas.map((acks) => acks?.map((ack) => ack.ok)), [[true, true], [true]]);
  });

  after(async () => {
    await scatter?.close();
    await Promise.all(processes.map((process) => process.stop()));
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('loses no search when one replica is killed mid-stream', async () => {
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const worker = async (seed: number): Promise<void> => {
      for (let i = seed; !stop; i += 4) {
        try {
          const result = await scatter.search(vectors[i % vectors.length] as Float32Array, {
            k: 5,
            namespace: NS,
            requireComplete: true,
            deadline: Date.now() + 3_000,
          });
          assert.equal(result.hits.length, 5);
          ok += 1;
        } catch (err) {
          failures.push(err instanceof Error ? err.message : String(err));
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    // Counted, not timed: a loaded CI machine runs fewer searches per second, not fewer checks.
    try {
      await until(() => ok >= 30 || failures.length > 0, 10_000, '30 searches before the kill');
      const before = ok;
      replicaA?.kill('SIGKILL');
      await until(() => ok >= before + 60 || failures.length > 0, 10_000, '60 searches after the kill');
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    assert.deepEqual(failures, []);
    await until(() => events.includes(`ejected 0 ${replicaA?.url}`), 2_000, 'the killed replica to be ejected');
    const view = await scatter.cluster();
    assert.notEqual(view[0]?.replicas[0]?.state, 'ready');
    assert.equal(view[0]?.replicas[1]?.state, 'ready');
  });

  it('with every replica of a shard down, answers partial (or 503 when complete is required)', async () => {
    replicaB?.kill('SIGKILL');
    await sleep(100);
    const result = await scatter.search(vectors[0] as Float32Array, { k: 5, namespace: NS });
    assert.equal(result.coverage.partial, true);
    assert.equal(result.coverage.shards_ok, 1);
    assert.deepEqual(result.coverage.missing?.map((m) => m.shard), [0]);
    assert.match(result.coverage.missing?.[0]?.reason ?? '', /^shard-0: 2 of 2 replicas failed \(search\): /);
    assert.ok(result.hits.length > 0 && result.hits.every((hit) => scatter.shardFor(hit.document_id) === 1));

    await assert.rejects(scatter.search(vectors[0] as Float32Array, { k: 5, namespace: NS, requireComplete: true }), (err: unknown) => {
      assert.ok(isRagwayError(err));
      assert.equal(err.code, 'RAGWAY_ERR_SHARD_UNAVAILABLE');
      assert.equal(err.statusCode, 503);
      assert.match(err.message, /search needs all 2 shards: shard-0: 2 of 2 replicas failed/);
      return true;
    });
    // A write to the dead shard fails naming it; one to the live shard still lands.
    const onShard0 = chunks.find((chunk) => scatter.shardFor(chunk.document_id) === 0) as ChunkInput;
    await assert.rejects(scatter.upsertChunks([onShard0]), /upsert reached 0 of 1 shards .*shard-0: 2 of 2 replicas failed \(upsert\)/);
  });

  it('a restarted replica is probed back into service', async () => {
    await replicaA?.start();
    await until(() => events.includes(`restored 0 ${replicaA?.url}`), 5_000, 'the restarted replica to be restored');
    const shard0 = scatter.shards[0];
    assert.ok(shard0 instanceof ReplicaSet);
    await until(() => shard0.view()[0]?.state === 'ready', 3_000, 'the restarted replica to be ready');
    const result = await scatter.search(vectors[1] as Float32Array, { k: 5, namespace: NS, requireComplete: true });
    assert.equal(result.coverage.partial, false);
  });
});
