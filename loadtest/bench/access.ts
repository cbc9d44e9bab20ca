// Access-control benchmark (`npm run bench -- --only access`, or alone:
// `node dist/loadtest/bench/access.js [--quick]`), two targets, each printed with whether it was met:
// 1. Admission control under overload. Capacity of uncached /v1/search is the best throughput
//    of closed-loop runs at rising concurrency on a gateway without admission control; the
//    unloaded p99 is the concurrency-1 run's. Then an open loop (constant arrival rate, whatever
//    the answers do) offers 4x capacity to a gateway with admission control (its defaults:
//    the adaptive search limit) and to one without. Target: admitted p99 <= 2x unloaded p99 and
//    goodput (200s per second, counted until the last answer arrived) >= 90% of capacity.
// 2. The auth check's cost on cached /v1/search: a gateway with a keys file (every request
//    carries a Bearer key) against one without auth, measured in alternating short rounds so
//    the machine's background load falls on both alike. Target: <= 3% fewer requests/s. A
//    twin of the open gateway runs in the same rounds: what two identical processes differ by.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Pool } from 'undici';
import { batchDocuments, openSampleCorpus } from '../../cli/corpus.js';
import { ServiceProcess } from '../../cli/service-process.js';
import { packageRoot } from '../../core/package-paths.js';
import { generateToken } from '../../core/secrets.js';
import { addKey } from '../../gateway/access/keys-file.js';
import { sampleSentences } from './bench-cluster.js';
import { closedLoop, percentile, postJson, type LoadResult } from './load-generator.js';

export interface OverloadResult {
  offeredPerSecond: number;
  sent: number;
  ok: number;
  rejected: number;
  failed: number;
  /** From the first request sent to the last answer received. */
  elapsedS: number;
  goodputPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Median time to a 429/503: what refusing costs a client. */
  rejectP50Ms: number;
}

export interface AccessReport {
  sweep: { concurrency: number; result: LoadResult }[];
  capacity: LoadResult;
  capacityConcurrency: number;
  unloaded: LoadResult;
  admission: { on: OverloadResult; off: OverloadResult; settings: Record<string, string>; p99Ratio: number; goodputPercent: number; met: boolean };
  auth: {
    rounds: number;
    roundMs: number;
    open: Rate;
    /** The open gateway sent the same Authorization header (it ignores it): the header's own cost. */
    openWithHeader: Rate;
    keyed: Rate;
    /** From the totals. */
    totalCostPercent: number;
    /** From the median of the rounds' keyed/open ratios: what the target is judged on. */
    costPercent: number;
    /** Median keyed/open-with-header: the key check alone, the header's transfer and parsing aside. */
    checkCostPercent: number;
    /**
     * A second gateway configured exactly as the open one, measured in the same rounds: how
     * far apart two identical gateway processes land here (median twin/open, as a cost). A
     * cost within this spread of zero cannot be told from noise on this machine.
     */
    twinDifferencePercent: number;
    met: boolean;
  };
}

/** Sends at a fixed rate whatever the answers do (an open loop: overload is not self-limiting). */
async function openLoop(pool: Pool, ratePerSecond: number, durationMs: number, body: (i: number) => unknown): Promise<OverloadResult> {
  const latencies: number[] = [];
  const rejections: number[] = [];
  let sent = 0;
  let failed = 0;
  const inFlight: Promise<void>[] = [];
  const start = performance.now();
  let lastAnswer = start;
  const sendOne = async (i: number): Promise<void> => {
    const began = performance.now();
    try {
      const response = await pool.request({ method: 'POST', path: '/v1/search', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body(i)), headersTimeout: 60_000, bodyTimeout: 60_000 });
      await response.body.dump();
      const took = performance.now() - began;
      if (response.statusCode === 200) latencies.push(took);
      else if (response.statusCode === 429 || response.statusCode === 503) rejections.push(took);
      else failed += 1;
    } catch {
      failed += 1;
    }
    lastAnswer = Math.max(lastAnswer, performance.now());
  };
  while (performance.now() - start < durationMs) {
    const due = Math.floor(((performance.now() - start) / 1_000) * ratePerSecond);
    while (sent < due) inFlight.push(sendOne(sent++));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await Promise.all(inFlight);
  // Goodput counts every success until the last answer came back: a backlog that drains after
  // the offered window is not free throughput.
  const elapsedS = (lastAnswer - start) / 1_000;
  latencies.sort((a, b) => a - b);
  rejections.sort((a, b) => a - b);
  return {
    offeredPerSecond: ratePerSecond,
    sent,
    ok: latencies.length,
    rejected: rejections.length,
    failed,
    elapsedS,
    goodputPerSecond: latencies.length / elapsedS,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    rejectP50Ms: percentile(rejections, 0.5),
  };
}

interface Rate {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
}

/**
 * Closed-loop rounds against several targets in turn (forwards, then backwards, …), so drifting
 * background load falls on all alike. Besides the totals, `relative(x, y)`: the median over
 * rounds of x's rate over y's in the same round, which a burst of someone else's load landing
 * on one round moves little.
 */
async function alternating<K extends string>(rounds: number, roundMs: number, concurrency: number, targets: Record<K, () => Promise<boolean>>) {
  const names = Object.keys(targets) as K[];
  const totals = Object.fromEntries(names.map((name) => [name, { requests: 0, seconds: 0 }])) as Record<K, { requests: number; seconds: number }>;
  const perRound: Record<K, number>[] = [];
  for (let round = 0; round < rounds; round += 1) {
    const rates = {} as Record<K, number>;
    for (const name of round % 2 === 0 ? names : [...names].reverse()) {
      const result = await closedLoop({ concurrency, durationMs: roundMs, warmupMs: 100, send: targets[name] });
      if (result.errors > 0) throw new Error(`${name}: cached search failed: ${result.firstError ?? 'non-200'}`);
      totals[name].requests += result.requests;
      totals[name].seconds += result.seconds;
      rates[name] = result.requestsPerSecond;
    }
    perRound.push(rates);
  }
  const rate = (name: K): Rate => ({ ...totals[name], requestsPerSecond: totals[name].requests / totals[name].seconds });
  const relative = (x: K, y: K): number => percentile(perRound.map((rates) => rates[x] / rates[y]).sort((a, b) => a - b), 0.5);
  return { rate, relative };
}

export async function benchAccess(options: { quick: boolean; workDir: string; dim: number; log: (line: string) => void }): Promise<AccessReport> {
  const { log } = options;
  const stepMs = options.quick ? 1_200 : 3_000;
  const overloadMs = options.quick ? 3_000 : 6_000;
  const clusterToken = generateToken('rgwc_');
  const shardEnv = { RAGWAY_CLUSTER_TOKEN: clusterToken };
  const shards = [0, 1].map(
    (index) =>
      new ServiceProcess({ label: `access-s${index}`, host: '127.0.0.1', args: ['--data', join(options.workDir, `access-s${index}`), '--dim', String(options.dim)], env: shardEnv, restart: false }),
  );
  const keysFile = join(options.workDir, 'access-keys.json');
  // The admission gateway runs its defaults (adaptive search limit) with a short queue;
  // RAGWAY_BENCH_ADMISSION (JSON of RAGWAY_ADMIT_* settings) tries others.
  const settings: Record<string, string> = { RAGWAY_ADMIT_QUEUE_LENGTH: '8', RAGWAY_ADMIT_QUEUE_TIMEOUT_MS: '20', ...(JSON.parse(process.env['RAGWAY_BENCH_ADMISSION'] ?? '{}') as Record<string, string>) };
  const noAuth = { RAGWAY_AUTH: 'off' };
  const gateways: ServiceProcess[] = [];
  const pools: Pool[] = [];
  try {
    await Promise.all(shards.map((shard) => shard.start()));
    const spec = shards.map((shard) => shard.url).join(';');
    const start = async (label: string, env: Record<string, string>): Promise<Pool> => {
      const gateway = new ServiceProcess({
        label,
        command: 'gateway',
        host: '127.0.0.1',
        args: ['--shards', spec],
        env: { RAGWAY_LOG_LEVEL: 'error', RAGWAY_CLUSTER_TOKEN: clusterToken, ...env },
        restart: false,
      });
      gateways.push(gateway);
      const pool = new Pool(await gateway.start(), { connections: 1_024 });
      pools.push(pool);
      return pool;
    };
    const file = { version: 1 as const, keys: [] };
    const { key } = addKey(file, { name: 'bench', scopes: ['read'], namespaces: ['default'], limits: {} });
    await writeFile(keysFile, JSON.stringify(file));
    // The auth trio (open, its twin, keyed) is used for nothing else, so all have the same history.
    const [admitted, unlimited, open, openTwin, keyed] = await Promise.all([
      start('access-admission-on', { ...settings, ...noAuth }),
      start('access-admission-off', { RAGWAY_ADMISSION: 'false', ...noAuth }),
      start('access-open', { RAGWAY_ADMISSION: 'false', ...noAuth }),
      start('access-open-twin', { RAGWAY_ADMISSION: 'false', ...noAuth }),
      start('access-keyed', { RAGWAY_ADMISSION: 'false', RAGWAY_KEYS_FILE: keysFile }),
    ]);

    const source = await openSampleCorpus(join(packageRoot(), 'node_modules'));
    let documents = 0;
    for await (const batch of batchDocuments(source.documents(), { maxDocuments: 32, maxBytes: 2 * 1024 * 1024 })) {
      const response = await postJson(unlimited, '/v1/documents', { documents: batch });
      await response.body.dump();
      documents += batch.length;
      if (documents >= (options.quick ? 64 : 256)) break;
    }
    const queries = await sampleSentences(5_000);
    let counter = 0;
    const uncached = (i: number): unknown => ({ query: queries[i % queries.length], k: 5, cache: { mode: 'bypass' } });
    const send = (pool: Pool, body: unknown, headers: Record<string, string> = {}) => async (): Promise<boolean> => {
      const response = await postJson(pool, '/v1/search', body, headers);
      await response.body.dump();
      return response.statusCode === 200;
    };

    log('access: capacity sweep (uncached search, closed loop) on the gateway without admission control');
    const sweep: AccessReport['sweep'] = [];
    for (const concurrency of [1, 4, 16, 32]) {
      const result = await closedLoop({ concurrency, durationMs: stepMs, warmupMs: 300, send: () => send(unlimited, uncached(counter++))() });
      sweep.push({ concurrency, result });
    }
    const best = sweep.reduce((a, b) => (b.result.requestsPerSecond > a.result.requestsPerSecond ? b : a));
    const capacity = best.result;
    const unloaded = (sweep[0] as { result: LoadResult }).result;
    const offered = Math.round(capacity.requestsPerSecond * 4);
    log(`access: capacity ${capacity.requestsPerSecond.toFixed(0)} req/s (c=${best.concurrency}); offering ${offered} req/s open-loop with admission on, then off`);
    // The adaptive limit learns the latency floor from traffic: a second of ordinary load first.
    await closedLoop({ concurrency: 4, durationMs: 1_000, send: () => send(admitted, uncached(counter++))() });
    const on = await openLoop(admitted, offered, overloadMs, (i) => uncached(counter + i));
    counter += on.sent;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const off = await openLoop(unlimited, offered, overloadMs, (i) => uncached(counter + i));
    const p99Ratio = on.p99Ms / unloaded.p99Ms;
    const goodputPercent = (on.goodputPerSecond / capacity.requestsPerSecond) * 100;

    log('access: cached search throughput, no auth vs a Bearer key, alternating rounds');
    const hot = { query: 'how do I set a TTL on cache entries', k: 5 };
    const bearer = { authorization: `Bearer ${key}` };
    await send(open, hot)();
    await send(openTwin, hot)();
    await send(keyed, hot, bearer)();
    const rounds = options.quick ? 12 : 24;
    const roundMs = options.quick ? 400 : 800;
    const targets = { open: send(open, hot), openWithHeader: send(open, hot, bearer), openTwin: send(openTwin, hot), keyed: send(keyed, hot, bearer) };
    await alternating(3, 500, 32, targets);
    const paired = await alternating(rounds, roundMs, 32, targets);
    const totalCostPercent = (1 - paired.rate('keyed').requestsPerSecond / paired.rate('open').requestsPerSecond) * 100;
    const costPercent = (1 - paired.relative('keyed', 'open')) * 100;
    const checkCostPercent = (1 - paired.relative('keyed', 'openWithHeader')) * 100;
    const twinDifferencePercent = (1 - paired.relative('openTwin', 'open')) * 100;
    return {
      sweep,
      capacity,
      capacityConcurrency: best.concurrency,
      unloaded,
      admission: { on, off, settings, p99Ratio, goodputPercent, met: p99Ratio <= 2 && goodputPercent >= 90 },
      auth: {
        rounds,
        roundMs,
        open: paired.rate('open'),
        openWithHeader: paired.rate('openWithHeader'),
        keyed: paired.rate('keyed'),
        totalCostPercent,
        costPercent,
        checkCostPercent,
        twinDifferencePercent,
        met: costPercent <= 3,
      },
    };
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
    await Promise.all(gateways.map((gateway) => gateway.stop()));
    await Promise.all(shards.map((shard) => shard.stop()));
  }
}

export function renderAccess(report: AccessReport): string {
  const { admission, auth } = report;
  const row = (label: string, r: OverloadResult): string =>
    `| ${label} | ${r.offeredPerSecond} | ${r.sent} | ${r.ok} | ${r.rejected} | ${r.failed} | ${r.elapsedS.toFixed(1)} | ${r.goodputPerSecond.toFixed(0)} (${((r.goodputPerSecond / report.capacity.requestsPerSecond) * 100).toFixed(0)}%) | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} (${(r.p99Ms / report.unloaded.p99Ms).toFixed(1)}x) | ${Number.isNaN(r.rejectP50Ms) ? '-' : r.rejectP50Ms.toFixed(1)} |`;
  const met = (ok: boolean): string => (ok ? 'MET' : 'NOT MET');
  return [
    '## Access control',
    '',
    `Uncached /v1/search, closed loop on the gateway without admission control: ${report.sweep.map(({ concurrency, result }) => `c=${concurrency} ${result.requestsPerSecond.toFixed(0)} req/s (p99 ${result.p99Ms.toFixed(1)} ms)`).join(', ')}.`,
    `Capacity ${report.capacity.requestsPerSecond.toFixed(0)} req/s (best, c=${report.capacityConcurrency}); unloaded p99 ${report.unloaded.p99Ms.toFixed(1)} ms (c=1).`,
    `Open loop at 4x capacity; the admission gateway runs its default adaptive search limit with ${JSON.stringify(admission.settings)}. Goodput = 200s per second until the last answer arrived.`,
    '',
    '| gateway | offered req/s | sent | 200 | 429/503 | failed | seconds to last answer | goodput req/s (of capacity) | p50 ms | admitted p99 ms (of unloaded p99) | p50 ms to a refusal |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    row('admission on', admission.on),
    row('admission off', admission.off),
    '',
    `Target (admission on): admitted p99 <= 2x unloaded p99 and goodput >= 90% of capacity: p99 ${admission.p99Ratio.toFixed(2)}x, goodput ${admission.goodputPercent.toFixed(0)}% — ${met(admission.met)}.`,
    '',
    `Auth check on cached /v1/search (c=32, fresh gateways, ${auth.rounds} alternating rounds of ${auth.roundMs} ms each): no auth ${auth.open.requestsPerSecond.toFixed(0)} req/s, no auth but the same Authorization header sent ${auth.openWithHeader.requestsPerSecond.toFixed(0)} req/s, with a Bearer key ${auth.keyed.requestsPerSecond.toFixed(0)} req/s (${auth.totalCostPercent.toFixed(1)}% fewer over all rounds; the check itself, header aside: ${auth.checkCostPercent.toFixed(1)}%).`,
    `Target: auth costs <= 3% of cached search throughput (median over rounds of keyed/open): ${auth.costPercent.toFixed(1)}% — ${met(auth.met)}. ` +
      `Two identical no-auth gateways in the same rounds differ by ${auth.twinDifferencePercent.toFixed(1)}%: the noise floor of this comparison.`,
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
