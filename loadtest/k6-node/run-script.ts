// Runs one of loadtest/k6's scripts in Node against a live ragway, one VU, its scenarios
// interleaved iteration by iteration (so they see the same server and cache state), then
// prints its thresholds (evaluated as k6 would) and every Trend split by scenario and by
// the `cache` tag. For machines without k6; `k6 run` is the real tool: it adds
// concurrency, arrival rates and durations, which this runner does not imitate.
//   node dist/loadtest/k6-node/run-script.js loadtest/k6/rag-stream.js --iterations 200 -e BASE_URL=http://127.0.0.1:8080
import { basename, dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createRecorder, loadK6Script } from './stand-ins.js';
import type { Sample } from './stand-ins.js';
import { startSyncHttp } from './sync-http.js';
import { evaluateThresholds, percentile } from './thresholds.js';

const TREND_METRICS = new Set(['http_req_duration', 'http_req_waiting']);

function round(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** One row per scenario × cache status for every metric that looks like a trend (a time). */
function trendTable(samples: readonly Sample[]): string {
  const groups = new Map<string, number[]>();
  for (const s of samples) {
    if (!TREND_METRICS.has(s.metric) && !s.metric.endsWith('_ms')) continue;
    const key = `${s.metric}\t${s.tags['scenario'] ?? ''}\t${s.tags['cache'] ?? ''}`;
    const values = groups.get(key) ?? [];
    values.push(s.value);
    groups.set(key, values);
  }
  const lines = ['| metric | scenario | cache | n | p50 ms | p95 ms | max ms |', '|---|---|---|---:|---:|---:|---:|'];
  for (const [key, values] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const [metric, scenario, cache] = key.split('\t');
    const sorted = values.sort((a, b) => a - b);
    lines.push(`| ${metric} | ${scenario} | ${cache || '–'} | ${sorted.length} | ${round(percentile(sorted, 50))} | ${round(percentile(sorted, 95))} | ${round(sorted[sorted.length - 1] ?? 0)} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { iterations: { type: 'string', default: '100' }, env: { type: 'string', short: 'e', multiple: true, default: [] } },
  });
  const script = positionals[0];
  if (script === undefined) throw new Error('usage: run-script.js <loadtest/k6/script.js> [--iterations N] [-e NAME=value]…');
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const eq = pair.indexOf('=');
    if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const iterations = Number(values.iterations);
  const http = await startSyncHttp();
  const recorder = createRecorder((request) => http.request(request));
  const path = resolve(script);
  const loaded = await loadK6Script(dirname(path), basename(path), recorder, env);
  try {
    const scenarios = Object.keys(loaded.options.scenarios ?? { default: {} });
    const started = performance.now();
    for (let i = 0; i < iterations; i += 1) for (const scenario of scenarios) loaded.iterate(scenario, i);
    const seconds = (performance.now() - started) / 1000;
    const checks = recorder.checks;
    const failed = new Map<string, number>();
    for (const c of checks) if (!c.passed) failed.set(`${c.scenario}: ${c.name}`, (failed.get(`${c.scenario}: ${c.name}`) ?? 0) + 1);
    console.log(`${basename(path)}: ${iterations} iterations × ${scenarios.length} scenarios, 1 VU, ${recorder.requests.length} requests in ${seconds.toFixed(1)} s`);
    console.log(`checks: ${checks.filter((c) => c.passed).length}/${checks.length} passed`);
    for (const [name, count] of failed) console.log(`  ✗ ${name} (${count})`);
    console.log('\nthresholds:');
    const results = evaluateThresholds(loaded.options.thresholds ?? {}, recorder.samples);
    for (const r of results) console.log(`  ${r.passed ? '✓' : '✗'} ${r.metric} ${r.expression} (value ${round(r.value)}, ${r.samples} samples)`);
    console.log(`\n${trendTable(recorder.samples)}`);
    if (results.some((r) => !r.passed)) process.exitCode = 99; // k6's exit code for breached thresholds
  } finally {
    loaded.close();
    await http.close();
  }
}

await main();
