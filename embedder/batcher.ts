// Micro-batcher in front of an embedding backend (TEI's queue, in small): callers embed a
// few texts each; the batcher packs inputs from many callers into one model call, bounded
// by inputs per batch, padded tokens per batch and a max wait. The queue is bounded and
// admission fails fast with RAGWAY_ERR_OVERLOADED instead of letting latency grow without
// limit. Inputs whose caller went away are dropped before compute and counted.
import type { EmbeddingBackend, EncodedInput } from './backend.js';
import { abortError, createError, isRagwayError, throwIfAborted } from '../core/errors.js';

export interface BatcherOptions {
  /** Most inputs in one model call. */
  maxBatchInputs: number;
  /** Most padded tokens in one model call: inputs × longest input. */
  maxBatchTokens: number;
  /** Longest an input waits for company before its batch runs anyway. */
  maxWaitMs: number;
  /** Inputs allowed to wait; beyond it callers get an immediate 429. */
  maxQueuedInputs: number;
  /** Model calls running at once (1 is best on a 2-core machine: ORT already uses a core). */
  maxConcurrentBatches: number;
}

export const DEFAULT_BATCHER_OPTIONS: BatcherOptions = {
  maxBatchInputs: 128,
  maxBatchTokens: 16_384,
  maxWaitMs: 0,
  maxQueuedInputs: 8_192,
  maxConcurrentBatches: 1,
};

/** Hooks for metrics; the batcher itself knows nothing about prom-client. */
export interface BatcherObserver {
  onBatch?(inputs: number, paddedTokens: number, seconds: number): void;
  onQueueWait?(seconds: number): void;
  onDropped?(inputs: number): void;
  onRejected?(inputs: number): void;
}

export interface EmbedOptions {
  signal?: AbortSignal;
  /** Names the request field in errors, e.g. "input" gives param "input[3]". */
  param?: string;
}

export interface EmbedResult {
  vectors: Float32Array[];
  /** Tokens the model saw for these inputs, padding excluded (OpenAI `usage.prompt_tokens`). */
  promptTokens: number;
}

/** Inputs batched together differ in length by at most this factor when the queue must be split. */
const LENGTH_BUCKET_RATIO = 2;

interface PendingRequest {
  readonly vectors: (Float32Array | undefined)[];
  remaining: number;
  /** Entries of this request still waiting in the queue. */
  queued: number;
  settled: boolean;
  readonly resolve: (vectors: Float32Array[]) => void;
  readonly reject: (err: unknown) => void;
  readonly cleanup: () => void;
}

interface QueueEntry {
  readonly input: EncodedInput;
  readonly request: PendingRequest;
  readonly position: number;
  readonly enqueuedAt: number;
}

export class EmbeddingBatcher {
  readonly #backend: EmbeddingBackend;
  readonly #options: BatcherOptions;
  readonly #observer: BatcherObserver;
  #queue: QueueEntry[] = [];
  /** Queued entries whose caller is still waiting (aborted ones are excluded). */
  #liveQueued = 0;
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #closed = false;
  #dropped = 0;
  #batches = 0;

  constructor(backend: EmbeddingBackend, options: Partial<BatcherOptions> = {}, observer: BatcherObserver = {}) {
    this.#backend = backend;
    this.#options = { ...DEFAULT_BATCHER_OPTIONS, ...options };
    this.#observer = observer;
    for (const [name, value] of Object.entries(this.#options)) {
      if (!Number.isFinite(value) || value < (name === 'maxWaitMs' ? 0 : 1)) {
        throw new RangeError(`batcher option ${name} must be a positive number, got ${String(value)}`);
      }
    }
  }

  get backend(): EmbeddingBackend {
    return this.#backend;
  }

  /** Tokenizes and checks length without queueing; lets routes report usage and reject early. */
  encode(texts: readonly string[], param = 'input'): EncodedInput[] {
    return texts.map((text, i) => {
      const encoded = this.#backend.encode(text);
      if (encoded.tokenCount > this.#backend.maxInputTokens) {
        throw createError(
          'RAGWAY_ERR_INPUT_TOO_LONG',
          `${texts.length === 1 ? param : `${param}[${i}]`} has ${encoded.tokenCount} tokens; ` +
            `model ${this.#backend.modelId} accepts at most ${this.#backend.maxInputTokens}`,
          { param: texts.length === 1 ? param : `${param}[${i}]` },
        );
      }
      return encoded;
    });
  }

  async embed(texts: readonly string[], options: EmbedOptions = {}): Promise<EmbedResult> {
    const encoded = this.encode(texts, options.param);
    const vectors = await this.embedEncoded(encoded, options.signal);
    return { vectors, promptTokens: encoded.reduce((sum, input) => sum + input.tokenCount, 0) };
  }

  embedEncoded(inputs: readonly EncodedInput[], signal?: AbortSignal): Promise<Float32Array[]> {
    if (this.#closed) return Promise.reject(createError('RAGWAY_ERR_NOT_READY', 'the embedder is shutting down'));
    try {
      throwIfAborted(signal);
    } catch (err) {
      return Promise.reject(err);
    }
    if (inputs.length === 0) return Promise.resolve([]);
    // A request bigger than the whole queue is still admitted when the queue is empty, so
    // it is split across batches rather than refused forever.
    if (this.#liveQueued > 0 && this.#liveQueued + inputs.length > this.#options.maxQueuedInputs) {
      this.#observer.onRejected?.(inputs.length);
      return Promise.reject(
        createError(
          'RAGWAY_ERR_OVERLOADED',
          `embedding queue is full (${this.#liveQueued} inputs waiting, limit ${this.#options.maxQueuedInputs})`,
          { retryAfterSeconds: 1 },
        ),
      );
    }

    return new Promise<Float32Array[]>((resolve, reject) => {
      const onAbort = (): void => {
        if (request.settled) return;
        this.#liveQueued -= request.queued;
        request.queued = 0;
        settle(request, () => reject(abortError(signal as AbortSignal)));
      };
      const request: PendingRequest = {
        vectors: new Array<Float32Array | undefined>(inputs.length),
        remaining: inputs.length,
        queued: inputs.length,
        settled: false,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const now = performance.now();
      inputs.forEach((input, position) => this.#queue.push({ input, request, position, enqueuedAt: now }));
      this.#liveQueued += inputs.length;
      this.#scheduleSoon();
    });
  }

  stats(): { queued: number; inFlightBatches: number; dropped: number; batches: number } {
    return { queued: this.#liveQueued, inFlightBatches: this.#inFlight, dropped: this.#dropped, batches: this.#batches };
  }

  /** Fails everything still queued; batches already running finish. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearImmediate(this.#immediate);
    const err = createError('RAGWAY_ERR_NOT_READY', 'the embedder is shutting down');
    for (const entry of this.#queue) {
      if (!entry.request.settled) settle(entry.request, () => entry.request.reject(err));
    }
    this.#queue = [];
    this.#liveQueued = 0;
  }

  /**
   * Defers batch formation to the next turn of the event loop, so every caller that arrives
   * in this turn — typically all the callers whose previous batch just resolved — joins the
   * same batch instead of the first one running alone.
   */
  #scheduleSoon(): void {
    if (this.#immediate !== undefined) return;
    this.#immediate = setImmediate(() => {
      this.#immediate = undefined;
      this.#schedule();
    });
  }

  #schedule(): void {
    while (this.#inFlight < this.#options.maxConcurrentBatches) {
      this.#dropAbandoned();
      if (this.#queue.length === 0) return;
      const oldest = this.#queue[0] as QueueEntry;
      const waitedMs = performance.now() - oldest.enqueuedAt;
      const full =
        this.#queue.length >= this.#options.maxBatchInputs || this.#queuedTokens() >= this.#options.maxBatchTokens;
      if (!full && waitedMs < this.#options.maxWaitMs) {
        if (this.#timer === undefined) {
          this.#timer = setTimeout(() => {
            this.#timer = undefined;
            this.#schedule();
          }, this.#options.maxWaitMs - waitedMs);
        }
        return;
      }
      clearTimeout(this.#timer);
      this.#timer = undefined;
      void this.#run(this.#takeBatch());
    }
  }

  #dropAbandoned(): void {
    const before = this.#queue.length;
    this.#queue = this.#queue.filter((entry) => !entry.request.settled);
    const dropped = before - this.#queue.length;
    if (dropped > 0) {
      this.#dropped += dropped;
      this.#observer.onDropped?.(dropped);
    }
  }

  #queuedTokens(): number {
    let longest = 0;
    for (const entry of this.#queue) longest = Math.max(longest, entry.input.tokenCount);
    return longest * this.#queue.length;
  }

  /**
   * Picks the next batch. The oldest entry always goes (no starvation); when everything
   * queued does not fit, company is chosen by length: the closest lengths first, and only
   * within a factor of LENGTH_BUCKET_RATIO of the oldest, so short inputs are not padded to
   * the length of long ones (they go together in a batch of their own next).
   */
  #takeBatch(): QueueEntry[] {
    const { maxBatchInputs, maxBatchTokens } = this.#options;
    const queue = this.#queue;
    const fitsWhole =
      queue.length <= maxBatchInputs && paddedTokens(queue.length, longestOf(queue)) <= maxBatchTokens;
    if (fitsWhole) {
      this.#queue = [];
      return queue;
    }
    const sorted = queue.map((entry, order) => ({ tokens: entry.input.tokenCount, order }));
    sorted.sort((a, b) => a.tokens - b.tokens || a.order - b.order);
    const start = sorted.findIndex((item) => item.order === 0);
    const anchor = Math.max(1, (sorted[start] as { tokens: number }).tokens);
    const similar = (tokens: number): boolean =>
      Math.max(1, tokens) * LENGTH_BUCKET_RATIO >= anchor && tokens <= anchor * LENGTH_BUCKET_RATIO;
    let low = start;
    let high = start;
    let longest = anchor;
    while (high - low + 1 < maxBatchInputs) {
      const below = sorted[low - 1];
      const above = sorted[high + 1];
      const belowOk = below !== undefined && similar(below.tokens);
      const aboveOk = above !== undefined && similar(above.tokens);
      if (!belowOk && !aboveOk) break;
      const takeBelow = belowOk && (!aboveOk || anchor - (below as { tokens: number }).tokens <= (above as { tokens: number }).tokens - anchor);
      const nextLongest = takeBelow ? longest : Math.max(longest, (above as { tokens: number }).tokens);
      if (paddedTokens(high - low + 2, nextLongest) > maxBatchTokens) break;
      if (takeBelow) low -= 1;
      else high += 1;
      longest = nextLongest;
    }
    const chosen = new Set(sorted.slice(low, high + 1).map((item) => item.order));
    const batch = queue.filter((_, order) => chosen.has(order));
    this.#queue = queue.filter((_, order) => !chosen.has(order));
    return batch;
  }

  async #run(batch: QueueEntry[]): Promise<void> {
    this.#inFlight += 1;
    this.#batches += 1;
    const started = performance.now();
    for (const entry of batch) {
      entry.request.queued -= 1;
      this.#observer.onQueueWait?.((started - entry.enqueuedAt) / 1000);
    }
    this.#liveQueued -= batch.length;
    try {
      const vectors = await this.#backend.embed(batch.map((entry) => entry.input));
      this.#observer.onBatch?.(batch.length, paddedTokens(batch.length, longestOf(batch)), (performance.now() - started) / 1000);
      batch.forEach((entry, i) => {
        const { request } = entry;
        if (request.settled) return;
        request.vectors[entry.position] = vectors[i];
        request.remaining -= 1;
        if (request.remaining === 0) settle(request, () => request.resolve(request.vectors as Float32Array[]));
      });
    } catch (err) {
      const failure = isRagwayError(err)
        ? err
        : createError('RAGWAY_ERR_INTERNAL', `embedding model ${this.#backend.modelId} failed: ${String(err)}`, { cause: err });
      for (const entry of batch) {
        if (!entry.request.settled) settle(entry.request, () => entry.request.reject(failure));
      }
    } finally {
      this.#inFlight -= 1;
      if (!this.#closed) this.#scheduleSoon();
    }
  }
}

function settle(request: PendingRequest, finish: () => void): void {
  request.settled = true;
  request.cleanup();
  finish();
}

function longestOf(entries: readonly QueueEntry[]): number {
  let longest = 0;
  for (const entry of entries) longest = Math.max(longest, entry.input.tokenCount);
  return longest;
}

function paddedTokens(inputs: number, longest: number): number {
  // An empty text still occupies one position in the padded tensor.
  return inputs * Math.max(1, longest);
}
