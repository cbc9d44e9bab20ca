// Per-request cache control: `cache: {mode, ttl_ms}` in a body, or the headers
// `x-ragway-cache-mode` / `x-ragway-cache-ttl-ms` for clients (OpenAI SDKs) that cannot add
// body fields easily. The body wins when both are given. The answer says what happened in
// `x-ragway-cache: hit | miss | bypass | coalesced`.
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
