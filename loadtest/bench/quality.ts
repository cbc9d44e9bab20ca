// Retrieval quality beside throughput: BEIR SciFact (test split) through a real gateway and
// two shards, each search mode's nDCG@10 next to its queries per second, and what hybrid
// costs in req/s against vector-only. The dataset is evaluation-only and never copied into
// the project: it is read from ../shared/beir/scifact beside the clone (or
// RAGWAY_BENCH_BEIR_DIR), and the section is skipped with a message when it is absent.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../core/package-paths.js';
import { runEvaluation, type ModeReport } from '../../cli/eval-command.js';
import { startBenchCluster } from './bench-cluster.js';

export interface QualityReport {
  dataset: string;
  queries: number;
  modes: ModeReport[];
  skipped?: string;
}

export function defaultBeirDir(): string {
  return process.env['RAGWAY_BENCH_BEIR_DIR'] ?? join(packageRoot(), '..', 'shared', 'beir', 'scifact');
}

export async function benchQuality(options: { quick: boolean; workDir: string; dim: number; log: (line: string) => void }): Promise<QualityReport> {
  const dataset = defaultBeirDir();
  if (!existsSync(join(dataset, 'corpus.jsonl'))) {
    const skipped = `BEIR SciFact not found at ${dataset} (set RAGWAY_BENCH_BEIR_DIR); quality section skipped`;
    options.log(skipped);
    return { dataset, queries: 0, modes: [], skipped };
  }
  const cluster = await startBenchCluster({ name: 'quality', shards: 2, workDir: options.workDir, dim: options.dim, connections: 16, sampleCorpus: false });
  try {
    options.log('quality: ingesting SciFact (5,183 abstracts)');
    const { reports } = await runEvaluation({
      url: cluster.url,
      dataset,
      split: 'test',
      namespace: 'scifact',
      modes: ['vector', 'lexical', 'hybrid'],
      concurrency: 8,
      k: 100,
      // --quick: the first 60 test queries (the whole corpus is still indexed, so scores stay comparable in kind).
      ...(options.quick ? { limit: 60 } : {}),
    });
    return { dataset, queries: reports[0]?.queries ?? 0, modes: reports };
  } finally {
    await cluster.stop();
  }
}

export function renderQuality(report: QualityReport): string {
  if (report.skipped !== undefined) return ['## Retrieval quality', '', report.skipped, ''].join('\n');
  const rows = report.modes.map((m) => `| ${m.mode} | ${m.ndcg_at_10.toFixed(4)} | ${m.recall_at_100.toFixed(4)} | ${m.mrr_at_10.toFixed(4)} | ${m.qps.toFixed(1)} |`);
  const vector = report.modes.find((m) => m.mode === 'vector');
  const hybrid = report.modes.find((m) => m.mode === 'hybrid');
  const cost =
    vector !== undefined && hybrid !== undefined
      ? `Hybrid vs vector-only: ${hybrid.qps.toFixed(1)} vs ${vector.qps.toFixed(1)} req/s (${(((hybrid.qps - vector.qps) / vector.qps) * 100).toFixed(0)}%): hybrid embeds the query, runs the BM25 statistics phase and both searches on every shard.`
      : '';
  return [
    '## Retrieval quality (BEIR SciFact, test split)',
    '',
    `${report.queries} queries through the gateway and 2 shards, 8 concurrent, cache bypassed, k = 100 (\`ragway eval\`'s definitions).`,
    '',
    '| mode | nDCG@10 | recall@100 | MRR@10 | req/s |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    cost,
    '',
  ].join('\n');
}
