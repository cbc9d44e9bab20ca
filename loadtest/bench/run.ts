// `npm run bench [-- --quick]`: runs the benchmarks side by side on this machine and writes
// bench-results/<timestamp>/report.md and report.json, with the machine described.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { OnnxEmbeddingBackend } from '../../embedder/backends/onnx.js';
import { ensureGloveSifModel } from '../../embedder/model/build-model.js';
import { defaultModelDir, packageRoot } from '../../gateway/config.js';
import { benchRetrievalCore, renderRetrievalCore } from './retrieval-core.js';
import { benchStreamingTax, renderStreamingTax } from './streaming-tax.js';
import { benchCaching, renderCaching } from './caching.js';

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
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, out: { type: 'string' }, only: { type: 'string' } } });
  const quick = values.quick === true;
  // --only retrieval-core,streaming-tax,caching runs a subset (for iterating on one area).
  const sections = new Set((values.only ?? 'retrieval-core,streaming-tax,caching').split(','));
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
    const info = machine();
    const seconds = (performance.now() - started) / 1000;
    const report = [
      `# ragway benchmark${quick ? ' (quick)' : ''}`,
      '',
      `${new Date().toISOString()} · ${info['cpu']} · ${info['cores']} cores · ${info['memory_gib']} GiB · Node ${info['node']} · ${seconds.toFixed(0)} s`,
      '',
      'Every comparison ran side by side in this one run on this machine; the load generator shares the CPU with what it measures.',
      '',
      retrievalCore ? renderRetrievalCore(retrievalCore) : '',
      streamingTax ? renderStreamingTax(streamingTax) : '',
      caching ? renderCaching(caching) : '',
    ].join('\n');
    await mkdir(outDir, { recursive: true });
    await writeFile(join(outDir, 'report.md'), report);
    await writeFile(join(outDir, 'report.json'), `${JSON.stringify({ machine: info, quick, seconds, retrievalCore, streamingTax, caching }, null, 2)}\n`);
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
