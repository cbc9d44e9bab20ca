// What each route needs from a key: a scope, the namespace it touches (read from the
// validated request), its admission class, and whether it opens a stream. Routes not listed
// need a valid key and no scope beyond it (an unknown path is a 404 for a keyholder, a 401
// for anyone else, so the API cannot be mapped without a key).
import type { FastifyRequest } from 'fastify';
import { DEFAULT_NAMESPACE } from '../../shards/protocol.js';
import type { RouteClass } from './admission.js';
import type { Scope } from './keys-file.js';

export interface RoutePolicy {
  scope: Scope | undefined;
  routeClass: RouteClass | undefined;
  /** The namespace the request reads or writes (default applied); undefined when none. */
  namespace?: (request: FastifyRequest) => string | undefined;
  /** True when the request will be answered as a stream (counted against the key's max_streams). */
  stream?: (request: FastifyRequest) => boolean;
  /** Counts of embedded/generated tokens are charged from the response's `usage`. */
  chargesTokens?: boolean;
  /** Written to the audit log. */
  audit?: 'documents.upsert' | 'documents.delete';
}

type Body = Record<string, unknown> | undefined;
const bodyOf = (request: FastifyRequest): Body => (typeof request.body === 'object' && request.body !== null ? (request.body as Body) : undefined);
const fromBody = (request: FastifyRequest): string => (bodyOf(request)?.['namespace'] as string | undefined) ?? DEFAULT_NAMESPACE;
const fromQuery = (request: FastifyRequest): string =>
  ((request.query as Record<string, unknown> | undefined)?.['namespace'] as string | undefined) ?? DEFAULT_NAMESPACE;
const fromRag = (request: FastifyRequest): string | undefined => {
  const rag = bodyOf(request)?.['rag'] as Record<string, unknown> | undefined;
  // With retrieval off a chat request touches no namespace.
  if (rag?.['enabled'] === false) return undefined;
  return (rag?.['namespace'] as string | undefined) ?? DEFAULT_NAMESPACE;
};
const streamFlag = (request: FastifyRequest): boolean => bodyOf(request)?.['stream'] === true;
const queryStreams = (request: FastifyRequest): boolean =>
  streamFlag(request) || (bodyOf(request)?.['stream'] === undefined && String(request.headers.accept ?? '').includes('text/event-stream'));

export const OPEN_ROUTES = new Set(['GET /healthz', 'GET /readyz', 'HEAD /healthz', 'HEAD /readyz']);

export const ROUTE_POLICIES: Record<string, RoutePolicy> = {
  'POST /v1/search': { scope: 'read', routeClass: 'search', namespace: fromBody },
  'POST /v1/embeddings': { scope: 'read', routeClass: 'search', chargesTokens: true },
  'GET /v1/models': { scope: 'read', routeClass: undefined },
  'POST /v1/query': { scope: 'read', routeClass: 'generation', namespace: fromBody, stream: queryStreams, chargesTokens: true },
  'POST /v1/chat/completions': { scope: 'read', routeClass: 'generation', namespace: fromRag, stream: streamFlag, chargesTokens: true },
  'POST /v1/documents': { scope: 'write', routeClass: 'ingest', namespace: fromBody, audit: 'documents.upsert' },
  // Reading a stored document back is a read; changing the corpus is a write.
  'GET /v1/documents/*': { scope: 'read', routeClass: 'search', namespace: fromQuery },
  'DELETE /v1/documents/*': { scope: 'write', routeClass: 'ingest', namespace: fromQuery, audit: 'documents.delete' },
  'GET /v1/cluster': { scope: 'admin', routeClass: undefined },
};

export const METRICS_ROUTE = 'GET /metrics';

export function routeKey(request: FastifyRequest): string {
  return `${request.method} ${request.routeOptions.url ?? ''}`;
}
