// The rerank stage after retrieval (and fusion): the first `top_n` candidates go to the
// reranker, the best `k` by its scores come back. It fails open: a reranker that is down,
// slow or answers nonsense costs the request its reranking, never the request itself — the
// results come back in retrieval order, labelled `rerank: {applied: false, reason}`.
//
// Scores are cached by content: the key is the model, the exact query and a hash of the
// candidate texts, so a re-ingested chunk (new text) can never be served an old score and
// no shard epoch is needed; a cached result list that still holds the same texts hits.
import { createHash } from 'node:crypto';
import { abortError, createError } from '../../core/errors.js';
import { cacheKey } from '../cache/keys.js';
import type { CacheLayer } from '../cache/lru-layer.js';
import { SingleFlight } from '../cache/single-flight.js';
import type { CacheControl, CacheStatus } from '../cache/cache-set.js';
import type { RerankBackend, RerankScore } from './backend.js';

/** What a request asks for: `rerank: {top_n, model}`. */
export interface RerankRequest {
  top_n?: number | undefined;
  model?: string | undefined;
}

export type RerankInfo =
  | { applied: true; model: string; candidates: number; cache: CacheStatus }
  | { applied: false; model: string; candidates: number; reason: string; code: string };

export interface RerankableHit {
  text?: string | undefined;
}

export interface RerankResult<H> {
  hits: (H & { rerank_score?: number })[];
  info: RerankInfo;
  ms: number;
}

/** The little of a request's logger a stage uses (pino's and Fastify's loggers are one). */
export interface WarnLog {
  warn(details: Record<string, unknown>, message: string): void;
}

export interface RerankStageOptions {
  /** Candidates reranked when a request names no top_n. */
  defaultTopN: number;
  /** Told every time the stage fails open (metrics, logs), with the request's logger when it came with one. */
  onFailOpen?: (code: string, reason: string, log: WarnLog | undefined) => void;
}

export class RerankStage {
  readonly #backend: RerankBackend;
  readonly #layer: CacheLayer<RerankScore[]> | undefined;
  readonly #options: RerankStageOptions;
  readonly #flights = new SingleFlight<RerankScore[]>();

  constructor(backend: RerankBackend, layer: CacheLayer<RerankScore[]> | undefined, options: RerankStageOptions) {
    this.#backend = backend;
    this.#layer = layer;
    this.#options = options;
  }

  get modelId(): string {
    return this.#backend.modelId;
  }

  /** Candidates to retrieve for a request that keeps `k`: never fewer than k. */
  candidates(request: RerankRequest, k: number): number {
    return Math.max(k, request.top_n ?? this.#options.defaultTopN);
  }

  /** The model a request reranks with; a 400 when it names one this reranker does not serve. */
  model(request: RerankRequest, param = 'rerank.model'): string {
    const asked = request.model;
    if (asked === undefined || asked === this.#backend.modelId || this.#backend.anyModel) return asked ?? this.#backend.modelId;
    throw createError('RAGWAY_ERR_INVALID_REQUEST', `rerank model "${asked}" is not served here; the reranker is "${this.#backend.modelId}"`, { param });
  }

  async rerank<H extends RerankableHit>(
    input: { query: string; hits: readonly H[]; keep: number; request: RerankRequest; cache?: CacheControl | undefined; log?: WarnLog | undefined },
    signal?: AbortSignal,
  ): Promise<RerankResult<H>> {
    const started = performance.now();
    const model = this.model(input.request);
    const candidates = input.hits.slice(0, this.candidates(input.request, input.keep));
    const texts = candidates.map((hit) => hit.text ?? '');
    const keep = Math.min(input.keep, candidates.length);
    if (candidates.length === 0) {
      return { hits: [], info: { applied: true, model, candidates: 0, cache: 'miss' }, ms: 0 };
    }
    const call = (callSignal: AbortSignal) => this.#backend.rerank({ query: input.query, texts, topN: keep, model, signal: callSignal });
    const mode = input.cache?.mode ?? 'default';
    const layer = mode === 'bypass' ? undefined : this.#layer;
    let scores: RerankScore[];
    let cache: CacheStatus = layer === undefined ? (this.#layer === undefined ? 'miss' : 'bypass') : 'miss';
    try {
      if (layer === undefined) {
        scores = await call(signal ?? new AbortController().signal);
      } else {
        const key = rerankKey(model, input.query, texts, keep);
        const hit = mode === 'default' ? layer.get(key) : undefined;
        if (hit !== undefined) {
          scores = hit;
          cache = 'hit';
        } else {
          const { value, shared } = await this.#flights.run(key, call, signal);
          scores = value;
          if (shared) cache = 'coalesced';
          else layer.set(key, value, input.cache?.ttlMs === undefined ? {} : { ttlMs: input.cache.ttlMs });
        }
      }
    } catch (err) {
      // The client leaving is no reranker failure: it ends the request as everywhere else.
      if (signal?.aborted === true) throw abortError(signal);
      const { code, reason } = describeFailure(err);
      this.#options.onFailOpen?.(code, reason, input.log);
      return {
        hits: candidates.slice(0, keep),
        info: { applied: false, model, candidates: candidates.length, reason, code },
        ms: performance.now() - started,
      };
    }
    const hits = scores.slice(0, keep).map((score) => ({ ...(candidates[score.index] as H), rerank_score: score.score }));
    return { hits, info: { applied: true, model, candidates: candidates.length, cache }, ms: performance.now() - started };
  }

  async close(): Promise<void> {
    await this.#backend.close();
  }
}

function rerankKey(model: string, query: string, texts: readonly string[], keep: number): string {
  const digest = createHash('sha256');
  // Lengths first, so no two different lists of texts hash the same bytes.
  for (const text of texts) digest.update(`${text.length}:`).update(text);
  return cacheKey({ rerank: model, query, texts: digest.digest('hex'), keep });
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

function describeFailure(err: unknown): { code: string; reason: string } {
  const error = err as { name?: string; code?: string; message?: string; cause?: { code?: string } };
  const code = error.code ?? error.cause?.code;
  if (error.name === 'TimeoutError' || (code !== undefined && TIMEOUT_CODES.has(code))) {
    return { code: 'RAGWAY_ERR_UPSTREAM_TIMEOUT', reason: 'reranker timed out' };
  }
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ENOTFOUND' || code === 'UND_ERR_SOCKET') {
    return { code: 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE', reason: `reranker unreachable (${code})` };
  }
  return { code: 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE', reason: `reranker failed: ${error.message ?? String(err)}` };
}
