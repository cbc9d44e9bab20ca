// A local cross-encoder reranker: a Hugging Face model folder with a sequence-classification
// ONNX export (e.g. Xenova/ms-marco-MiniLM-L-6-v2 or an ONNX bge-reranker), loaded through
// transformers.js (AutoTokenizer + AutoModelForSequenceClassification) from the local path
// only — nothing is downloaded. Each (query, passage) pair is tokenized as one input and
// the model's relevance logit is the score.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { AutoModelForSequenceClassification, AutoTokenizer, env, LogLevel } from '@huggingface/transformers';
import type { PreTrainedModel, PreTrainedTokenizer, Tensor } from '@huggingface/transformers';
import { createError, throwIfAborted } from '../../core/errors.js';
import { checkScores, type RerankBackend, type RerankCall, type RerankScore } from './backend.js';

export interface CrossEncoderOptions {
  /** The model folder (tokenizer.json, config.json, onnx/model*.onnx). */
  dir: string;
  intraOpNumThreads?: number;
  /** Pairs per model call. */
  batchSize?: number;
}

/** What is missing from a folder for it to be a loadable cross-encoder, or an empty list. */
export function missingModelFiles(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [`the folder ${dir}`];
  const missing: string[] = [];
  for (const file of ['config.json', 'tokenizer.json']) if (!existsSync(join(dir, file))) missing.push(file);
  const onnxDir = join(dir, 'onnx');
  const hasOnnx = existsSync(onnxDir) && readdirSync(onnxDir).some((name) => name.endsWith('.onnx'));
  if (!hasOnnx) missing.push('onnx/model.onnx');
  return missing;
}

export class CrossEncoderRerankBackend implements RerankBackend {
  readonly modelId: string;
  readonly anyModel = false;
  readonly #tokenizer: PreTrainedTokenizer;
  readonly #model: PreTrainedModel;
  readonly #batchSize: number;

  private constructor(modelId: string, tokenizer: PreTrainedTokenizer, model: PreTrainedModel, batchSize: number) {
    this.modelId = modelId;
    this.#tokenizer = tokenizer;
    this.#model = model;
    this.#batchSize = batchSize;
  }

  /** Fails with a message naming the folder and what it lacks, so a bad setting stops the start, not the first query. */
  static async load(options: CrossEncoderOptions): Promise<CrossEncoderRerankBackend> {
    const dir = resolve(options.dir);
    const missing = missingModelFiles(dir);
    if (missing.length > 0) {
      throw createError('RAGWAY_ERR_NOT_READY', `RAGWAY_RERANK_MODEL_DIR ${dir} is not a cross-encoder model folder: missing ${missing.join(', ')}`);
    }
    if (env.logLevel < LogLevel.ERROR) env.logLevel = LogLevel.ERROR;
    if (!env.allowLocalModels) env.allowLocalModels = true;
    try {
      const [tokenizer, model] = await Promise.all([
        AutoTokenizer.from_pretrained(dir, { local_files_only: true }),
        AutoModelForSequenceClassification.from_pretrained(dir, {
          local_files_only: true,
          device: 'cpu',
          session_options: { intraOpNumThreads: options.intraOpNumThreads ?? 1, interOpNumThreads: 1, logSeverityLevel: 3 },
        }),
      ]);
      return new CrossEncoderRerankBackend(basename(dir), tokenizer, model, options.batchSize ?? 16);
    } catch (err) {
      throw createError('RAGWAY_ERR_NOT_READY', `cannot load the cross-encoder in ${dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  async rerank(call: RerankCall): Promise<RerankScore[]> {
    const scores: { index: number; score: number }[] = [];
    for (let start = 0; start < call.texts.length; start += this.#batchSize) {
      throwIfAborted(call.signal);
      const texts = call.texts.slice(start, start + this.#batchSize);
      const inputs = this.#tokenizer(texts.map(() => call.query), { text_pair: [...texts], padding: true, truncation: true });
      const { logits } = (await this.#model(inputs)) as { logits: Tensor };
      const labels = logits.dims[1] ?? 1;
      const data = logits.data as Float32Array;
      for (let i = 0; i < texts.length; i += 1) {
        // One label: the relevance logit. Two (not relevant, relevant): the margin of the second.
        const score = labels === 1 ? (data[i] as number) : (data[i * labels + labels - 1] as number) - (data[i * labels] as number);
        scores.push({ index: start + i, score });
      }
    }
    return checkScores(scores, call.texts.length, call.topN);
  }

  async close(): Promise<void> {
    await this.#model.dispose();
  }
}
