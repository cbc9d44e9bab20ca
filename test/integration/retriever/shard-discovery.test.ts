// ShardDiscovery against a real DNS server (dns2 over UDP, started here) and real shard servers
// (hnswlib, HTTP): which addresses join which shard, which are refused and why, and the rule
// that a failing or empty lookup never changes membership — while a shard DNS no longer lists
// any replica for shows up as a coverage gap, not as a smaller cluster.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../../cli/free-port.js';
import { ShardDiscovery, type ShardDiscoveryOptions } from '../../../retriever/discovery/shard-discovery.js';
import type { DnsShardSource } from '../../../retriever/discovery/dns-endpoints.js';
import { HttpShardClient } from '../../../retriever/http-shard-client.js';
import { ReplicaSet } from '../../../retriever/replica-set.js';
import { Scatter } from '../../../retriever/scatter.js';
import { startShardServer, type ShardServer } from '../../../shards/server.js';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.js';
import { randomUnitVectors } from '../../helpers/random.js';
import { tempDirs } from '../../helpers/temp-dirs.js';
import { until } from '../../helpers/until.js';

const DIM = 8;
const NS = 'ns';
const SRV_NAME = '_shard._tcp.shards.discovery.test';
const A_NAME = 'shards.discovery.test';


describe('ShardDiscovery over a real DNS server', () => {
  const dir = tempDirs('discovery');
  let dns: TestDnsServer;
  const servers: ShardServer[] = [];
  const logs: string[] = [];

  const shard = async (shardIndex: number | undefined, host = '127.0.0.1', port = 0, dim = DIM): Promise<ShardServer> => {
    const server = await startShardServer({ host, port, dataDir: dir(), dim, space: 'cosine', ...(shardIndex === undefined ? {} : { shardIndex }) });
    servers.push(server);
    return server;
  };
  const srvOf = (server: ShardServer): { target: string; port: number } => ({ target: '127.0.0.1', port: server.port });

  const build = (source: DnsShardSource, extra: Partial<ShardDiscoveryOptions> = {}): { sets: ReplicaSet[]; discovery: ShardDiscovery; scatter: Scatter } => {
    const sets = Array.from(
      { length: source.shards },
      (_, index) => new ReplicaSet([], { shard: index, discovered: true, probeIntervalMs: 100, ejection: { failures: 2, baseBackoffMs: 50, maxBackoffMs: 200 } }),
    );
    const discovery = new ShardDiscovery({
      source,
      sets,
      servers: [dns.address],
      refreshMs: 100,
      lookupTimeoutMs: 300,
      identifyTimeoutMs: 1_000,
      expectedDim: DIM,
      client: (url, label) => new HttpShardClient(url, { label, connections: 2 }),
      log: (level, message) => logs.push(`${level}: ${message}`),
      ...extra,
    });
    const scatter = new Scatter(sets);
    scatter.start();
    return { sets, discovery, scatter };
  };
  const srvSource: DnsShardSource = { kind: 'dns', record: 'srv', name: SRV_NAME, port: 0, shards: 2, scheme: 'http', spec: `dns+srv://${SRV_NAME}?shards=2` };

  before(async () => {
    dns = await startDnsServer();
  });

  after(async () => {
    await Promise.all(servers.map((server) => server.close({ graceMs: 0 })));
    await dns?.close();
  });

  it('places each address on the shard it reports, refuses the ones that cannot be placed, and says why', async () => {
    const [a, b, c, noIndex, beyond, wrongDim] = [await shard(0), await shard(0), await shard(1), await shard(undefined), await shard(5), await shard(1, '127.0.0.1', 0, 16)];
    dns.setSrv(SRV_NAME, [a, b, c, noIndex, beyond, wrongDim].map((server) => srvOf(server!)));
    const { sets, discovery, scatter } = build(srvSource);
    try {
      const round = await discovery.refresh();
      assert.deepEqual(round.joined.sort(), [a!.url, b!.url, c!.url].sort());
      assert.deepEqual(sets[0]!.urls.sort(), [a!.url, b!.url].sort());
      assert.deepEqual(sets[1]!.urls, [c!.url]);
      assert.match(round.notUsed.get(noIndex!.url) ?? '', /reports no shard index .*--shard-index/);
      assert.match(round.notUsed.get(beyond!.url) ?? '', /reports shard 5, but dns\+srv:\/\/.* says there are 2 shards/);
      assert.match(round.notUsed.get(wrongDim!.url) ?? '', /16-dimensional/);
      assert.ok(logs.some((line) => line.startsWith('warn: ') && line.includes(`not using ${noIndex!.url}`)));

      // Asked again every round, logged again only when the answer changes.
      const warnings = logs.length;
      await discovery.refresh();
      assert.equal(logs.length, warnings, logs.slice(warnings).join('\n'));

      const vectors = randomUnitVectors(40, DIM, 7);
      await scatter.upsertChunks(vectors.map((vector, i) => ({ id: `c${i}`, document_id: `d${i}`, namespace: NS, text: `t${i}`, vector })));
      const result = await scatter.search(vectors[3], { k: 1, namespace: NS, requireComplete: true });
      assert.equal(result.hits[0]?.id, 'c3');
      assert.equal(result.coverage.partial, false);
    } finally {
      await discovery.close();
      await scatter.close();
    }
  });

  it('keeps the last membership when the lookup fails or finds nothing, and shows an emptied shard as a gap', async () => {
    const [a, c] = [await shard(0), await shard(1)];
    dns.setSrv(SRV_NAME, [srvOf(a!), srvOf(c!)]);
    const { sets, discovery, scatter } = build(srvSource);
    try {
      await discovery.refresh();
      assert.deepEqual(sets.map((set) => set.urls), [[a!.url], [c!.url]]);

      for (const mode of ['servfail', 'nxdomain'] as const) {
        dns.setMode(mode);
        const before = logs.length;
        const round = await discovery.refresh();
        assert.match(round.kept ?? '', mode === 'servfail' ? /lookup of .* failed/ : /has no SRV records/);
        assert.deepEqual(sets.map((set) => set.urls), [[a!.url], [c!.url]], `${mode} changed membership`);
        assert.ok(logs.slice(before).some((line) => /keeping the last known membership \(2 replicas\)/.test(line)));
        // Reads still work on the membership kept.
        await until(async () => (await scatter.search(new Float32Array(DIM).fill(0.5), { k: 1, namespace: NS })).coverage.partial === false, 5_000, 'a complete answer');
      }

      // Answers again, without shard 1's only replica: shard 1 is a gap, named as such.
      dns.setMode('answer');
      dns.setSrv(SRV_NAME, [srvOf(a!)]);
      const round = await discovery.refresh();
      assert.deepEqual(round.left, [c!.url]);
      assert.deepEqual(sets.map((set) => set.urls), [[a!.url], []]);
      const partial = await scatter.search(new Float32Array(DIM).fill(0.5), { k: 1, namespace: NS });
      assert.equal(partial.coverage.shards_total, 2);
      assert.equal(partial.coverage.shards_ok, 1);
      assert.match(partial.coverage.missing?.[0]?.reason ?? '', /shard-1: no replica of this shard is known/);
    } finally {
      await discovery.close();
      await scatter.close();
    }
  });

  it('follows A records (every address on one port) and moves a replica that now reports another shard', async () => {
    const port = await freePort();
    const [x, y] = [await shard(0, '127.0.0.2', port), await shard(1, '127.0.0.3', port)];
    dns.setAddresses(A_NAME, ['127.0.0.2', '127.0.0.3']);
    const source: DnsShardSource = { kind: 'dns', record: 'a', name: A_NAME, port, shards: 2, scheme: 'http', spec: `dns://${A_NAME}:${port}?shards=2` };
    const { sets, discovery, scatter } = build(source);
    try {
      await discovery.refresh();
      assert.deepEqual(sets.map((set) => set.urls), [[`http://127.0.0.2:${port}`], [`http://127.0.0.3:${port}`]]);

      // The process at 127.0.0.2 is replaced by one holding shard 1 (same address).
      await x!.close({ graceMs: 0 });
      await shard(1, '127.0.0.2', port);
      await until(() => sets[0]!.reportedShardIndex(`http://127.0.0.2:${port}`) === 1, 5_000, 'the membership refresh to see shard 1');
      const round = await discovery.refresh();
      assert.deepEqual(round.left, [`http://127.0.0.2:${port}`]);
      assert.deepEqual(round.joined, [`http://127.0.0.2:${port}`]);
      assert.deepEqual(sets.map((set) => set.urls.sort()), [[], [`http://127.0.0.2:${port}`, `http://127.0.0.3:${port}`]]);
      assert.ok(y);
    } finally {
      await discovery.close();
      await scatter.close();
    }
  });

  it('a data dir that held one shard refuses to start as another (it would be placed there by what it reports)', async () => {
    const dataDir = dir();
    const first = await startShardServer({ host: '127.0.0.1', port: 0, dataDir, dim: DIM, space: 'cosine', shardIndex: 0 });
    await first.close({ graceMs: 0 });
    await assert.rejects(
      startShardServer({ host: '127.0.0.1', port: 0, dataDir, dim: DIM, space: 'cosine', shardIndex: 1 }),
      /holds shard 0, but this replica was started as shard 1/,
    );
    const again = await startShardServer({ host: '127.0.0.1', port: 0, dataDir, dim: DIM, space: 'cosine', shardIndex: 0 });
    await again.close({ graceMs: 0 });
  });

  it('re-resolves on its own every refreshMs, and stops on close', async () => {
    const a = await shard(0);
    const c = await shard(1);
    dns.setSrv(SRV_NAME, [srvOf(a)]);
    const { sets, discovery, scatter } = build(srvSource);
    try {
      discovery.start();
      await until(() => sets[0]!.urls.length === 1, 5_000, 'the first timed round');
      dns.setSrv(SRV_NAME, [srvOf(a), srvOf(c)]);
      await until(() => sets[1]!.urls.length === 1, 5_000, 'a later round to add shard 1');
      await discovery.close();
      const asked = dns.queries(SRV_NAME);
      await sleep(400);
      assert.equal(dns.queries(SRV_NAME), asked, 'no lookup after close()');
    } finally {
      await discovery.close();
      await scatter.close();
    }
  });
});
