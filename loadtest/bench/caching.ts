// Caching, side by side in one run: latency of a hit vs a miss on /v1/search and /v1/query;
// cached /v1/search throughput vs a bare Fastify hello-world (same load generator, same
// machine); throughput with and without the cache on a replay where 30% of queries repeat;
// and the semantic cache's hit and false-hit rates on the labelled question pairs.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import type { EmbeddingBackend } from '../../embedder/backend.js';
import { DEFAULT_SEMANTIC_THRESHOLD } from '../../gateway/cache/semantic-cache.js';
import { evaluatePairs, type LabelledPair, type PairEvaluation } from './semantic-pairs.js';
import { packageRoot } from '../../core/package-paths.js';
import { QUESTIONS, sampleSentences, startBenchCluster, type BenchCluster } from './bench-cluster.js';
import { closedLoop, percentile, postJson, type LoadResult } from './load-generator.js';

export interface LatencyPair {
  hitP50Ms: number;
  missP50Ms: number;
  ratio: number;
}

export interface CachingReport {
  search: LatencyPair;
  query: LatencyPair;
  floor: { hello: LoadResult; cachedSearch: LoadResult; fraction: number; helloSequentialP50Ms: number };
  replay: { repeatFraction: number; cached: LoadResult; uncached: LoadResult; gain: number; hitFraction: number };
  semantic: { threshold: number; withGuard: PairEvaluation; withoutGuard: PairEvaluation };
}

async function sequentialP50(count: number, send: (i: number) => Promise<unknown>): Promise<number> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const started = performance.now();
    await send(i);
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);
  return percentile(latencies, 0.5);
}

async function latencyPair(cluster: BenchCluster, path: string, body: (query: string) => Record<string, unknown>, queries: string[], samples: number): Promise<LatencyPair> {
  // Misses: distinct queries with the cache bypassed; hits: one query, already cached.
  const missP50Ms = await sequentialP50(samples, (i) =>
    cluster.post(path, { ...body(queries[i % queries.length] as string), cache: { mode: 'bypass' } }),
  );
  const hot = body(QUESTIONS[0] as string);
  await cluster.post(path, hot);
  const hitP50Ms = await sequentialP50(samples, async () => {
    const response = await cluster.post(path, hot);
    if (response.cache !== 'hit') throw new Error(`expected a cache hit on ${path}, got ${response.cache}`);
  });
  return { hitP50Ms, missP50Ms, ratio: missP50Ms / hitP50Ms };
}

async function startHello(): Promise<{ child: ChildProcess; url: string }> {
  const entry = fileURLToPath(new URL('./hello-server.js', import.meta.url));
  const child = spawn(process.execPath, [entry], { stdio: ['ignore', 'pipe', 'inherit'] });
  for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
    const match = /listening on (http:\/\/\S+)/.exec(line);
    if (match?.[1] !== undefined) return { child, url: match[1] };
  }
  throw new Error('hello server exited before listening');
}

async function throughput(url: string, path: string, bodies: (worker: number, iteration: number) => string, options: { concurrency: number; durationMs: number }): Promise<LoadResult> {
  const pool = new Pool(url, { connections: options.concurrency });
  try {
    return await closedLoop({
      concurrency: options.concurrency,
      durationMs: options.durationMs,
      warmupMs: 300,
      send: async (worker, iteration) => {
        const response = await postJson(pool, path, bodies(worker, iteration));
        await response.body.dump();
        return response.statusCode === 200;
      },
    });
  } finally {
    await pool.close();
  }
}

/** A query stream where `repeat` of the queries repeat an earlier one (a hot set, as real traffic has). */
function replayStream(sentences: readonly string[], length: number, repeat: number, seed: number): string[] {
  let state = seed;
  const random = (): number => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
  const stream: string[] = [];
  let fresh = 0;
  for (let i = 0; i < length; i += 1) {
    if (stream.length > 0 && random() < repeat) stream.push(stream[Math.floor(random() * stream.length)] as string);
    else stream.push(sentences[fresh++ % sentences.length] as string);
  }
  return stream;
}

export async function benchCaching(options: { quick: boolean; workDir: string; backend: EmbeddingBackend; log: (line: string) => void }): Promise<CachingReport> {
  const concurrency = 32;
  const durationMs = options.quick ? 2_000 : 6_000;
  const samples = options.quick ? 100 : 400;
  const sentences = await sampleSentences(options.quick ? 4_000 : 8_000);
  const cluster = await startBenchCluster({ name: 'cache', shards: 3, workDir: options.workDir, dim: options.backend.dimensions, connections: concurrency });
  const hello = await startHello();
  try {
    options.log(`caching: hit vs miss latency (${samples} sequential requests each)`);
    const search = await latencyPair(cluster, '/v1/search', (query) => ({ query, k: 10 }), sentences, samples);
    const query = await latencyPair(cluster, '/v1/query', (q) => ({ query: q, model: 'ragway-extractive' }), sentences, Math.min(samples, 150));

    options.log(`caching: cached /v1/search vs bare Fastify, concurrency ${concurrency}, ${durationMs} ms each`);
    const helloResult = await throughput(hello.url, '/hello', () => '{}', { concurrency, durationMs });
    // The round-trip floor a cache hit cannot beat: one request at a time to a bare server.
    const helloPool = new Pool(hello.url, { connections: 1 });
    const helloSequentialP50Ms = await sequentialP50(samples, async () => {
      const response = await helloPool.request({ method: 'POST', path: '/hello', headers: { 'content-type': 'application/json' }, body: '{}' });
      await response.body.dump();
    });
    await helloPool.close();
    const hotBody = JSON.stringify({ query: QUESTIONS[0], k: 10 });
    const cachedSearch = await throughput(cluster.url, '/v1/search', () => hotBody, { concurrency, durationMs });

    const repeatFraction = 0.3;
    options.log(`caching: replay with ${repeatFraction * 100}% repeated queries, cache on vs bypassed`);
    const stream = replayStream(sentences, 200_000, repeatFraction, 7);
    const bodyAt = (worker: number, iteration: number, mode: string): string =>
      JSON.stringify({ query: stream[(worker * 7_919 + iteration * concurrency) % stream.length], k: 10, cache: { mode } });
    const uncached = await throughput(cluster.url, '/v1/search', (w, i) => bodyAt(w, i, 'bypass'), { concurrency, durationMs });
    // A different slice of the stream than the uncached run, so the cache starts cold.
    let hits = 0;
    let total = 0;
    const pool = new Pool(cluster.url, { connections: concurrency });
    const cached = await closedLoop({
      concurrency,
      durationMs,
      warmupMs: 0,
      send: async (worker, iteration) => {
        const response = await postJson(pool, '/v1/search', { query: stream[(100_000 + worker * 7_919 + iteration * concurrency) % stream.length], k: 10 });
        total += 1;
        if (response.headers['x-ragway-cache'] === 'hit' || response.headers['x-ragway-cache'] === 'coalesced') hits += 1;
        await response.body.dump();
        return response.statusCode === 200;
      },
    });
    await pool.close();

    options.log('caching: semantic cache on the labelled pairs');
    const pairs = JSON.parse(await readFile(join(packageRoot(), 'test', 'fixtures', 'semantic-cache-pairs.json'), 'utf8')) as LabelledPair[];
    const embed = async (texts: string[]): Promise<Float32Array[]> => options.backend.embed(texts.map((text) => options.backend.encode(text)));
    const withGuard = await evaluatePairs(pairs, embed, { threshold: DEFAULT_SEMANTIC_THRESHOLD });
    const withoutGuard = await evaluatePairs(pairs, embed, { threshold: DEFAULT_SEMANTIC_THRESHOLD, guard: false });

    return {
      search,
      query,
      floor: { hello: helloResult, cachedSearch, fraction: cachedSearch.requestsPerSecond / helloResult.requestsPerSecond, helloSequentialP50Ms },
      replay: { repeatFraction, cached, uncached, gain: cached.requestsPerSecond / uncached.requestsPerSecond, hitFraction: hits / Math.max(1, total) },
      semantic: { threshold: DEFAULT_SEMANTIC_THRESHOLD, withGuard, withoutGuard },
    };
  } finally {
    hello.child.kill('SIGTERM');
    await once(hello.child, 'exit');
    await cluster.stop();
  }
}

export function renderCaching(report: CachingReport): string {
  const f = (n: number, d = 2): string => n.toFixed(d);
  const pct = (n: number): string => `${(n * 100).toFixed(1)}%`;
  const { semantic } = report;
  return [
    '## Caching',
    '',
    '| Endpoint | miss p50 ms | hit p50 ms | miss / hit |',
    '|---|---:|---:|---:|',
    `| /v1/search | ${f(report.search.missP50Ms)} | ${f(report.search.hitP50Ms)} | ${f(report.search.ratio, 1)}x (target ≥ 20x) |`,
    `| /v1/query (ragway-extractive) | ${f(report.query.missP50Ms)} | ${f(report.query.hitP50Ms)} | ${f(report.query.ratio, 1)}x |`,
    '',
    `One request at a time to the bare Fastify server takes ${f(report.floor.helloSequentialP50Ms)} ms (p50): the HTTP round trip a hit cannot go below.`,
    '',
    '| Server (concurrency 32) | req/s | p50 ms | p99 ms |',
    '|---|---:|---:|---:|',
    `| bare Fastify hello-world | ${f(report.floor.hello.requestsPerSecond, 0)} | ${f(report.floor.hello.p50Ms)} | ${f(report.floor.hello.p99Ms)} |`,
    `| ragway /v1/search, cache hit | ${f(report.floor.cachedSearch.requestsPerSecond, 0)} | ${f(report.floor.cachedSearch.p50Ms)} | ${f(report.floor.cachedSearch.p99Ms)} |`,
    '',
    `Cached search serves **${pct(report.floor.fraction)}** of the bare-Fastify request rate (target ≥ 40%).`,
    '',
    `Replay with ${pct(report.replay.repeatFraction)} repeated queries: ${f(report.replay.cached.requestsPerSecond, 0)} req/s with the cache ` +
      `(${pct(report.replay.hitFraction)} answered from it) vs ${f(report.replay.uncached.requestsPerSecond, 0)} req/s bypassed: **${f(report.replay.gain)}x**.`,
    '',
    `Semantic cache at threshold ${semantic.threshold} on ${semantic.withGuard.paraphrases + semantic.withGuard.nearMisses} labelled pairs: ` +
      `hit rate **${pct(semantic.withGuard.hitRate)}** (${semantic.withGuard.hits}/${semantic.withGuard.paraphrases} paraphrases), ` +
      `false-hit rate **${pct(semantic.withGuard.falseHitRate)}** (${semantic.withGuard.falseHits}/${semantic.withGuard.nearMisses} near-misses; target ≤ 1%); ` +
      `without the guard: ${pct(semantic.withoutGuard.hitRate)} / ${pct(semantic.withoutGuard.falseHitRate)}.`,
    '',
  ].join('\n');
}
