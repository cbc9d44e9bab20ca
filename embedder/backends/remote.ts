// An embedding backend across the network, behind the same micro-batcher as the local model:
// any OpenAI-compatible `/v1/embeddings` (vLLM, Ollama, OpenAI, Infinity, another ragway) or
// TEI's `/embed`. The batcher hands it batches sized for a local model; this backend cuts them
// to the server's own limit (never truncating an input), keeps a bounded number of requests in
// flight, retries what the server says to retry later (429, 503) with backoff, and moves to the
// next endpoint on transport failures. The width is learned from a real call at start and must
// agree across endpoints, so a misconfigured model fails at start, not on the first query.
import { Pool, type Dispatcher } from 'undici';
import { abortError, createError, isRagwayError, throwIfAborted, type RagwayError } from '../../core/errors.js';
import { sleep } from '../../core/sleep.js';
import type { EmbeddingBackend, EncodedInput } from '../backend.js';

export type RemoteEmbeddingFormat = 'openai' | 'tei';

export interface RemoteBackendOptions {
  /** Base URLs tried in order (OpenAI format: the `/v1` base; TEI: the server root). */
  urls: readonly string[];
  format: RemoteEmbeddingFormat;
  /** The model name sent to the server (OpenAI format); also the id reported to clients. */
  model: string;
  apiKey?: string;
  /** Most inputs per request the server accepts (TEI's --max-client-batch-size defaults to 32). */
  maxBatchInputs?: number;
  /** Requests in flight at once, over all endpoints. */
  maxConcurrency?: number;
  /** Longest input, in estimated tokens; longer inputs are refused (never cut). */
  maxInputTokens?: number;
  /** Limit on one request (connect + response). */
  timeoutMs?: number;
  /** Attempts per sub-batch over all endpoints before giving up. */
  maxAttempts?: number;
  /** First backoff after a 429/503; doubles per attempt, capped by maxBackoffMs (or the server's Retry-After). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** When set, the width the servers must report (e.g. the shards' dimension). */
  expectedDimensions?: number;
}

const DEFAULTS = {
  maxBatchInputs: 32,
  maxConcurrency: 4,
  maxInputTokens: 8192,
  timeoutMs: 30_000,
  maxAttempts: 4,
  backoffMs: 100,
  maxBackoffMs: 5_000,
} as const;

/** A failure the next attempt may not repeat; `retryAfterMs` when the server asked to wait. */
interface TransientFailure {
  transient: true;
  status?: number;
  retryAfterMs?: number;
  message: string;
}

export class RemoteEmbeddingBackend implements EmbeddingBackend {
  readonly modelId: string;
  readonly dimensions: number;
  readonly maxInputTokens: number;

  readonly #options: Required<Omit<RemoteBackendOptions, 'apiKey' | 'expectedDimensions'>> & { apiKey?: string };
  readonly #pools: Pool[];
  #inFlight = 0;
  readonly #waiting: Array<() => void> = [];
  #next = 0;
  #closed = false;

  private constructor(options: RemoteBackendOptions, dimensions: number, pools: Pool[]) {
    this.#options = { ...DEFAULTS, ...options };
    this.modelId = options.model;
    this.dimensions = dimensions;
    this.maxInputTokens = this.#options.maxInputTokens;
    this.#pools = pools;
  }

  /** Connects, embeds a probe on every endpoint and checks that the widths agree. */
  static async load(options: RemoteBackendOptions, signal?: AbortSignal): Promise<RemoteEmbeddingBackend> {
    if (options.urls.length === 0) throw new RangeError('a remote embedding backend needs at least one URL');
    const concurrency = options.maxConcurrency ?? DEFAULTS.maxConcurrency;
    const pools = options.urls.map((url) => new Pool(new URL(url).origin, { connections: concurrency, pipelining: 1 }));
    const probe = new RemoteEmbeddingBackend(options, 0, pools);
    try {
      const widths = await Promise.allSettled(options.urls.map((_, endpoint) => probe.#probe(endpoint, signal)));
      const answered = widths.flatMap((result, endpoint) => (result.status === 'fulfilled' ? [{ endpoint, width: result.value }] : []));
      if (answered.length === 0) {
        const reasons = widths.map((result, i) => `${options.urls[i]}: ${errorText((result as PromiseRejectedResult).reason)}`);
        throw createError('RAGWAY_ERR_NOT_READY', `no embedding endpoint answered (${reasons.join('; ')})`);
      }
      const width = answered[0]!.width;
      const disagreeing = answered.filter((entry) => entry.width !== width);
      if (disagreeing.length > 0) {
        const list = answered.map((entry) => `${options.urls[entry.endpoint]} → ${entry.width}`).join(', ');
        throw createError('RAGWAY_ERR_NOT_READY', `embedding endpoints disagree on the width of "${options.model}": ${list}`);
      }
      if (options.expectedDimensions !== undefined && width !== options.expectedDimensions) {
        throw createError(
          'RAGWAY_ERR_NOT_READY',
          `"${options.model}" returns ${width}-dimensional embeddings; ${options.expectedDimensions} were expected`,
        );
      }
      return new RemoteEmbeddingBackend(options, width, pools);
    } catch (err) {
      await Promise.all(pools.map((pool) => pool.close()));
      throw err;
    }
  }

  /** No tokenizer here: a conservative estimate (about 4 characters a token, at least one a word). */
  encode(text: string): EncodedInput {
    const words = text.split(/\s+/).filter((word) => word !== '').length;
    return { text, tokenCount: Math.max(words, Math.ceil(text.length / 4)) };
  }

  async embed(inputs: readonly EncodedInput[], signal?: AbortSignal): Promise<Float32Array[]> {
    throwIfAborted(signal);
    if (this.#closed) throw createError('RAGWAY_ERR_NOT_READY', `embedding backend ${this.modelId} is closed`);
    inputs.forEach((input, i) => {
      if (input.tokenCount > this.maxInputTokens) {
        throw createError('RAGWAY_ERR_INPUT_TOO_LONG', `input ${i} has about ${input.tokenCount} tokens; ${this.modelId} accepts at most ${this.maxInputTokens}`, {
          param: 'input',
        });
      }
    });
    const size = this.#options.maxBatchInputs;
    const parts: Array<Promise<Float32Array[]>> = [];
    for (let start = 0; start < inputs.length; start += size) {
      const texts = inputs.slice(start, start + size).map((input) => input.text);
      parts.push(this.#withPermit(() => this.#embedWithRetries(texts, signal), signal));
    }
    const vectors = (await Promise.all(parts)).flat();
    throwIfAborted(signal);
    return vectors;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#pools.map((pool) => pool.close()));
  }

  async #probe(endpoint: number, signal?: AbortSignal): Promise<number> {
    const result = await this.#request(endpoint, ['ragway start-up probe'], signal);
    if (!Array.isArray(result)) throw new Error(result.message);
    const width = result[0]?.length ?? 0;
    if (width === 0) throw new Error('the server returned an empty embedding');
    return width;
  }

  /** Bounded concurrency: waits for a free slot (abortably), runs, frees it. */
  async #withPermit<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.#inFlight >= this.#options.maxConcurrency) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          const at = this.#waiting.indexOf(wake);
          if (at !== -1) this.#waiting.splice(at, 1);
          reject(abortError(signal!));
        };
        const wake = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        this.#waiting.push(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } else {
      this.#inFlight += 1;
    }
    try {
      return await work();
    } finally {
      const wake = this.#waiting.shift();
      if (wake !== undefined) wake();
      else this.#inFlight -= 1;
    }
  }

  /**
   * One sub-batch: endpoints in turn, starting from the next in rotation. A 429/503 waits
   * (Retry-After, else exponential backoff) before the next attempt; a transport failure or
   * other 5xx moves on at once; a 413 halves the batch; any other 4xx is final.
   */
  async #embedWithRetries(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const { maxAttempts, backoffMs, maxBackoffMs } = this.#options;
    const first = this.#next;
    this.#next = (this.#next + 1) % this.#pools.length;
    const failures: string[] = [];
    let rateLimited = false;
    for (let attempt = 0; attempt < maxAttempts; attempt += 1) {
      const endpoint = (first + attempt) % this.#pools.length;
      const result = await this.#request(endpoint, texts, signal);
      if (Array.isArray(result)) return result;
      if (result.status === 413 && texts.length > 1) {
        const half = Math.ceil(texts.length / 2);
        const [head, tail] = await Promise.all([
          this.#embedWithRetries(texts.slice(0, half), signal),
          this.#embedWithRetries(texts.slice(half), signal),
        ]);
        return [...head, ...tail];
      }
      failures.push(`${this.#label(endpoint)}: ${result.message}`);
      if (result.status === 429 || result.status === 503) {
        rateLimited ||= result.status === 429;
        if (attempt + 1 < maxAttempts) await sleep(Math.min(result.retryAfterMs ?? backoffMs * 2 ** attempt, maxBackoffMs), signal);
      }
    }
    const message = `embedding failed after ${maxAttempts} attempts (${failures.join('; ')})`;
    throw createError(rateLimited ? 'RAGWAY_ERR_UPSTREAM_RATE_LIMITED' : 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE', message);
  }

  /** One HTTP call: vectors in input order, a transient failure, or a thrown final error. */
  async #request(endpoint: number, texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[] | TransientFailure> {
    throwIfAborted(signal);
    const { format, model, apiKey, timeoutMs } = this.#options;
    const base = new URL(this.#options.urls[endpoint]!);
    const path = `${base.pathname.replace(/\/+$/, '')}${format === 'openai' ? '/embeddings' : '/embed'}`;
    const body = format === 'openai' ? { model, input: texts, encoding_format: 'float' } : { inputs: texts, normalize: true, truncate: false };
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (apiKey !== undefined && apiKey !== '') headers['authorization'] = `Bearer ${apiKey}`;
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    let response: Dispatcher.ResponseData;
    try {
      response = await this.#pools[endpoint]!.request({ method: 'POST', path, headers, body: JSON.stringify(body), signal: combined });
    } catch (err) {
      if (signal?.aborted === true) throw abortError(signal);
      const message = timeout.aborted ? `no answer within ${timeoutMs} ms` : errorText(err);
      return { transient: true, message };
    }
    let payload: unknown;
    try {
      payload = await response.body.json();
    } catch (err) {
      if (signal?.aborted === true) throw abortError(signal);
      if (response.statusCode >= 500 || timeout.aborted) return { transient: true, status: response.statusCode, message: `unreadable answer (${response.statusCode})` };
      payload = undefined;
    }
    if (response.statusCode === 429 || response.statusCode >= 500 || response.statusCode === 413) {
      const retryAfter = Number(response.headers['retry-after']);
      return {
        transient: true,
        status: response.statusCode,
        message: `HTTP ${response.statusCode}${serverMessage(payload)}`,
        ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
      };
    }
    if (response.statusCode !== 200) {
      // The server refused the request itself (bad model name, bad key): another try fails the same way.
      throw createError('RAGWAY_ERR_UPSTREAM_REJECTED', `${this.#label(endpoint)} refused the embedding request: HTTP ${response.statusCode}${serverMessage(payload)}`);
    }
    return parseVectors(payload, texts.length, format, this.#label(endpoint));
  }

  #label(endpoint: number): string {
    return `embedding endpoint ${endpoint + 1} of ${this.#pools.length}`;
  }
}

/** Each server's answer shape → one L2-normalised Float32Array per input, in input order. */
function parseVectors(payload: unknown, count: number, format: RemoteEmbeddingFormat, label: string): Float32Array[] {
  const malformed = (why: string): RagwayError => createError('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `${label} sent a malformed answer: ${why}`);
  let rows: unknown[];
  if (format === 'tei') {
    if (!Array.isArray(payload)) throw malformed('expected an array of embeddings');
    rows = payload;
  } else {
    const data = (payload as { data?: unknown } | undefined)?.data;
    if (!Array.isArray(data)) throw malformed('no data array');
    rows = new Array<unknown>(data.length);
    for (const item of data as Array<{ index?: unknown; embedding?: unknown }>) {
      if (typeof item.index !== 'number' || item.index < 0 || item.index >= data.length) throw malformed('an embedding without a valid index');
      rows[item.index] = item.embedding;
    }
  }
  if (rows.length !== count) throw malformed(`${rows.length} embeddings for ${count} inputs`);
  return rows.map((row) => {
    if (!Array.isArray(row) || row.length === 0 || !row.every((value) => typeof value === 'number' && Number.isFinite(value))) {
      throw malformed('an embedding that is not a list of finite numbers');
    }
    return normalise(Float32Array.from(row as number[]));
  });
}

function normalise(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  const norm = Math.sqrt(sum);
  if (norm > 1e-12) for (let i = 0; i < vector.length; i += 1) vector[i]! /= norm;
  return vector;
}

function serverMessage(payload: unknown): string {
  const error = (payload as { error?: unknown; message?: unknown } | undefined)?.error ?? (payload as { message?: unknown } | undefined)?.message;
  const text = typeof error === 'string' ? error : typeof (error as { message?: unknown })?.message === 'string' ? (error as { message: string }).message : '';
  return text === '' ? '' : `: ${text.slice(0, 200)}`;
}

function errorText(err: unknown): string {
  if (isRagwayError(err)) return err.message;
  const cause = (err as { code?: unknown })?.code;
  return typeof cause === 'string' ? cause : err instanceof Error ? err.message : String(err);
}
