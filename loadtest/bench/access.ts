// Access-control benchmark (`npm run bench -- --only access`, or alone:
// `node dist/loadtest/bench/access.js [--quick]`):
// 1. Admission control under overload: capacity of uncached /v1/search is measured closed-loop,
//    then an open-loop load at 4x that rate hits two gateway processes over the same shards,
//    one with admission control and one without; admitted p99 vs unloaded p99 and goodput.
// 2. The auth check's cost: cached /v1/search throughput through one gateway, open (no keys
//    file yet) and then with a keys file and a Bearer key (the gateway reloads it live).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Pool } from 'undici';
import { batchDocuments, openSampleCorpus } from '../../cli/corpus.js';
import { ServiceProcess } from '../../cli/service-process.js';
import { packageRoot } from '../../core/package-paths.js';
import { generateToken } from '../../core/secrets.js';
import { addKey } from '../../gateway/access/keys-file.js';
import { sampleSentences } from './bench-cluster.js';
import { closedLoop, percentile, type LoadResult } from './load-generator.js';

export interface OverloadResult {
  offeredPerSecond: number;
  sent: number;
  ok: number;
  rejected: number;
  failed: number;
  goodputPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export interface AccessReport {
  capacity: LoadResult;
  unloaded: LoadResult;
  admission: { on: OverloadResult; off: OverloadResult; limits: Record<string, number> };
  auth: { open: LoadResult; keyed: LoadResult; costPercent: number };
}

/** Sends at a fixed rate whatever the answers do (an open loop: overload is not self-limiting). */
async function openLoop(pool: Pool, ratePerSecond: number, durationMs: number, body: (i: number) => unknown): Promise<OverloadResult> {
  const latencies: number[] = [];
  let sent = 0;
  let rejected = 0;
  let failed = 0;
  const inFlight: Promise<void>[] = [];
  const start = performance.now();
  const sendOne = async (i: number): Promise<void> => {
    const began = performance.now();
    try {
      const response = await pool.request({ method: 'POST', path: '/v1/search', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body(i)), headersTimeout: 30_000, bodyTimeout: 30_000 });
      await response.body.dump();
      if (response.statusCode === 200) latencies.push(performance.now() - began);
      else if (response.statusCode === 429 || response.statusCode === 503) rejected += 1;
      else failed += 1;
    } catch {
      failed += 1;
    }
  };
  while (performance.now() - start < durationMs) {
    const due = Math.floor(((performance.now() - start) / 1_000) * ratePerSecond);
    while (sent < due) inFlight.push(sendOne(sent++));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  const windowS = (performance.now() - start) / 1_000;
  await Promise.all(inFlight);
  latencies.sort((a, b) => a - b);
  return {
    offeredPerSecond: ratePerSecond,
    sent,
    ok: latencies.length,
    rejected,
    failed,
    goodputPerSecond: latencies.length / windowS,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
  };
}

export async function benchAccess(options: { quick: boolean; workDir: string; dim: number; log: (line: string) => void }): Promise<AccessReport> {
  const { log } = options;
  const seconds = options.quick ? 2_000 : 5_000;
  const clusterToken = generateToken('rgwc_');
  const shardEnv = { RAGWAY_CLUSTER_TOKEN: clusterToken };
  const shards = [0, 1].map(
    (index) =>
      new ServiceProcess({ label: `access-s${index}`, host: '127.0.0.1', args: ['--data', join(options.workDir, `access-s${index}`), '--dim', String(options.dim)], env: shardEnv, restart: false }),
  );
  const keysFile = join(options.workDir, 'access-keys.json');
  const limits = { RAGWAY_ADMIT_SEARCH_CONCURRENCY: 4, RAGWAY_ADMIT_QUEUE_LENGTH: 4, RAGWAY_ADMIT_QUEUE_TIMEOUT_MS: 25 };
  const gatewayEnv = (extra: Record<string, string>): Record<string, string> => ({
    RAGWAY_LOG_LEVEL: 'error',
    RAGWAY_CLUSTER_TOKEN: clusterToken,
    RAGWAY_KEYS_FILE: keysFile,
    ...extra,
  });
  const gateways: ServiceProcess[] = [];
  const pools: Pool[] = [];
  try {
    await Promise.all(shards.map((shard) => shard.start()));
    const spec = shards.map((shard) => shard.url).join(';');
    const start = async (label: string, env: Record<string, string>): Promise<Pool> => {
      const gateway = new ServiceProcess({ label, command: 'gateway', host: '127.0.0.1', args: ['--shards', spec], env: gatewayEnv(env), restart: false });
      gateways.push(gateway);
      const pool = new Pool(await gateway.start(), { connections: 1_024 });
      pools.push(pool);
      return pool;
    };
    const admitted = await start('access-admission-on', Object.fromEntries(Object.entries(limits).map(([k, v]) => [k, String(v)])));
    const unlimited = await start('access-admission-off', { RAGWAY_ADMISSION: 'false' });

    const source = await openSampleCorpus(join(packageRoot(), 'node_modules'));
    let documents = 0;
    for await (const batch of batchDocuments(source.documents(), { maxDocuments: 32, maxBytes: 2 * 1024 * 1024 })) {
      const response = await unlimited.request({ method: 'POST', path: '/v1/documents', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ documents: batch }) });
      await response.body.dump();
      documents += batch.length;
      if (documents >= (options.quick ? 64 : 256)) break;
    }
    const queries = await sampleSentences(5_000);
    const uncached = (i: number): unknown => ({ query: queries[i % queries.length], k: 5, cache: { mode: 'bypass' } });
    const send = (pool: Pool, body: unknown, headers: Record<string, string> = {}) => async (): Promise<boolean> => {
      const response = await pool.request({ method: 'POST', path: '/v1/search', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      await response.body.dump();
      return response.statusCode === 200;
    };

    log('access: measuring capacity (uncached search, closed loop c=16) and unloaded latency (c=1)');
    let counter = 0;
    const capacity = await closedLoop({ concurrency: 16, durationMs: seconds, warmupMs: 500, send: () => send(unlimited, uncached(counter++))() });
    const unloaded = await closedLoop({ concurrency: 1, durationMs: seconds, warmupMs: 200, send: () => send(unlimited, uncached(counter++))() });
    const offered = Math.round(capacity.requestsPerSecond * 4);
    log(`access: capacity ${capacity.requestsPerSecond.toFixed(0)} req/s; offering ${offered} req/s with admission on, then off`);
    const on = await openLoop(admitted, offered, seconds, (i) => uncached(counter + i));
    counter += on.sent;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const off = await openLoop(unlimited, offered, seconds, (i) => uncached(counter + i));

    log('access: cached search throughput, open and then with a key');
    const hot = { query: 'how do I set a TTL on cache entries', k: 5 };
    await send(admitted, hot)();
    const open = await closedLoop({ concurrency: 32, durationMs: seconds, warmupMs: 500, send: send(unlimited, hot) });
    const file = { version: 1 as const, keys: [] };
    const { key } = addKey(file, { name: 'bench', scopes: ['read'], namespaces: ['default'], limits: {} });
    await writeFile(keysFile, JSON.stringify(file));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const keyed = await closedLoop({ concurrency: 32, durationMs: seconds, warmupMs: 500, send: send(unlimited, hot, { authorization: `Bearer ${key}` }) });
    if (keyed.errors > 0) throw new Error(`keyed cached search failed: ${keyed.firstError ?? 'non-200'}`);
    return {
      capacity,
      unloaded,
      admission: { on, off, limits },
      auth: { open, keyed, costPercent: (1 - keyed.requestsPerSecond / open.requestsPerSecond) * 100 },
    };
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
    await Promise.all(gateways.map((gateway) => gateway.stop()));
    await Promise.all(shards.map((shard) => shard.stop()));
  }
}

export function renderAccess(report: AccessReport): string {
  const row = (label: string, r: OverloadResult): string =>
    `| ${label} | ${r.offeredPerSecond} | ${r.sent} | ${r.ok} | ${r.rejected} | ${r.failed} | ${r.goodputPerSecond.toFixed(0)} (${((r.goodputPerSecond / report.capacity.requestsPerSecond) * 100).toFixed(0)}%) | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} (${(r.p99Ms / report.unloaded.p99Ms).toFixed(1)}x) |`;
  return [
    '## Access control',
    '',
    `Uncached /v1/search capacity ${report.capacity.requestsPerSecond.toFixed(0)} req/s (closed loop, c=16; p99 ${report.capacity.p99Ms.toFixed(1)} ms); unloaded p99 ${report.unloaded.p99Ms.toFixed(1)} ms (c=1).`,
    `Open-loop overload at 4x capacity; admission limits ${JSON.stringify(report.admission.limits)}.`,
    '',
    '| gateway | offered req/s | sent | 200 | 429/503 | failed | goodput req/s (of capacity) | p50 ms | admitted p99 ms (of unloaded p99) |',
    '|---|---|---|---|---|---|---|---|---|',
    row('admission on', report.admission.on),
    row('admission off', report.admission.off),
    '',
    `Auth check on cached /v1/search (c=32): open ${report.auth.open.requestsPerSecond.toFixed(0)} req/s, with a Bearer key ${report.auth.keyed.requestsPerSecond.toFixed(0)} req/s (cost ${report.auth.costPercent.toFixed(1)}%).`,
    '',
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const workDir = await mkdtemp(join(tmpdir(), 'ragway-bench-access-'));
  try {
    const report = await benchAccess({ quick: process.argv.includes('--quick'), workDir, dim: 100, log: (line) => process.stderr.write(`[bench] ${line}\n`) });
    process.stdout.write(`${renderAccess(report)}\n${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
