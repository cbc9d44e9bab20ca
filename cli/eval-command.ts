// `ragway eval <dataset>`: retrieval quality of a running gateway on a BEIR-layout dataset.
// Ingests the corpus into a namespace (skipped when the namespace already holds documents),
// runs every query of the split through POST /v1/search in each mode, and reports nDCG@10,
// recall@10, recall@100 and MRR@10 (retriever/eval-metrics.ts: trec_eval's definitions)
// with queries per second, as a table and optionally as JSON.
//
// Rankings are by document: a search returns chunks, and a document ranks where its best
// chunk does (later chunks of it are dropped), as BEIR scores documents.
import { writeFileSync } from 'node:fs';
import { request } from 'undici';
import { evaluateRuns, type QualityReport } from '../retriever/eval-metrics.js';
import { integerFlag, parseFlags, UsageError } from './args.js';
import { checkDataset, readCorpus, readQrels, readQueries } from './beir-dataset.js';

const MODES = ['vector', 'lexical', 'hybrid'] as const;
type Mode = (typeof MODES)[number];

export interface ModeReport extends QualityReport {
  mode: string;
  qps: number;
  seconds: number;
}

export interface EvalOptions {
  url: string;
  dataset: string;
  split: string;
  namespace: string;
  modes: readonly Mode[];
  rerankTopN?: number | undefined;
  concurrency: number;
  /** Evaluate only the first N queries of the split (quick runs). */
  limit?: number | undefined;
  k: number;
  extra?: Record<string, unknown>;
  onProgress?: (message: string) => void;
}

async function postJson(url: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const response = await request(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  const text = await response.body.text();
  return { status: response.statusCode, json: text === '' ? undefined : JSON.parse(text) };
}

async function namespaceHasDocuments(base: string, namespace: string): Promise<boolean> {
  const { status } = await postJson(`${base}/v1/search`, { query: 'probe', namespace, k: 1, mode: 'lexical', include: [] });
  if (status === 404) return false;
  if (status !== 200) throw new Error(`probing namespace ${namespace}: HTTP ${status}`);
  return true;
}

async function ingest(base: string, dataset: string, namespace: string, onProgress: (message: string) => void): Promise<number> {
  let batch: { id: string; text: string }[] = [];
  let sent = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const { status, json } = await postJson(`${base}/v1/documents`, { namespace, documents: batch });
    if (status !== 200) throw new Error(`ingest failed: HTTP ${status} ${JSON.stringify(json)}`);
    sent += batch.length;
    batch = [];
    onProgress(`ingested ${sent} documents`);
  };
  for await (const document of readCorpus(dataset)) {
    batch.push(document);
    if (batch.length >= 64) await flush();
  }
  await flush();
  return sent;
}

/** Document ids in rank order, each at its best chunk's place. */
function documentRanking(hits: readonly { document_id: string }[]): string[] {
  const seen = new Set<string>();
  const ranking: string[] = [];
  for (const hit of hits) {
    if (seen.has(hit.document_id)) continue;
    seen.add(hit.document_id);
    ranking.push(hit.document_id);
  }
  return ranking;
}

export async function runEvaluation(options: EvalOptions): Promise<{ ingested: number; reports: ModeReport[] }> {
  const base = options.url.replace(/\/+$/, '');
  const progress = options.onProgress ?? (() => undefined);
  checkDataset(options.dataset, options.split);
  let ingested = 0;
  if (!(await namespaceHasDocuments(base, options.namespace))) ingested = await ingest(base, options.dataset, options.namespace, progress);
  const queries = await readQueries(options.dataset);
  const allQrels = await readQrels(options.dataset, options.split);
  const qrels = new Map([...allQrels].filter(([id]) => queries.has(id)).slice(0, options.limit ?? Number.POSITIVE_INFINITY));
  const variants: { label: string; body: Record<string, unknown> }[] = options.modes.flatMap((mode) => {
    const plain = { label: mode, body: { mode } };
    if (options.rerankTopN === undefined) return [plain];
    return [plain, { label: `${mode}+rerank`, body: { mode, rerank: { top_n: options.rerankTopN } } }];
  });
  const reports: ModeReport[] = [];
  for (const variant of variants) {
    const ids = [...qrels.keys()];
    const rankings = new Map<string, string[]>();
    let next = 0;
    const started = performance.now();
    const worker = async (): Promise<void> => {
      while (next < ids.length) {
        const id = ids[next++] as string;
        const { status, json } = await postJson(`${base}/v1/search`, {
          query: queries.get(id),
          namespace: options.namespace,
          k: options.k,
          include: [],
          cache: { mode: 'bypass' },
          ...options.extra,
          ...variant.body,
        });
        if (status !== 200) throw new Error(`${variant.label} query ${id}: HTTP ${status} ${JSON.stringify(json)}`);
        rankings.set(id, documentRanking((json as { results: { document_id: string }[] }).results));
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    const seconds = (performance.now() - started) / 1000;
    const report = { mode: variant.label, ...evaluateRuns(rankings, qrels), qps: ids.length / seconds, seconds };
    progress(`${variant.label}: nDCG@10 ${report.ndcg_at_10.toFixed(4)}`);
    reports.push(report);
  }
  return { ingested, reports };
}

export function formatReports(reports: readonly ModeReport[]): string {
  const header = ['mode', 'queries', 'nDCG@10', 'recall@10', 'recall@100', 'MRR@10', 'QPS'];
  const rows = reports.map((r) => [
    r.mode,
    String(r.queries),
    r.ndcg_at_10.toFixed(4),
    r.recall_at_10.toFixed(4),
    r.recall_at_100.toFixed(4),
    r.mrr_at_10.toFixed(4),
    r.qps.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export async function runEval(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(
    argv,
    {
      url: { type: 'string' },
      split: { type: 'string' },
      namespace: { type: 'string' },
      modes: { type: 'string' },
      rerank: { type: 'string' },
      concurrency: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'string' },
    },
    true,
  );
  const [dataset] = positionals;
  if (dataset === undefined || positionals.length > 1) {
    throw new UsageError('usage: ragway eval <beir-dataset-dir> [--url URL] [--split test] [--namespace NS] [--modes vector,lexical,hybrid] [--rerank TOP_N] [--json FILE]');
  }
  const modes = (values.modes ?? MODES.join(',')).split(',').map((mode) => mode.trim());
  for (const mode of modes) if (!(MODES as readonly string[]).includes(mode)) throw new UsageError(`--modes: unknown mode "${mode}"`);
  const split = values.split ?? 'test';
  const { reports, ingested } = await runEvaluation({
    url: values.url ?? 'http://127.0.0.1:8080',
    dataset,
    split,
    namespace: values.namespace ?? 'eval',
    modes: modes as Mode[],
    rerankTopN: integerFlag('rerank', values.rerank, 1, 1_000),
    concurrency: integerFlag('concurrency', values.concurrency, 1, 256) ?? 8,
    limit: integerFlag('limit', values.limit, 1),
    k: 100,
    onProgress: (message) => process.stderr.write(`${message}\n`),
  });
  process.stdout.write(`${formatReports(reports)}\n`);
  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify({ dataset, split, ingested, reports }, null, 2)}\n`);
  }
}
