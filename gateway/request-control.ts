// Per-request controls that clients set in the body or, for clients (OpenAI SDKs) that
// cannot add body fields easily, in headers; the body wins when both are given:
// - cache: `cache: {mode, ttl_ms}` or `x-ragway-cache-mode` / `x-ragway-cache-ttl-ms`; the
//   answer says what happened in `x-ragway-cache: hit | miss | bypass | coalesced`;
// - deadline: `deadline_ms` or `x-ragway-deadline-ms`, the time budget of the retrieval.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import type { CacheControl, CacheStatus } from './caches.js';

const Mode = Type.Union([Type.Literal('default'), Type.Literal('bypass'), Type.Literal('refresh')], {
  errorMessage: 'cache mode must be default, bypass or refresh',
});

export const CacheControlBody = Type.Object(
  {
    mode: Type.Optional(Mode),
    ttl_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 31_536_000_000 })),
  },
  { additionalProperties: false },
);
export type CacheControlBody = Static<typeof CacheControlBody>;

export const CacheControlHeaders = Type.Object({
  'x-ragway-cache-mode': Type.Optional(Mode),
  'x-ragway-cache-ttl-ms': Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,10}$' })),
  'x-ragway-deadline-ms': Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,8}$', errorMessage: 'x-ragway-deadline-ms must be a whole number of milliseconds' })),
});
export type CacheControlHeaders = Static<typeof CacheControlHeaders>;

export const CACHE_STATUS_HEADER = 'x-ragway-cache';

export function cacheControl(body: CacheControlBody | undefined, headers: CacheControlHeaders): CacheControl {
  const ttlHeader = headers['x-ragway-cache-ttl-ms'];
  return {
    mode: body?.mode ?? headers['x-ragway-cache-mode'] ?? 'default',
    ttlMs: body?.ttl_ms ?? (ttlHeader === undefined ? undefined : Number(ttlHeader)),
  };
}

export function setCacheStatus(reply: FastifyReply, status: CacheStatus): void {
  reply.header(CACHE_STATUS_HEADER, status);
}

/** Set on a semantic-cache hit: how similar the earlier question was (exact hits have none). */
export const CACHE_SIMILARITY_HEADER = 'x-ragway-cache-similarity';

/** Headers an answer can name before it starts (an SSE stream sends them with its first byte). */
export function answerCacheHeaders(prepared: { cacheStatus: CacheStatus; semanticSimilarity: number | undefined }): Record<string, string> {
  return {
    [CACHE_STATUS_HEADER]: prepared.cacheStatus,
    ...(prepared.semanticSimilarity !== undefined ? { [CACHE_SIMILARITY_HEADER]: prepared.semanticSimilarity.toFixed(4) } : {}),
  };
}

export const DeadlineMs = Type.Integer({ minimum: 1, maximum: 600_000 });

/** The retrieval budget: the body's `deadline_ms`, else the header, else the configured default. */
export function deadlineMs(body: number | undefined, headers: CacheControlHeaders, fallback: number): number {
  const header = headers['x-ragway-deadline-ms'];
  return body ?? (header === undefined ? fallback : Number(header));
}
