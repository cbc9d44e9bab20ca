// What tracing costs on the request where it weighs most: a cache hit on /v1/search, through
// the whole Fastify request path (routing, hooks, handler, serialisation; app.inject, so no
// socket work dilutes it). Two gateways in this one process — tracing off, and tracing on
// exporting every span to a receiver in another process — answer in interleaved rounds, so a
// change in the machine's load hits both alike; the figure is CPU time per request.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { EmbeddingBackend } from '../../embedder/backend.js';
import { buildApp } from '../../gateway/app.js';
import { loadConfig, type Config } from '../../gateway/config.js';
import { InProcessShardClient } from '../../retriever/in-process-shard-client.js';
import { IndexStore } from '../../shards/index-store.js';

export interface TracingVariantResult {
  /** Median over the rounds. */
  cpuUsPerRequest: number;
  requestsPerSecond: number;
  rounds: { cpuUsPerRequest: number; requestsPerSecond: number }[];
}

export interface TracingReport {
  requestsPerRound: number;
  concurrency: number;
  off: TracingVariantResult;
  on: TracingVariantResult;
}

const CONCURRENCY = 16;

async function startSink(): Promise<{ child: ChildProcess; url: string }> {
  const entry = fileURLToPath(new URL('./otlp-sink.js', import.meta.url));
  const child = spawn(process.execPath, [entry], { stdio: ['ignore', 'pipe', 'inherit'] });
  for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
    const match = /listening on (http:\/\/\S+)/.exec(line);
    if (match?.[1] !== undefined) return { child, url: match[1] };
  }
  throw new Error('otlp sink exited before listening');
}

async function gateway(backend: EmbeddingBackend, store: IndexStore, settings: Partial<Config>): Promise<FastifyInstance> {
  const app = await buildApp(loadConfig({}, { logLevel: 'silent', admission: false, ...settings }), {
    embeddingBackend: backend,
    shardClients: [new InProcessShardClient(store, { label: 'shard-0' })],
    defaultMetrics: false,
  });
  return app;
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
}

export async function benchTracing(options: { quick: boolean; workDir: string; backend: EmbeddingBackend; log: (line: string) => void }): Promise<TracingReport> {
  const requestsPerRound = options.quick ? 4_000 : 16_000;
  const roundsEach = options.quick ? 6 : 10;
  const store = IndexStore.open({ dataDir: join(options.workDir, 'tracing-shard'), dim: options.backend.dimensions, space: 'cosine', autoSaveMs: 0 });
  const sink = await startSink();
  const apps: FastifyInstance[] = [];
  try {
    const off = await gateway(options.backend, store, {});
    apps.push(off);
    const on = await gateway(options.backend, store, { tracing: 'otlp', otlpEndpoint: sink.url });
    apps.push(on);
    await off.documents.ingest('default', [
      { id: 'cache.md', text: 'Set a time to live on cache entries with the ttl option.' },
      { id: 'trains.md', text: 'The train departs from the central station every morning.' },
    ]);
    const payload = JSON.stringify({ query: 'how do I set a ttl on cache entries', k: 10 });
    const round = async (app: FastifyInstance, requests: number): Promise<{ cpuUsPerRequest: number; requestsPerSecond: number }> => {
      const one = async (): Promise<void> => {
        const response = await app.inject({ method: 'POST', url: '/v1/search', headers: { 'content-type': 'application/json' }, payload });
        if (response.headers['x-ragway-cache'] !== 'hit') throw new Error(`expected a cache hit, got ${String(response.headers['x-ragway-cache'])}`);
      };
      const cpu = process.cpuUsage();
      const started = performance.now();
      for (let sent = 0; sent < requests; sent += CONCURRENCY) await Promise.all(Array.from({ length: CONCURRENCY }, one));
      const used = process.cpuUsage(cpu);
      return { cpuUsPerRequest: (used.user + used.system) / requests, requestsPerSecond: requests / ((performance.now() - started) / 1000) };
    };
    // Fill each gateway's cache (its first request is a miss), then warm both up.
    for (const app of [off, on]) {
      await app.inject({ method: 'POST', url: '/v1/search', headers: { 'content-type': 'application/json' }, payload });
      await round(app, requestsPerRound / 4);
    }
    options.log(`tracing: cached /v1/search, tracing off vs on, ${roundsEach} interleaved rounds of ${requestsPerRound} requests each`);
    const results = { off: [] as { cpuUsPerRequest: number; requestsPerSecond: number }[], on: [] as { cpuUsPerRequest: number; requestsPerSecond: number }[] };
    for (let r = 0; r < roundsEach; r++) {
      const order: ['off' | 'on', FastifyInstance][] = r % 2 === 0 ? [['off', off], ['on', on]] : [['on', on], ['off', off]];
      for (const [name, app] of order) results[name].push(await round(app, requestsPerRound));
    }
    const summary = (rounds: { cpuUsPerRequest: number; requestsPerSecond: number }[]): TracingVariantResult => ({
      cpuUsPerRequest: median(rounds.map((x) => x.cpuUsPerRequest)),
      requestsPerSecond: median(rounds.map((x) => x.requestsPerSecond)),
      rounds,
    });
    return { requestsPerRound, concurrency: CONCURRENCY, off: summary(results.off), on: summary(results.on) };
  } finally {
    for (const app of apps) await app.close();
    store.close();
    sink.child.kill('SIGTERM');
    await once(sink.child, 'exit');
  }
}

export function renderTracing(report: TracingReport): string {
  const f = (value: number, digits = 1): string => value.toFixed(digits);
  return [
    '## Tracing',
    '',
    `A cache hit on /v1/search through app.inject (${report.concurrency} at a time), tracing off vs on (every span exported over OTLP/HTTP to a receiver in another process), rounds interleaved; medians over the rounds.`,
    '',
    '| Tracing | CPU µs per request | req/s (one process) |',
    '|---|---:|---:|',
    `| off | ${f(report.off.cpuUsPerRequest)} | ${f(report.off.requestsPerSecond, 0)} |`,
    `| on | ${f(report.on.cpuUsPerRequest)} | ${f(report.on.requestsPerSecond, 0)} |`,
    '',
    `Tracing on costs **${f(report.on.cpuUsPerRequest - report.off.cpuUsPerRequest)} µs** of CPU per cache hit (${f((100 * (report.on.cpuUsPerRequest - report.off.cpuUsPerRequest)) / report.off.cpuUsPerRequest, 0)}%).`,
    '',
  ].join('\n');
}
