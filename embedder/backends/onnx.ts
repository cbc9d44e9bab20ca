// The local embedding backend: a Hugging Face model folder (or hub id) loaded through
// transformers.js and run on onnxruntime-node. The default model glove-sif-100d takes this path,
// and so would a stock export such as Xenova/bge-small-en-v1.5 (docs/architecture.md §4.1).
//
// Tokenization happens once, in encode(); embed() builds the padded int64 tensors straight from
// those ids, so a micro-batch never tokenizes twice.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';

import { AutoModel, AutoTokenizer, env, LogLevel, Tensor } from '@huggingface/transformers';
import type { DataType, PreTrainedModel, PreTrainedTokenizer, PretrainedModelOptions } from '@huggingface/transformers';

import { createError, throwIfAborted } from '../../core/errors.js';
import type { EmbeddingBackend, EncodedInput } from '../backend.js';

export interface OnnxBackendOptions {
  /** A local model folder, or a Hugging Face hub id (e.g. "Xenova/bge-small-en-v1.5"). */
  model: string;
  /** The id reported to clients; defaults to the folder's ragway-build.json model_id, its name, or the hub id. */
  modelId?: string;
  /** ONNX Runtime intra-op threads; default 1 (measured: a second thread is slower on 2 cores). */
  intraOpNumThreads?: number;
  /** Whether a hub id may be downloaded; default false (offline). */
  allowRemoteModels?: boolean;
  /** transformers.js dtype ("fp32", "fp16", "q8", …); default: the model's own (fp32 for glove-sif). */
  dtype?: string;
  /** Execution device; `cuda` needs onnxruntime-node's CUDA binaries and never falls back to CPU. Default cpu. */
  device?: EmbeddingDevice;
}

export type EmbeddingDevice = 'cpu' | 'cuda';

/** Upper bound on maxInputTokens whatever the tokenizer claims (some say 1e30). */
const MAX_INPUT_TOKENS_CAP = 8192;
const NORM_EPS = 1e-12;
const LITTLE_ENDIAN_HOST = endianness() === 'LE';

/** A loaded model's outputs, as transformers.js returns them (name → Tensor). */
type ModelOutputs = Record<string, Tensor | undefined>;

interface ModelRunner {
  readonly model: PreTrainedModel;
  readonly padId: number;
  /** 'sentence_embedding' when the graph pools itself, else token states pooled here. */
  readonly outputName: string;
  readonly pooled: boolean;
}

export class OnnxEmbeddingBackend implements EmbeddingBackend {
  readonly modelId: string;
  readonly dimensions: number;
  readonly maxInputTokens: number;

  private readonly tokenizer: PreTrainedTokenizer;
  private readonly runner: ModelRunner;
  private closed = false;

  private constructor(init: {
    modelId: string;
    dimensions: number;
    maxInputTokens: number;
    tokenizer: PreTrainedTokenizer;
    runner: ModelRunner;
  }) {
    this.modelId = init.modelId;
    this.dimensions = init.dimensions;
    this.maxInputTokens = init.maxInputTokens;
    this.tokenizer = init.tokenizer;
    this.runner = init.runner;
  }

  static async load(options: OnnxBackendOptions): Promise<OnnxEmbeddingBackend> {
    const threads = options.intraOpNumThreads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) {
      throw new RangeError(`intraOpNumThreads must be a positive integer, got ${threads}`);
    }
    const device = options.device ?? 'cpu';
    if (device === 'cuda') assertCudaProviderInstalled();
    const localDir = localModelDir(options.model);
    // transformers.js joins a relative path that looks like a hub id onto env.localModelPath,
    // so local folders are always passed as absolute paths.
    const source = localDir ?? options.model;

    // Only ever quieter: the custom model_type makes transformers.js warn that it falls back to
    // the base class, which is expected here. Other settings stay per call (local_files_only),
    // so a second load in the same process sees the same global env.
    if (env.logLevel < LogLevel.ERROR) env.logLevel = LogLevel.ERROR;
    if (localDir !== undefined && !env.allowLocalModels) env.allowLocalModels = true;

    const local_files_only = localDir !== undefined || options.allowRemoteModels !== true;
    const modelOptions: PretrainedModelOptions = {
      local_files_only,
      device,
      session_options: {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3,
      },
    };
    if (options.dtype !== undefined) modelOptions.dtype = options.dtype as DataType;

    const [tokenizerResult, modelResult] = await Promise.allSettled([
      AutoTokenizer.from_pretrained(source, { local_files_only }),
      AutoModel.from_pretrained(source, modelOptions),
    ]);
    if (tokenizerResult.status === 'rejected' || modelResult.status === 'rejected') {
      if (modelResult.status === 'fulfilled') await modelResult.value.dispose().catch(() => undefined);
      const err: unknown = tokenizerResult.status === 'rejected' ? tokenizerResult.reason : (modelResult as PromiseRejectedResult).reason;
      const hint =
        localDir === undefined && options.allowRemoteModels !== true
          ? ' (not a local folder, and remote models are disabled)'
          : '';
      throw createError('RAGWAY_ERR_NOT_READY', `cannot load embedding model "${options.model}"${hint}: ${errorMessage(err)}`, { cause: err });
    }
    const tokenizer = tokenizerResult.value;
    const model = modelResult.value;

    try {
      const session = model.sessions['model'] as { outputNames?: readonly string[] } | undefined;
      const outputNames = session?.outputNames ?? [];
      let outputName: string;
      let pooled: boolean;
      if (outputNames.includes('sentence_embedding')) {
        outputName = 'sentence_embedding';
        pooled = true;
      } else if (outputNames.includes('last_hidden_state')) {
        outputName = 'last_hidden_state';
        pooled = false;
      } else if (outputNames.includes('token_embeddings')) {
        outputName = 'token_embeddings';
        pooled = false;
      } else {
        throw new Error(`the model has none of sentence_embedding, last_hidden_state, token_embeddings among its outputs (${outputNames.join(', ')})`);
      }

      const config = model.config as unknown as Record<string, unknown>;
      let maxInputTokens = MAX_INPUT_TOKENS_CAP;
      const tokenizerMax: unknown = tokenizer.model_max_length;
      if (typeof tokenizerMax === 'number' && tokenizerMax > 0) maxInputTokens = Math.min(maxInputTokens, Math.floor(tokenizerMax));
      const positions = config['max_position_embeddings'];
      if (typeof positions === 'number' && positions > 0) maxInputTokens = Math.min(maxInputTokens, positions);

      const padId = typeof tokenizer.pad_token_id === 'number' ? tokenizer.pad_token_id : 0;
      const runner: ModelRunner = { model, padId, outputName, pooled };
      // One real run: it learns the output width (a pooled head may differ from hidden_size)
      // and warms the session before the first request.
      const [probe] = await runModel(runner, [tokenizer.encode('hello')]);
      const dimensions = probe?.length ?? 0;
      const hidden = config['hidden_size'];
      if (dimensions === 0) throw new Error('the model returned an empty embedding');
      if (!pooled && typeof hidden === 'number' && hidden !== dimensions) {
        throw new Error(`token states have width ${dimensions}, config.hidden_size is ${hidden}`);
      }
      const modelId = options.modelId ?? (localDir !== undefined ? localModelId(localDir) : options.model);
      return new OnnxEmbeddingBackend({ modelId, dimensions, maxInputTokens, tokenizer, runner });
    } catch (err) {
      await model.dispose().catch(() => undefined);
      throw createError('RAGWAY_ERR_NOT_READY', `cannot use embedding model "${options.model}": ${errorMessage(err)}`, { cause: err });
    }
  }

  encode(text: string): EncodedInput {
    // Whatever the tokenizer does by default: no special tokens for glove-sif (post_processor
    // null), [CLS]/[SEP] for a BERT-style model — the count is what the model really sees.
    const ids = this.tokenizer.encode(text);
    return { text, tokenCount: ids.length, ids };
  }

  async embed(inputs: readonly EncodedInput[], signal?: AbortSignal): Promise<Float32Array[]> {
    throwIfAborted(signal);
    if (this.closed) throw createError('RAGWAY_ERR_NOT_READY', `embedding model ${this.modelId} is closed`);
    if (inputs.length === 0) return [];
    const idLists = inputs.map((input, i) => {
      // Inputs encoded elsewhere (another backend's estimate) carry no ids; tokenize them once here.
      const ids = input.ids ?? this.encode(input.text).ids ?? [];
      if (ids.length > this.maxInputTokens) {
        throw createError(
          'RAGWAY_ERR_INPUT_TOO_LONG',
          `input ${i} has ${ids.length} tokens; ${this.modelId} accepts at most ${this.maxInputTokens}`,
          { param: 'input' },
        );
      }
      return ids;
    });
    const vectors = await runModel(this.runner, idLists);
    // The work is done, but a caller that gave up must not get a result it no longer expects.
    throwIfAborted(signal);
    return vectors;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.runner.model.dispose();
  }
}

/** Pads to the longest input (at least 1, so an all-empty batch is still a valid tensor) and runs. */
async function runModel(runner: ModelRunner, idLists: readonly (readonly number[])[]): Promise<Float32Array[]> {
  const batch = idLists.length;
  let seq = 1;
  for (const ids of idLists) seq = Math.max(seq, ids.length);

  const inputIds = new BigInt64Array(batch * seq);
  const mask = new BigInt64Array(batch * seq);
  if (LITTLE_ENDIAN_HOST) {
    // Token ids are small non-negative integers: writing the low 32-bit word of each int64
    // avoids a BigInt conversion per token.
    const ids32 = new Int32Array(inputIds.buffer);
    const mask32 = new Int32Array(mask.buffer);
    for (let b = 0; b < batch; b++) {
      const ids = idLists[b] ?? [];
      const row = b * seq;
      for (let t = 0; t < seq; t++) {
        const at = 2 * (row + t);
        if (t < ids.length) {
          ids32[at] = ids[t] ?? 0;
          mask32[at] = 1;
        } else {
          ids32[at] = runner.padId;
        }
      }
    }
  } else {
    const pad = BigInt(runner.padId);
    for (let b = 0; b < batch; b++) {
      const ids = idLists[b] ?? [];
      for (let t = 0; t < seq; t++) {
        const at = b * seq + t;
        inputIds[at] = t < ids.length ? BigInt(ids[t] ?? 0) : pad;
        mask[at] = t < ids.length ? 1n : 0n;
      }
    }
  }

  const outputs = (await runner.model.forward({
    input_ids: new Tensor('int64', inputIds, [batch, seq]),
    attention_mask: new Tensor('int64', mask, [batch, seq]),
  })) as ModelOutputs;
  const output = outputs[runner.outputName];
  if (output === undefined) throw createError('RAGWAY_ERR_INTERNAL', `model output ${runner.outputName} is missing`);
  const data = output.to('float32').data as Float32Array;
  const dims = output.dims;

  if (runner.pooled) {
    const width = dims[dims.length - 1] ?? 0;
    const vectors: Float32Array[] = [];
    for (let b = 0; b < batch; b++) vectors.push(normalize(data.slice(b * width, (b + 1) * width)));
    return vectors;
  }
  return meanPool(data, dims, mask, batch, seq);
}

/** Masked mean of token states [batch, seq, hidden], then L2 normalization. */
function meanPool(data: Float32Array, dims: readonly number[], mask: BigInt64Array, batch: number, seq: number): Float32Array[] {
  const hidden = dims[2] ?? 0;
  if (dims.length !== 3 || dims[0] !== batch || dims[1] !== seq) {
    throw createError('RAGWAY_ERR_INTERNAL', `unexpected token state shape [${dims.join(', ')}]`);
  }
  const vectors: Float32Array[] = [];
  for (let b = 0; b < batch; b++) {
    const sum = new Float64Array(hidden);
    let count = 0;
    for (let t = 0; t < seq; t++) {
      if (mask[b * seq + t] === 0n) continue;
      count++;
      const base = (b * seq + t) * hidden;
      for (let h = 0; h < hidden; h++) sum[h] = (sum[h] ?? 0) + (data[base + h] ?? 0);
    }
    const vector = new Float32Array(hidden);
    if (count > 0) for (let h = 0; h < hidden; h++) vector[h] = (sum[h] ?? 0) / count;
    vectors.push(normalize(vector));
  }
  return vectors;
}

/** In-place L2 normalization with a clamped norm: a zero vector stays zero, never NaN. */
function normalize(vector: Float32Array): Float32Array {
  let sq = 0;
  for (const v of vector) sq += v * v;
  const norm = Math.max(Math.sqrt(sq), NORM_EPS);
  for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] ?? 0) / norm;
  return vector;
}

function localModelDir(model: string): string | undefined {
  const path = resolve(model);
  try {
    return existsSync(path) && statSync(path).isDirectory() ? path : undefined;
  } catch {
    return undefined;
  }
}

function localModelId(dir: string): string {
  try {
    const manifest = JSON.parse(readFileSync(resolve(dir, 'ragway-build.json'), 'utf8')) as { model_id?: unknown };
    if (typeof manifest.model_id === 'string' && manifest.model_id !== '') return manifest.model_id;
  } catch {
    // not a ragway-built folder: its name is the best id there is
  }
  return basename(dir);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * onnxruntime-node ships its CUDA execution provider as a separate download that
 * `onnxruntime-node-install=skip` leaves out; without it a CUDA session would not start (or,
 * with some builds, quietly run on CPU). Checked before loading so `RAGWAY_EMBED_DEVICE=cuda`
 * fails at start with the install step, instead of serving CPU speed under a GPU's name.
 */
export function cudaProviderPath(): string {
  const binding = createRequire(import.meta.url).resolve('onnxruntime-node');
  return join(dirname(binding), '..', 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so');
}

function assertCudaProviderInstalled(): void {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw createError('RAGWAY_ERR_NOT_READY', `RAGWAY_EMBED_DEVICE=cuda: onnxruntime-node has CUDA binaries for linux/x64 only, not ${process.platform}/${process.arch}`);
  }
  const path = cudaProviderPath();
  if (!existsSync(path)) {
    throw createError(
      'RAGWAY_ERR_NOT_READY',
      `RAGWAY_EMBED_DEVICE=cuda, but onnxruntime-node's CUDA execution provider is not installed (${path} is missing). ` +
        'On a machine with CUDA 12, cuDNN 9 and network access run: ' +
        'ONNXRUNTIME_NODE_INSTALL=true ONNXRUNTIME_NODE_INSTALL_CUDA=v12 node node_modules/onnxruntime-node/script/install.js',
    );
  }
}
