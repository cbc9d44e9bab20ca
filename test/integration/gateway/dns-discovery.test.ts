// The gateway finds its shards through DNS, as it would behind a Kubernetes headless Service:
// a real DNS server (dns2, UDP, started here) publishes SRV records for 2 shards × 2 replicas —
// real `ragway shard` processes, each started with --shard-index — and the gateway is given
// only `dns+srv://…?shards=2` and RAGWAY_DNS_SERVERS. With searches and document reads running
// the whole time, a third replica of shard 0 is added to the records (it catches up from its
// peers, and the gateway reads from it once ready), then one of the first two is removed from
// the records and, once the gateway has let it go, stopped. Not one request may fail, and
// /v1/cluster and /metrics must show both changes.
//
// SRV targets are IP literals (127.0.0.1) because every process listens on this host: the
// gateway's HTTP client resolves target names through the system resolver, which knows no
// test names. In a cluster the targets are the pods' own names (ragway-shard-3.ragway-shard…).
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
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.js';
import { listenOnLoopback } from '../../helpers/listen.js';
import { until } from '../../helpers/until.js';

const SRV_NAME = '_shard._tcp.ragway-shard.ragway.test';
const DOCUMENTS = 120;
const TOPICS = ['cache ttl expiry', 'train station tickets', 'pasta tomato sauce', 'volcano lava', 'guitar chords', 'tax returns'];

interface ClusterView {
  shards: Array<{ shard: number; ready_replicas: number; replicas: Array<{ url: string; state: string }> }>;
  discovery?: { spec: string; addresses: number | null; problem: string | null; not_used: Array<{ url: string; reason: string }> };
}


async function get(url: string): Promise<{ status: number; text: string }> {
  const response = await request(url);
  return { status: response.statusCode, text: await response.body.text() };
}

describe('DNS discovery of 2 shards × 2 replicas, with a replica added and one removed under load', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let dns: TestDnsServer;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;
  let base: string;
  const ids = Array.from({ length: DOCUMENTS }, (_, i) => `doc-${i}`);
  // Replica r of shard s: urls[s][r]. Shard 0's third replica (r = 2) joins during the test.
  const urls: string[][] = [];
  const processes: ServiceProcess[][] = [];
  // Published all along, answered by nobody: it must never be used nor cost a request.
  let dead: string;

  const replica = (shard: number, r: number, peers: string[]): ServiceProcess =>
    new ServiceProcess({
      label: `s${shard}r${r}`,
      host: '127.0.0.1',
      port: Number(new URL(urls[shard]![r]!).port),
      args: ['--data', join(dir.path, `s${shard}r${r}`), '--dim', '100', '--shard-index', String(shard), '--peers', peers.join(','), '--catch-up-timeout-ms', '3000'],
      restart: false,
    });
  const publish = (list: string[]): void => dns.setSrv(SRV_NAME, [...list, dead].map((url) => ({ target: '127.0.0.1', port: Number(new URL(url).port) })));
  const cluster = async (): Promise<ClusterView> => JSON.parse((await get(`${base}/v1/cluster`)).text) as ClusterView;
  const replicaUrls = async (shard: number): Promise<string[]> => (await cluster()).shards[shard]!.replicas.map((r) => r.url).sort();
  const metrics = async (): Promise<string> => (await get(`${base}/metrics`)).text;

  before(async () => {
    dir = await tempDir('dns-discovery');
    dns = await startDnsServer();
    backend = await loadDefaultBackend();
    for (let shard = 0; shard < 2; shard += 1) {
      urls.push(await Promise.all([0, 1, 2].map(async () => `http://127.0.0.1:${await freePort()}`)));
    }
    urls[1]!.pop();
    dead = `http://127.0.0.1:${await freePort()}`;
    for (let shard = 0; shard < 2; shard += 1) {
      processes.push([0, 1].map((r) => replica(shard, r, [urls[shard]![1 - r]!])));
    }
    await Promise.all(processes.flat().map((process) => process.start()));
    publish([...urls[0]!.slice(0, 2), ...urls[1]!]);

    const config = loadConfig(
      {},
      { shards: `dns+srv://${SRV_NAME}?shards=2`, dnsServers: dns.address, shardDnsRefreshMs: 200, logLevel: 'silent' },
    );
    app = await buildApp(config, { embeddingBackend: backend, defaultMetrics: false });
    base = await listenOnLoopback(app);
    await until(async () => (await get(`${base}/readyz`)).status === 200, 30_000, 'the gateway to be ready');
    for (let start = 0; start < DOCUMENTS; start += 40) {
      const batch = ids.slice(start, start + 40).map((id, i) => ({ id, text: `${TOPICS[(start + i) % TOPICS.length]}: note ${start + i}.` }));
      const response = await request(`${base}/v1/documents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ documents: batch }) });
      assert.equal(response.statusCode, 200, await response.body.text());
    }
  });

  after(async () => {
    await app?.close();
    await Promise.all(processes.flat().map((process) => process.stop()));
    await backend?.close();
    await dns?.close();
    await dir?.remove();
  });

  /** One complete search or one document read; a description of the failure, if any. */
  const probe = async (i: number): Promise<string | undefined> => {
    if (i % 3 !== 2) {
      const response = await request(`${base}/v1/search`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: TOPICS[i % TOPICS.length], k: 5, mode: 'vector', cache: { mode: 'bypass' }, require_complete: true }),
      });
      const body = (await response.body.json()) as { coverage?: { partial: boolean }; results?: unknown[] };
      const ok = response.statusCode === 200 && body.coverage?.partial === false && body.results?.length === 5;
      return ok ? undefined : `search ${response.statusCode} ${JSON.stringify(body).slice(0, 300)}`;
    }
    const id = ids[(i * 7919) % DOCUMENTS]!;
    const response = await request(`${base}/v1/documents/${id}`);
    const text = await response.body.text();
    return response.statusCode === 200 ? undefined : `GET ${id} ${response.statusCode} ${text.slice(0, 300)}`;
  };

  it('discovers every replica, then follows one added and one removed without failing a request', async () => {
    // Discovered: each replica on the shard it reports; the address nobody answers is not used, and says why.
    assert.deepEqual(await replicaUrls(0), urls[0]!.slice(0, 2).sort());
    assert.deepEqual(await replicaUrls(1), [...urls[1]!].sort());
    const { discovery } = await cluster();
    assert.equal(discovery?.spec, `dns+srv://${SRV_NAME}?shards=2`);
    assert.equal(discovery?.addresses, 5);
    assert.equal(discovery?.problem, null);
    assert.deepEqual(discovery?.not_used.map((entry) => entry.url), [dead]);
    assert.match(discovery!.not_used[0]!.reason, /does not answer yet/);

    const failures: string[] = [];
    let requests = 0;
    let running = true;
    const loop = async (worker: number): Promise<void> => {
      for (let i = worker; running; i += 2) {
        const failure = await probe(i).catch((err: unknown) => `request error: ${String(err)}`);
        requests += 1;
        if (failure !== undefined) failures.push(failure);
      }
    };
    const loops = Promise.all([0, 1].map(loop));
    const [kept, leaving, added] = [urls[0]![1]!, urls[0]![0]!, urls[0]![2]!];
    try {
      await until(async () => requests >= 30, 30_000, 'the query loop to get going');

      // A third replica of shard 0: started, caught up from its peers, then published.
      const third = replica(0, 2, [leaving, kept]);
      processes[0]!.push(third);
      await third.start();
      publish([leaving, kept, added, ...urls[1]!]);
      await until(
        async () => (await cluster()).shards[0]!.replicas.some((r) => r.url === added && r.state === 'ready'),
        30_000,
        `${added} to join shard 0 and be ready`,
      );
      // It takes reads: its own per-replica series counts answered searches.
      const answered = new RegExp(`ragway_replica_request_duration_seconds_count\\{shard="0",replica="${added}",outcome="ok"\\} [1-9]`);
      await until(async () => answered.test(await metrics()), 30_000, `searches answered by ${added}`);

      // One of the first two leaves the records; once the gateway let it go, it is stopped.
      publish([kept, added, ...urls[1]!]);
      await until(async () => !(await replicaUrls(0)).includes(leaving), 30_000, `${leaving} to leave shard 0`);
      const before = requests;
      await processes[0]![0]!.stop();
      await until(async () => requests >= before + 40, 30_000, 'more requests after the stop');

      assert.deepEqual(await replicaUrls(0), [kept, added].sort());
      assert.deepEqual(await replicaUrls(1), [...urls[1]!].sort());
      const text = await metrics();
      assert.ok(!text.includes(`replica="${leaving}"`), 'no series left for the replica that left');
      assert.match(text, /ragway_replica_membership_changes_total\{shard="0",change="joined"\} 3/);
      assert.match(text, /ragway_replica_membership_changes_total\{shard="0",change="left"\} 1/);
      assert.match(text, /ragway_shard_replicas\{shard="0",state="ready"\} 2/);
      assert.equal((await cluster()).discovery?.addresses, 5);
    } finally {
      running = false;
      await loops;
    }
    assert.deepEqual(failures, [], `${failures.length} of ${requests} requests failed`);
    assert.ok(requests >= 70, `only ${requests} requests ran`);
  });
});
