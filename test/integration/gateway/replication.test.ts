// The gateway over 2 shards × 2 replicas, all real processes: a replica killed mid-traffic
// costs no request, a whole shard down gives a labelled partial answer (503 when the client
// insists), a slow replica is hedged around, and a replica that missed writes catches up
// before it serves.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { freePort } from '../../../cli/free-port.js';
import { ServiceProcess } from '../../../cli/service-process.js';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import { loadDefaultBackend, tempDir } from '../../helpers/cluster.js';
import { listenOnLoopback } from '../../helpers/listen.js';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '../../../shards/protocol.js';

const SHARDS = 2;
const REPLICAS = 2;
const TOPICS = ['cache ttl expiry', 'train station tickets', 'pasta tomato sauce', 'volcano lava', 'guitar chords', 'tax returns', 'mountain hiking', 'coffee brewing'];

describe('replicated shards behind the gateway', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;
  let base: string;
  const replicas: ServiceProcess[][] = [];
  const urls: string[][] = [];

  const replicaArgs = (shard: number, replica: number): string[] => [
    '--data', join(dir.path, `s${shard}r${replica}`),
    '--dim', '100',
    '--peers', (urls[shard] ?? []).filter((_, other) => other !== replica).join(','),
    '--catch-up-timeout-ms', '3000',
  ];
  const search = async (body: Record<string, unknown>) => {
    const response = await request(`${base}/v1/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ k: 5, cache: { mode: 'bypass' }, ...body }),
    });
    return { status: response.statusCode, json: (await response.body.json()) as Record<string, any> };
  };
  const cluster = async () => (await (await request(`${base}/v1/cluster`)).body.json()) as { shards: { replicas: { url: string; state: string; documents: number | null }[] }[] };
  /** Replicas started together catch up from each other first; wait until the gateway sees them all ready. */
  const allReady = async (): Promise<void> => {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const view = await cluster();
      if (view.shards.every((shard) => shard.replicas.every((replica) => replica.state === 'ready'))) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.fail(`replicas not ready: ${JSON.stringify(await cluster())}`);
  };
  const setFault = async (url: string, settings: Record<string, unknown>) => {
    const response = await request(`${url}/v1/faults`, { method: 'POST', headers: { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) }, body: JSON.stringify(settings) });
    assert.equal(response.statusCode, 200, await response.body.text());
  };

  before(async () => {
    dir = await tempDir('replication');
    backend = await loadDefaultBackend();
    for (let shard = 0; shard < SHARDS; shard += 1) {
      urls.push(await Promise.all(Array.from({ length: REPLICAS }, async () => `http://127.0.0.1:${await freePort()}`)));
    }
    for (let shard = 0; shard < SHARDS; shard += 1) {
      replicas.push(
        Array.from({ length: REPLICAS }, (_, replica) =>
          new ServiceProcess({
            label: `s${shard}r${replica}`,
            host: '127.0.0.1',
            port: Number(new URL(urls[shard]?.[replica] as string).port),
            args: replicaArgs(shard, replica),
            env: { RAGWAY_FAULTS: '1' },
            restart: false,
          }),
        ),
      );
    }
    await Promise.all(replicas.flat().map((process) => process.start()));
    app = await buildApp(
      loadConfig({}, {
        shards: urls.map((set) => set.join(',')).join(';'),
        logLevel: 'silent',
        hedgeMinDelayMs: 5,
        replicaEjectFailures: 2,
        replicaProbeBackoffMs: 100,
      }),
      { embeddingBackend: backend, defaultMetrics: false },
    );
    base = await listenOnLoopback(app);
    await allReady();
    await app.documents.ingest(
      'default',
      TOPICS.flatMap((topic, i) => [0, 1, 2].map((n) => ({ id: `doc-${i}-${n}`, text: `${topic}: note ${n} about ${topic}.` }))),
    );
  });

  after(async () => {
    await app?.close();
    await Promise.all(replicas.flat().map((process) => process.stop()));
    await backend?.close();
    await dir?.remove();
  });

  it('lists every shard and replica in /v1/cluster', async () => {
    const view = await cluster();
    assert.equal(view.shards.length, SHARDS);
    for (const shard of view.shards) {
      assert.equal(shard.replicas.length, REPLICAS);
      assert.ok(shard.replicas.every((replica) => replica.state === 'ready'), JSON.stringify(shard.replicas));
    }
  });

  it('loses no request when a replica is killed while searches run', async () => {
    let ok = 0;
    const failures: string[] = [];
    const stopAt = performance.now() + 1_500;
    const loop = async (worker: number): Promise<void> => {
      for (let i = 0; performance.now() < stopAt; i += 1) {
        const response = await search({ query: TOPICS[(worker + i) % TOPICS.length] });
        if (response.status === 200 && response.json['coverage'].partial === false) ok += 1;
        else failures.push(`${response.status} ${JSON.stringify(response.json).slice(0, 200)}`);
      }
    };
    const running = Promise.all([0, 1, 2, 3].map(loop));
    await new Promise((resolve) => setTimeout(resolve, 300));
    replicas[0]?.[0]?.kill('SIGKILL');
    await running;
    assert.deepEqual(failures, []);
    assert.ok(ok > 40, `${ok} searches ran`);
    const states = (await cluster()).shards[0]?.replicas.map((replica) => replica.state);
    assert.ok(states?.includes('ejected') || states?.includes('down'), `killed replica shows as out: ${states}`);
    await replicas[0]?.[0]?.start();
  });

  it('answers partially, naming the shard, when both replicas of a shard are down — and 503 with require_complete', async () => {
    await Promise.all((replicas[1] ?? []).map((process) => process.stop()));
    try {
      const partial = await search({ query: 'volcano lava' });
      assert.equal(partial.status, 200);
      assert.equal(partial.json['coverage'].partial, true);
      assert.deepEqual(partial.json['coverage'].missing.map((m: { shard: number }) => m.shard), [1]);
      assert.match(partial.json['coverage'].missing[0].reason, /2 of 2 replicas/);
      const strict = await search({ query: 'volcano lava', require_complete: true });
      assert.equal(strict.status, 503);
      assert.equal(strict.json['error'].code, 'RAGWAY_ERR_SHARD_UNAVAILABLE');
    } finally {
      await Promise.all((replicas[1] ?? []).map((process) => process.start()));
    }
  });

  it('routes or hedges around a replica made slow by 200 ms', async () => {
    await allReady();
    // Latency history for the hedge threshold.
    for (let i = 0; i < 60; i += 1) assert.equal((await search({ query: TOPICS[i % TOPICS.length] })).status, 200);
    const slowUrl = urls[0]?.[1] as string;
    const slowSearches = async (): Promise<number> => {
      const response = await request(`${slowUrl}/v1/stats`, { headers: { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) } });
      return ((await response.body.json()) as { search_requests: number }).search_requests;
    };
    await setFault(slowUrl, { delay_ms: 200, delay_probability: 1 });
    const before = await slowSearches();
    try {
      // Concurrent searches, so load-aware replica choice sends some of them to the slow
      // replica (sequential ones would all go to the faster one and never need a hedge).
      const latencies: number[] = [];
      await Promise.all(
        [0, 1, 2, 3].map(async (worker) => {
          for (let i = 0; i < 15; i += 1) {
            const started = performance.now();
            const response = await search({ query: `${TOPICS[(worker + i) % TOPICS.length]} ${worker}-${i}` });
            latencies.push(performance.now() - started);
            assert.equal(response.status, 200);
          }
        }),
      );
      latencies.sort((a, b) => a - b);
      const p90 = latencies[Math.floor(latencies.length * 0.9)] as number;
      assert.ok(p90 < 150, `p90 ${p90.toFixed(0)} ms: the slow replica was not hedged around`);
      // Load-aware choice already steers most calls away from the slow replica; every call
      // that still went to it must have been hedged, or p90 could not be this low.
      const sentToSlow = (await slowSearches()) - before;
      if (sentToSlow > 0) {
        const metrics = await (await request(`${base}/metrics`)).body.text();
        const won = Number(/ragway_shard_hedges_total\{shard="0",result="won"\} (\d+)/.exec(metrics)?.[1] ?? 0);
        assert.ok(won > 0, `${sentToSlow} searches reached the slow replica but no hedge won`);
      }
    } finally {
      await setFault(slowUrl, { delay_ms: 0, delay_probability: 0 });
    }
  });

  it('lets a replica that missed writes catch up before it serves', async () => {
    const lagging = replicas[1]?.[1];
    assert.ok(lagging);
    await lagging.stop();
    await app.documents.ingest('default', Array.from({ length: 40 }, (_, i) => ({ id: `late-${i}`, text: `late arrival ${i} about glaciers and ice` })));
    // A slow change feed on its peer makes the catch-up window visible.
    await setFault(urls[1]?.[0] as string, { delay_ms: 2_500, delay_probability: 1, routes: ['changes'] });
    await lagging.start();
    let during: string | undefined;
    for (let attempt = 0; attempt < 20 && during !== 'catching-up'; attempt += 1) {
      during = (await cluster()).shards[1]?.replicas.find((replica) => replica.url === urls[1]?.[1])?.state;
      if (during !== 'catching-up') await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(during, 'catching-up', 'the gateway sees the replica catching up (and does not read from it)');
    // Reads keep working (from the other replica) and see the new documents meanwhile.
    const meanwhile = await search({ query: 'glaciers and ice', k: 40 });
    assert.equal(meanwhile.status, 200);
    await setFault(urls[1]?.[0] as string, { delay_ms: 0, delay_probability: 0 });
    for (let attempt = 0; attempt < 60; attempt += 1) {
      const replica = (await cluster()).shards[1]?.replicas.find((r) => r.url === urls[1]?.[1]);
      if (replica?.state === 'ready') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const view = (await cluster()).shards[1]?.replicas ?? [];
    assert.deepEqual(view.map((replica) => replica.state), ['ready', 'ready']);
    assert.equal(view[0]?.documents, view[1]?.documents, 'the caught-up replica holds what its peer holds');
  });
});
