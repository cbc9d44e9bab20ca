// Per-key limits on top of the token buckets: requests per second with a burst, and tokens
// (embedded + generated) per minute. Requests are checked before any work; token use is known
// only from the response, so it is charged afterwards and a key that overdraws waits until
// its bucket has refilled past zero. Every answer carries OpenAI's x-ratelimit-* headers.
import type { FastifyReply } from 'fastify';
import { createError } from '../../core/errors.js';
import { MemoryBuckets, type BucketResult, type BucketSpec, type Buckets } from './buckets.js';
import type { ApiKey } from './key-store.js';

const MINUTE_MS = 60_000;

function requestBucket(key: ApiKey): BucketSpec | undefined {
  const rps = key.limits.requests_per_second;
  if (rps === undefined) return undefined;
  return { ratePerMs: rps / 1_000, capacity: key.limits.burst ?? Math.max(1, Math.ceil(rps)) };
}

function tokenBucket(key: ApiKey): BucketSpec | undefined {
  const tpm = key.limits.tokens_per_minute;
  if (tpm === undefined) return undefined;
  return { ratePerMs: tpm / MINUTE_MS, capacity: tpm };
}

/** Durations as OpenAI writes them: "20ms", "1.5s", "6m0s". */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.ceil(ms))}ms`;
  if (ms < MINUTE_MS) return `${Number((ms / 1_000).toFixed(3))}s`;
  const minutes = Math.floor(ms / MINUTE_MS);
  return `${minutes}m${Number(((ms - minutes * MINUTE_MS) / 1_000).toFixed(3))}s`;
}

export class KeyRateLimiter {
  readonly #buckets: Buckets;
  readonly #fallback: Buckets;
  readonly #onBackendError: (err: unknown) => void;

  /**
   * `fallback` (this gateway's own memory) answers while `buckets` (Redis) cannot: limits
   * then hold per gateway instead of across them, rather than not at all.
   */
  constructor(buckets: Buckets, onBackendError: (err: unknown) => void, fallback: Buckets = new MemoryBuckets()) {
    this.#buckets = buckets;
    this.#fallback = fallback;
    this.#onBackendError = onBackendError;
  }

  async #take(...args: Parameters<Buckets['take']>): Promise<BucketResult> {
    try {
      return await this.#buckets.take(...args);
    } catch (err) {
      this.#onBackendError(err);
      return this.#fallback.take(...args);
    }
  }

  /**
   * Takes one request and checks the token budget; rejects with 429 (headers set) when either is
   * spent. Undefined, with nothing to wait for, for a key without limits (the common case costs
   * no promise).
   */
  admit(key: ApiKey, reply: FastifyReply): Promise<void> | undefined {
    if (key.limits.requests_per_second === undefined && key.limits.tokens_per_minute === undefined) return undefined;
    return this.#admit(key, reply);
  }

  async #admit(key: ApiKey, reply: FastifyReply): Promise<void> {
    const requests = requestBucket(key);
    const tokens = tokenBucket(key);
    let requestResult: BucketResult | undefined;
    let tokenResult: BucketResult | undefined;
    [requestResult, tokenResult] = await Promise.all([
      requests && this.#take(`${key.id}:requests`, requests, 1, 1),
      tokens && this.#take(`${key.id}:tokens`, tokens, 0, 1),
    ]);
    if (requests !== undefined && requestResult !== undefined) {
      reply.header('x-ratelimit-limit-requests', String(requests.capacity));
      reply.header('x-ratelimit-remaining-requests', String(Math.max(0, Math.floor(requestResult.remaining))));
      reply.header('x-ratelimit-reset-requests', formatDuration(requestResult.resetMs));
    }
    if (tokens !== undefined && tokenResult !== undefined) {
      reply.header('x-ratelimit-limit-tokens', String(tokens.capacity));
      reply.header('x-ratelimit-remaining-tokens', String(Math.max(0, Math.floor(tokenResult.remaining))));
      reply.header('x-ratelimit-reset-tokens', formatDuration(tokenResult.resetMs));
    }
    const denied = [requestResult, tokenResult].filter((result) => result !== undefined && !result.allowed) as BucketResult[];
    if (denied.length === 0) return;
    const retryAfterMs = Math.max(...denied.map((result) => result.retryAfterMs));
    reply.header('retry-after-ms', String(retryAfterMs));
    const what = requestResult?.allowed === false ? `${key.limits.requests_per_second} requests per second` : `${key.limits.tokens_per_minute} tokens per minute`;
    throw createError('RAGWAY_ERR_RATE_LIMITED', `rate limit of key "${key.name}" reached (${what}); retry after ${formatDuration(retryAfterMs)}`, {
      retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1_000)),
    });
  }

  /** Charges tokens a response used against the key's per-minute budget. */
  async charge(key: ApiKey, tokens: number): Promise<void> {
    const spec = tokenBucket(key);
    if (spec === undefined || tokens <= 0) return;
    await this.#take(`${key.id}:tokens`, spec, tokens, 0, true);
  }
}
