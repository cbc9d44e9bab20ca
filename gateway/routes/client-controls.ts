// Per-request controls that clients set in the body or, for clients (OpenAI SDKs) that
// cannot add body fields easily, in headers; the body wins when both are given:
// - cache: `cache: {mode, ttl_ms}` or `x-ragway-cache-mode` / `x-ragway-cache-ttl-ms`; the
//   answer says what happened in `x-ragway-cache: hit | miss | bypass | coalesced`;
// - deadline: `deadline_ms` or `x-ragway-deadline-ms`, the time budget of the retrieval;
// - retrieval: k, namespace, filter, deadline and completeness, mapped the same way for both
//   answer routes (top-level fields of /v1/query, the `rag` object of chat completions).
import { retrievalInput, type RetrievalBody, type RetrievalDefaults } from '../schemas.js';
import type { RerankRequest } from '../rerank/stage.js';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import type { RagOptions } from '../answer/answer-service.js';
import type { CacheControl, CacheStatus } from '../cache/cache-set.js';

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

/**
 * The request's cache control. A client-chosen TTL is capped at `maxTtlMs` (the server's
 * RAGWAY_CACHE_MAX_TTL_MS): one request must not be able to pin an entry for a year.
 */
export function cacheControl(body: CacheControlBody | undefined, headers: CacheControlHeaders, maxTtlMs: number): CacheControl {
  const ttlHeader = headers['x-ragway-cache-ttl-ms'];
  const ttlMs = body?.ttl_ms ?? (ttlHeader === undefined ? undefined : Number(ttlHeader));
  return {
    mode: body?.mode ?? headers['x-ragway-cache-mode'] ?? 'default',
    ttlMs: ttlMs === undefined ? undefined : Math.min(ttlMs, maxTtlMs),
  };
}

export function setCacheStatus(reply: FastifyReply, status: CacheStatus): void {
  reply.header(CACHE_STATUS_HEADER, status);
}

/** Set on a semantic-cache hit: how similar the earlier question was (exact hits have none). */
export const CACHE_SIMILARITY_HEADER = 'x-ragway-cache-similarity';

export const DeadlineMs = Type.Integer({ minimum: 1, maximum: 600_000 });

/** The retrieval budget: the body's `deadline_ms`, else the header, else the configured default. */
export function deadlineMs(body: number | undefined, headers: CacheControlHeaders, fallback: number): number {
  const header = headers['x-ragway-deadline-ms'];
  return body ?? (header === undefined ? fallback : Number(header));
}

export interface RagFields extends RetrievalBody {
  enabled?: boolean | undefined;
  k?: number | undefined;
  namespace?: string | undefined;
  filter?: Record<string, unknown> | undefined;
  deadline_ms?: number | undefined;
  require_complete?: boolean | undefined;
  rerank?: RerankRequest | undefined;
}

/** A request's retrieval options; k and the deadline fall back to the configured defaults. */
export function ragOptions(
  fields: RagFields,
  headers: CacheControlHeaders,
  defaults: { k: number; deadlineMs: number } & RetrievalDefaults,
  namespaces: readonly string[] | undefined,
): RagOptions {
  return {
    enabled: fields.enabled ?? true,
    k: fields.k ?? defaults.k,
    namespace: fields.namespace,
    namespaces,
    filter: fields.filter,
    deadlineMs: deadlineMs(fields.deadline_ms, headers, defaults.deadlineMs),
    requireComplete: fields.require_complete,
    retrieval: retrievalInput(fields, defaults),
    rerank: fields.rerank,
  };
}
