// Hedging against a straggler: 2 shards × 2 replicas, one replica made 50 ms slower on 5% of
// its search calls (fault injection), /v1/search uncached at concurrency 16 — through a
// gateway with hedging off, then one with it on, against the same shards in the same run.
import { Pool, request } from 'undici';
import { QUESTIONS, startBenchCluster } from './bench-cluster.js';
import { closedLoop, postJson, type LoadResult } from './load-generator.js';

/**
 * Hedge once a call is slower than this share of the shard's recent calls. With 5% of calls
 * straggling, p95 sits on the stragglers themselves and a hedge would fire too late to help;
 * p90 is below them. (The gateway default is RAGWAY_HEDGE_PERCENTILE=0.95.)
 */
const HEDGE_PERCENTILE = 0.9;
/**
 * One request at a time by default: on this 2-core machine any concurrency saturates the CPU,
 * and then queueing (not the injected stragglers) decides p99 and spends the hedge budget —
 * measured at concurrency 4 and 16, hedging changed p99 by 0.8–1.1x. `npm run bench --
 * --hedge-concurrency 16` shows that.
 */
const DEFAULT_CONCURRENCY = 1;

export interface HedgingRun {
  result: LoadResult;
  shardCalls: number;
  hedges: number;
  extraFraction: number;
}

export interface HedgingScenario {
  /** "one": one replica is the straggler (the case); "all": every replica straggles at random. */
  stragglers: 'one' | 'all';
  off: HedgingRun;
  on: HedgingRun;
  p99Ratio: number;
}

export interface HedgingReport {
  delayMs: number;
  probability: number;
  concurrency: number;
  scenarios: HedgingScenario[];
}

function sumMetric(metrics: string, pattern: RegExp): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    const match = pattern.exec(line);
    if (match?.[1] !== undefined) total += Number(match[1]);
  }
  return total;
}

async function run(hedge: boolean, stragglers: 'one' | 'all', options: { quick: boolean; workDir: string; dim: number; delayMs: number; probability: number; concurrency: number; log: (line: string) => void }): Promise<HedgingRun> {
  const cluster = await startBenchCluster({
    name: `hedge-${stragglers}-${hedge ? 'on' : 'off'}`,
    shards: 2,
    replicas: 2,
    workDir: options.workDir,
    dim: options.dim,
    connections: options.concurrency,
    shardEnv: { RAGWAY_FAULTS: '1' },
    env: { RAGWAY_HEDGE: String(hedge), RAGWAY_HEDGE_PERCENTILE: String(HEDGE_PERCENTILE) },
  });
  try {
    const targets = stragglers === 'one' ? [cluster.replicaUrls[0]?.[0] as string] : cluster.replicaUrls.flat();
    for (const straggler of targets) {
      const fault = await request(`${straggler}/v1/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-ragway-protocol': '1' },
        body: JSON.stringify({ delay_ms: options.delayMs, delay_probability: options.probability }),
      });
      if (fault.statusCode !== 200) throw new Error(`could not inject the straggler fault: ${await fault.body.text()}`);
      await fault.body.dump();
    }
    const straggler = stragglers === 'one' ? targets[0] : 'every replica';
    const durationMs = options.quick ? 3_000 : 10_000;
    options.log(`hedging ${hedge ? 'on' : 'off'}: ${options.concurrency} concurrent searches for ${durationMs} ms, ${straggler} +${options.delayMs} ms on ${options.probability * 100}% of calls`);
    const pool = new Pool(cluster.url, { connections: options.concurrency });
    const metricsBefore = await (await request(`${cluster.url}/metrics`)).body.text();
    const result = await closedLoop({
      concurrency: options.concurrency,
      durationMs,
      warmupMs: 1_000,
      send: async (worker, iteration) => {
        const response = await postJson(pool, '/v1/search', {
          query: `${QUESTIONS[(worker + iteration) % QUESTIONS.length]} ${iteration % 50}`,
          k: 10,
          cache: { mode: 'bypass' },
        });
        await response.body.dump();
        return response.statusCode === 200;
      },
    });
    await pool.close();
    const metrics = await (await request(`${cluster.url}/metrics`)).body.text();
    const calls = (text: string): number => sumMetric(text, /^ragway_shard_request_duration_seconds_count\{[^}]*\} (\d+)/);
    const sent = (text: string): number => sumMetric(text, /^ragway_shard_hedges_total\{[^}]*result="sent"[^}]*\} (\d+)/);
    const shardCalls = calls(metrics) - calls(metricsBefore);
    const hedges = sent(metrics) - sent(metricsBefore);
    return { result, shardCalls, hedges, extraFraction: shardCalls > 0 ? hedges / shardCalls : 0 };
  } finally {
    await cluster.stop();
  }
}

export async function benchHedging(options: { quick: boolean; workDir: string; dim: number; log: (line: string) => void; concurrency?: number }): Promise<HedgingReport> {
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const settings = { ...options, delayMs: 50, probability: 0.05, concurrency };
  const scenarios: HedgingScenario[] = [];
  for (const stragglers of ['one', 'all'] as const) {
    const off = await run(false, stragglers, settings);
    const on = await run(true, stragglers, settings);
    scenarios.push({ stragglers, off, on, p99Ratio: off.result.p99Ms / on.result.p99Ms });
  }
  return { delayMs: 50, probability: 0.05, concurrency, scenarios };
}

export function renderHedging(report: HedgingReport): string {
  const row = (name: string, r: HedgingRun): string =>
    `| ${name} | ${r.result.requestsPerSecond.toFixed(0)} | ${r.result.p50Ms.toFixed(2)} | ${r.result.p99Ms.toFixed(2)} | ${r.result.errors} | ${r.hedges} of ${r.shardCalls} (${(r.extraFraction * 100).toFixed(1)}%) |`;
  return [
    '## Hedging against a straggler',
    '',
    `2 shards × 2 replicas; stragglers ${report.delayMs} ms slower on ${report.probability * 100}% of their search calls; /v1/search uncached, concurrency ${report.concurrency}; hedging at the p${HEDGE_PERCENTILE * 100} of each shard's recent latency.`,
    '',
    '| Stragglers | Hedging | req/s | p50 ms | p99 ms | errors | extra shard calls |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...report.scenarios.flatMap((scenario) => [
      row(`${scenario.stragglers === 'one' ? 'one replica' : 'every replica'} | off`, scenario.off),
      row(`${scenario.stragglers === 'one' ? 'one replica' : 'every replica'} | on`, scenario.on),
    ]),
    '',
    ...report.scenarios.map(
      (scenario) =>
        `${scenario.stragglers === 'one' ? 'One straggling replica' : 'Every replica straggling'}: p99 with hedging off / on **${scenario.p99Ratio.toFixed(1)}x** ` +
        `(target ≥ 5x, with ≤ 10% extra shard calls: ${(scenario.on.extraFraction * 100).toFixed(1)}%).`,
    ),
    '',
  ].join('\n');
}
