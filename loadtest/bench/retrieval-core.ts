// Benchmark of the retrieval core, every comparison side by side in one run on this machine:
//  1. embeddings/s through the micro-batcher at concurrency 64 vs one model call per input;
//  2. /v1/search req/s and latency at concurrency 32 over 3 shard processes (the gateway in
//     its own process, the sample corpus ingested);
//  3. a shard's RSS growth per 100k vectors next to hnswlib's own index size.
// Not a test: it asserts nothing, it measures and reports.
import { join } from 'node:path';
import { ServiceProcess } from '../../cli/service-process.js';
import type { EmbeddingBackend } from '../../embedder/backend.js';
import { EmbeddingBatcher, type BatcherObserver } from '../../embedder/batcher.js';
import { packageRoot } from '../../core/package-paths.js';
import { HttpShardClient } from '../../retriever/http-shard-client.js';
import { encodeVector } from '../../shards/protocol.js';
import { closedLoop, type LoadResult } from './load-generator.js';
import { QUESTIONS, sampleSentences, startBenchCluster } from './bench-cluster.js';

export interface RetrievalCoreOptions {
  quick: boolean;
  backend: EmbeddingBackend;
  workDir: string;
  log: (line: string) => void;
}

export interface EmbeddingComparison {
  concurrency: number;
  batched: LoadResult;
  unbatched: LoadResult;
  sequential: LoadResult;
  meanBatchSize: number;
  /** Time inside the model call per input: what batching amortizes. */
  modelMicrosPerInputBatched: number;
  modelMicrosPerInputUnbatched: number;
  /** Tokenization per input, which batching cannot amortize. */
  tokenizeMicrosPerInput: number;
  speedup: number;
}

export interface MemoryComparison {
  vectors: number;
  dim: number;
  m: number;
  rssGrowthBytesPer100k: number;
  hnswlibBytesPer100k: number;
  vectorCopyBytesPer100k: number;
}

export interface ScalingPoint {
  shards: number;
  result: LoadResult;
}

export interface RetrievalCoreReport {
  embedding: EmbeddingComparison;
  search: LoadResult & { shards: number; concurrency: number; chunks: number };
  scaling: ScalingPoint[];
  memory: MemoryComparison;
}

/** Sums model-call time and inputs from a batcher's observer. */
class ModelTime {
  inputs = 0;
  batches = 0;
  seconds = 0;
  observer(): BatcherObserver {
    return {
      onBatch: (size, _padded, seconds) => {
        this.inputs += size;
        this.batches += 1;
        this.seconds += seconds;
      },
    };
  }
  get meanBatch(): number {
    return this.batches > 0 ? this.inputs / this.batches : 0;
  }
  get microsPerInput(): number {
    return this.inputs > 0 ? (this.seconds * 1e6) / this.inputs : 0;
  }
}

async function benchEmbedding(options: RetrievalCoreOptions): Promise<EmbeddingComparison> {
  const sentences = await sampleSentences(4_000);
  const durationMs = options.quick ? 2_000 : 6_000;
  const concurrency = 64;
  const run = async (batcher: EmbeddingBatcher, workers: number): Promise<LoadResult> =>
    closedLoop({
      concurrency: workers,
      durationMs,
      warmupMs: 300,
      send: async (worker, iteration) => {
        await batcher.embed([sentences[(worker * 997 + iteration) % sentences.length] as string]);
      },
    });

  options.log(`embedding: ${sentences.length} README sentences, concurrency ${concurrency}, ${durationMs} ms per run`);
  const unbatchedModel = new ModelTime();
  const unbatched = await run(new EmbeddingBatcher(options.backend, { maxBatchInputs: 1 }, unbatchedModel.observer()), concurrency);
  const batchedModel = new ModelTime();
  const batched = await run(new EmbeddingBatcher(options.backend, {}, batchedModel.observer()), concurrency);
  const sequential = await run(new EmbeddingBatcher(options.backend), 1);
  const start = performance.now();
  for (const sentence of sentences) options.backend.encode(sentence);
  const tokenizeMicros = ((performance.now() - start) * 1000) / sentences.length;
  return {
    concurrency,
    batched,
    unbatched,
    sequential,
    meanBatchSize: batchedModel.meanBatch,
    modelMicrosPerInputBatched: batchedModel.microsPerInput,
    modelMicrosPerInputUnbatched: unbatchedModel.microsPerInput,
    tokenizeMicrosPerInput: tokenizeMicros,
    speedup: batched.requestsPerSecond / unbatched.requestsPerSecond,
  };
}

async function searchLoad(options: RetrievalCoreOptions, shardCount: number, concurrency: number, durationMs: number): Promise<{ result: LoadResult; chunks: number }> {
  const cluster = await startBenchCluster({ name: `search-${shardCount}`, shards: shardCount, workDir: options.workDir, dim: options.backend.dimensions, connections: concurrency });
  try {
    options.log(`search: ${cluster.chunks} chunks over ${shardCount} shard processes, concurrency ${concurrency}, ${durationMs} ms, cache bypassed`);
    const result = await closedLoop({
      concurrency,
      durationMs,
      warmupMs: 500,
      send: async (worker, iteration) => {
        // The uncached path: the caching benchmark measures hits separately.
        await cluster.post('/v1/search', { query: QUESTIONS[(worker + iteration) % QUESTIONS.length], k: 10, cache: { mode: 'bypass' } });
      },
    });
    return { result, chunks: cluster.chunks };
  } finally {
    await cluster.stop();
  }
}

async function benchSearch(options: RetrievalCoreOptions): Promise<RetrievalCoreReport['search']> {
  const { result, chunks } = await searchLoad(options, 3, 32, options.quick ? 3_000 : 10_000);
  return { ...result, shards: 3, concurrency: 32, chunks };
}

/** The same load over 1, 2 and 4 shard processes: what more shards buy (and cost) on this machine. */
async function benchScaling(options: RetrievalCoreOptions): Promise<ScalingPoint[]> {
  const points: ScalingPoint[] = [];
  for (const shards of options.quick ? [1, 2] : [1, 2, 4]) {
    points.push({ shards, result: (await searchLoad(options, shards, 32, options.quick ? 2_000 : 8_000)).result });
  }
  return points;
}

/** hnswlib's own memory per element: level-0 block plus the expected upper-level links. */
export function hnswlibBytesPerElement(dim: number, m: number): number {
  const level0 = dim * 4 + (2 * m * 4 + 4) + 8; // vector + links (maxM0 = 2M, plus count) + label
  const upperLevels = (m * 4 + 4) / (m - 1); // expected upper levels per element with mult = 1/ln(M)
  return level0 + upperLevels + 8; // + element level and its link-list pointer
}

async function benchMemory(options: RetrievalCoreOptions): Promise<MemoryComparison> {
  const vectors = options.quick ? 20_000 : 100_000;
  const dim = options.backend.dimensions;
  const m = 16;
  const shard = new ServiceProcess({
    label: 'bench-memory-shard',
    host: '127.0.0.1',
    args: ['--data', join(options.workDir, 'memory-shard'), '--dim', String(dim), '--m', String(m)],
    restart: false,
  });
  const url = await shard.start();
  const client = new HttpShardClient(url, { label: 'bench-memory-shard', requestTimeoutMs: 120_000 });
  try {
    const before = (await client.stats()).rss_bytes;
    options.log(`memory: inserting ${vectors} random ${dim}-d vectors into one shard (M=${m})`);
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff - 0.5;
    };
    const batchSize = 2_000;
    for (let start = 0; start < vectors; start += batchSize) {
      const chunks = Array.from({ length: Math.min(batchSize, vectors - start) }, (_, i) => {
        const vector = Float32Array.from({ length: dim }, random);
        const id = `v${start + i}`;
        return { id, document_id: id, namespace: 'memory', text: '', vector: encodeVector(vector) };
      });
      await client.upsert({ chunks });
    }
    const after = (await client.stats()).rss_bytes;
    const scale = 100_000 / vectors;
    return {
      vectors,
      dim,
      m,
      rssGrowthBytesPer100k: (after - before) * scale,
      hnswlibBytesPer100k: hnswlibBytesPerElement(dim, m) * 100_000,
      vectorCopyBytesPer100k: dim * 4 * 100_000,
    };
  } finally {
    await client.close();
    await shard.stop();
  }
}

export async function benchRetrievalCore(options: RetrievalCoreOptions): Promise<RetrievalCoreReport> {
  const embedding = await benchEmbedding(options);
  const search = await benchSearch(options);
  const scaling = await benchScaling(options);
  const memory = await benchMemory(options);
  return { embedding, search, scaling, memory };
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const num = (value: number, digits = 0): string => value.toFixed(digits);

export function renderRetrievalCore(report: RetrievalCoreReport): string {
  const { embedding: e, search: s, memory: m } = report;
  return [
    '## Retrieval core',
    '',
    `### Embedding throughput (glove-sif-100d, 1 ORT thread, concurrency ${e.concurrency} single-sentence requests)`,
    '',
    '| Mode | embeddings/s | p50 ms | p99 ms |',
    '|---|---:|---:|---:|',
    `| micro-batched (defaults; mean batch ${num(e.meanBatchSize, 1)}) | ${num(e.batched.requestsPerSecond)} | ${num(e.batched.p50Ms, 2)} | ${num(e.batched.p99Ms, 2)} |`,
    `| one model call per input (max batch 1) | ${num(e.unbatched.requestsPerSecond)} | ${num(e.unbatched.p50Ms, 2)} | ${num(e.unbatched.p99Ms, 2)} |`,
    `| one request at a time (concurrency 1) | ${num(e.sequential.requestsPerSecond)} | ${num(e.sequential.p50Ms, 2)} | ${num(e.sequential.p99Ms, 2)} |`,
    '',
    `Micro-batching speedup at concurrency ${e.concurrency}: **${num(e.speedup, 2)}x** end to end (target ≥ 3x); ` +
      `vs one request at a time: ${num(e.batched.requestsPerSecond / e.sequential.requestsPerSecond, 2)}x.`,
    `Inside the model call an input costs ${num(e.modelMicrosPerInputBatched, 1)} µs batched vs ${num(e.modelMicrosPerInputUnbatched, 1)} µs alone ` +
      `(${num(e.modelMicrosPerInputUnbatched / e.modelMicrosPerInputBatched, 1)}x); tokenizing it costs ${num(e.tokenizeMicrosPerInput, 1)} µs, which no batch amortizes.`,
    '',
    `### /v1/search uncached (cache bypassed), ${s.shards} shard processes, gateway in its own process, concurrency ${s.concurrency}`,
    '',
    '| chunks | req/s | p50 ms | p90 ms | p99 ms | errors |',
    '|---:|---:|---:|---:|---:|---:|',
    `| ${s.chunks} | ${num(s.requestsPerSecond)} | ${num(s.p50Ms, 2)} | ${num(s.p90Ms, 2)} | ${num(s.p99Ms, 2)} | ${s.errors} |`,
    '',
    '### Scaling: /v1/search uncached, concurrency 32, by number of shard processes',
    '',
    '| shard processes | req/s | p50 ms | p99 ms |',
    '|---:|---:|---:|---:|',
    ...report.scaling.map((p) => `| ${p.shards} | ${num(p.result.requestsPerSecond)} | ${num(p.result.p50Ms, 2)} | ${num(p.result.p99Ms, 2)} |`),
    '',
    'All processes share the same 2 cores, so more shards mean more fan-out work per query, not more hardware: this shows the cost of sharding on one machine, not scale-out.',
    '',
    `### Shard memory per 100k vectors (${m.dim}-d, M=${m.m}, measured with ${m.vectors} vectors)`,
    '',
    '| RSS growth | hnswlib index (theory) | ragway vector copy (exact scans) |',
    '|---:|---:|---:|',
    `| ${mb(m.rssGrowthBytesPer100k)} | ${mb(m.hnswlibBytesPer100k)} | ${mb(m.vectorCopyBytesPer100k)} |`,
    '',
  ].join('\n');
}
