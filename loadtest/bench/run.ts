// `npm run bench [-- --quick]`: runs the benchmarks side by side on this machine and writes
// bench-results/<timestamp>/report.md and report.json, with the machine described.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { OnnxEmbeddingBackend } from '../../embedder/backends/onnx.js';
import { ensureGloveSifModel } from '../../embedder/model/build-model.js';
import { defaultModelDir, packageRoot } from '../../core/package-paths.js';
import { benchRetrievalCore, renderRetrievalCore } from './retrieval-core.js';
import { benchStreamingTax, renderStreamingTax } from './streaming-tax.js';
import { benchCaching, renderCaching } from './caching.js';
import { benchAnn, renderAnn } from './ann.js';
import { benchHedging, renderHedging } from './hedging.js';
import { benchWal, renderWal } from './wal.js';
import { benchQuality, renderQuality } from './quality.js';
import { benchAccess, renderAccess } from './access.js';
import { benchTracing, renderTracing } from './tracing.js';
import { barChart, cdfPoints, lineChart } from './svg.js';
import type { RetrievalCoreReport } from './retrieval-core.js';
import type { CachingReport } from './caching.js';

/** The report's SVG charts: latency CDFs and throughput bars. */
function chartFiles(results: { retrievalCore: RetrievalCoreReport | undefined; caching: CachingReport | undefined }): { file: string; title: string; svg: string }[] {
  const charts: { file: string; title: string; svg: string }[] = [];
  const { retrievalCore, caching } = results;
  if (retrievalCore !== undefined) {
    const e = retrievalCore.embedding;
    charts.push({
      file: 'embedding-throughput.svg',
      title: 'Embedding throughput',
      svg: barChart({
        title: 'Embeddings/s (concurrency 64 unless noted)',
        unit: '/s',
        bars: [
          { label: 'micro-batched', value: e.batched.requestsPerSecond },
          { label: 'one model call per input', value: e.unbatched.requestsPerSecond },
          { label: 'one request at a time (c=1)', value: e.sequential.requestsPerSecond },
        ],
      }),
    });
    charts.push({
      file: 'search-scaling.svg',
      title: 'Search scaling',
      svg: barChart({
        title: '/v1/search uncached req/s by shard processes (c=32)',
        unit: 'req/s',
        bars: retrievalCore.scaling.map((p) => ({ label: `${p.shards} shard process${p.shards > 1 ? 'es' : ''}`, value: p.result.requestsPerSecond })),
      }),
    });
  }
  if (caching !== undefined) {
    const series = [
      { name: 'bare Fastify hello', result: caching.floor.hello },
      { name: '/v1/search cache hit', result: caching.floor.cachedSearch },
      { name: 'replay 30%, cache on', result: caching.replay.cached },
      { name: 'replay 30%, no cache', result: caching.replay.uncached },
    ];
    charts.push({
      file: 'latency-cdf.svg',
      title: 'Latency CDF',
      svg: lineChart({
        title: 'Latency CDF at concurrency 32',
        xLabel: 'latency ms',
        yLabel: 'fraction of requests',
        logX: true,
        yMin: 0,
        yMax: 1,
        series: series.map((s) => ({ name: s.name, points: cdfPoints(s.result.latencies ?? []) })),
      }),
    });
  }
  return charts;
}

function machine(): Record<string, string | number> {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memory_gib: Math.round(totalmem() / 1024 ** 3),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean' }, out: { type: 'string' }, only: { type: 'string' }, 'hedge-concurrency': { type: 'string' } },
  });
  const quick = values.quick === true;
  // --only retrieval-core,streaming-tax,caching runs a subset (for iterating on one area).
  const sections = new Set((values.only ?? 'retrieval-core,streaming-tax,caching,tracing,hedging,wal,ann,access,quality').split(','));
  const log = (line: string): void => {
    process.stderr.write(`[bench] ${line}\n`);
  };
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const outDir = values.out ?? join(packageRoot(), 'bench-results', stamp);
  const workDir = await mkdtemp(join(tmpdir(), 'ragway-bench-'));
  await ensureGloveSifModel({ outDir: defaultModelDir(), log });
  const backend = await OnnxEmbeddingBackend.load({ model: defaultModelDir(), intraOpNumThreads: 1 });
  const started = performance.now();
  try {
    const retrievalCore = sections.has('retrieval-core') ? await benchRetrievalCore({ quick, backend, workDir, log }) : undefined;
    const streamingTax = sections.has('streaming-tax') ? await benchStreamingTax({ quick, workDir, dim: backend.dimensions, log }) : undefined;
    const caching = sections.has('caching') ? await benchCaching({ quick, workDir, backend, log }) : undefined;
    const tracing = sections.has('tracing') ? await benchTracing({ quick, workDir, backend, log }) : undefined;
    const hedgeConcurrency = values['hedge-concurrency'] === undefined ? undefined : Number(values['hedge-concurrency']);
    const hedging = sections.has('hedging')
      ? await benchHedging({ quick, workDir, dim: backend.dimensions, log, ...(hedgeConcurrency !== undefined ? { concurrency: hedgeConcurrency } : {}) })
      : undefined;
    const wal = sections.has('wal') ? await benchWal({ quick, workDir, log }) : undefined;
    const ann = sections.has('ann') ? await benchAnn({ quick, workDir, log }) : undefined;
    const quality = sections.has('quality') ? await benchQuality({ quick, workDir, dim: backend.dimensions, log }) : undefined;
    const access = sections.has('access') ? await benchAccess({ quick, workDir, dim: backend.dimensions, log }) : undefined;
    const charts = chartFiles({ retrievalCore, caching });
    const info = machine();
    const seconds = (performance.now() - started) / 1000;
    const report = [
      `# ragway benchmark${quick ? ' (quick)' : ''}`,
      '',
      `${new Date().toISOString()} · ${info['cpu']} · ${info['cores']} cores · ${info['memory_gib']} GiB · Node ${info['node']} · ${seconds.toFixed(0)} s`,
      '',
      'Every comparison ran side by side in this one run on this machine; the load generator shares the CPU with what it measures.',
      '',
      retrievalCore ? renderRetrievalCore(retrievalCore) : undefined,
      streamingTax ? renderStreamingTax(streamingTax) : undefined,
      caching ? renderCaching(caching) : undefined,
      tracing ? renderTracing(tracing) : undefined,
      hedging ? renderHedging(hedging) : undefined,
      wal ? renderWal(wal) : undefined,
      access ? renderAccess(access) : undefined,
      ann ? renderAnn(ann) : undefined,
      quality ? renderQuality(quality) : undefined,
      charts.length > 0 ? ['## Charts', '', ...charts.map((chart) => `![${chart.title}](${chart.file})`), ''].join('\n') : undefined,
    ]
      .filter((section) => section !== undefined)
      .join('\n');
    await mkdir(outDir, { recursive: true });
    await writeFile(join(outDir, 'report.md'), report);
    for (const chart of charts) await writeFile(join(outDir, chart.file), chart.svg);
    for (const dataset of ann?.datasets ?? []) {
      await writeFile(
        join(outDir, `ann-${dataset.name.toLowerCase()}.svg`),
        lineChart({
          title: `Recall@10 vs QPS, ${dataset.name}`,
          xLabel: 'queries per second',
          yLabel: 'recall@10',
          logX: true,
          series: dataset.series.map((series) => ({ name: series.name, points: series.points.map((p) => ({ x: p.qps, y: p.recall })) })),
        }),
      );
    }
    await writeFile(join(outDir, 'report.json'), `${JSON.stringify({ machine: info, quick, seconds, retrievalCore, streamingTax, caching, tracing, hedging, wal, ann, access, quality }, null, 2)}\n`);
    process.stdout.write(`${report}\nwritten to ${outDir}\n`);
  } finally {
    await backend.close();
    await rm(workDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
