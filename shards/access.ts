// Who may ask a shard for what. Two headers, both set by the gateway's shard client:
//
// - CLUSTER_TOKEN_HEADER: the cluster credential. A shard started with one answers nothing
//   but /healthz and /readyz without it (401), fault injection included.
// - NAMESPACES_HEADER: the namespaces of the API key the call is made for, as patterns
//   (`team-a`, or `team-a-*` for a prefix). A shard refuses (403) any search, write, delete
//   or document read outside them, and the change feed and export entirely, so a bug above
//   the shard (a filter, an id, a cache entry) cannot hand one tenant another's chunks.
//   A call without the header is the cluster's own (epoch polling, catch-up, /v1/cluster).
import type { FastifyInstance } from 'fastify';
import { createError } from '../core/errors.js';
import { digestsEqual, hashSecret } from '../core/secrets.js';

export const CLUSTER_TOKEN_HEADER = 'x-ragway-cluster-token';
export const NAMESPACES_HEADER = 'x-ragway-namespaces';

/** A namespace, or a namespace prefix followed by `*` (a lone `*` is every namespace). */
export const NAMESPACE_PATTERN_RE = /^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\*?)$/;

export function namespaceAllowed(patterns: readonly string[], namespace: string): boolean {
  for (const pattern of patterns) {
    if (pattern.endsWith('*')) {
      if (namespace.startsWith(pattern.slice(0, -1))) return true;
    } else if (pattern === namespace) {
      return true;
    }
  }
  return false;
}

/** The header's value for a list of patterns (comma-separated; patterns never contain commas). */
export function formatNamespaceScope(patterns: readonly string[]): string {
  return patterns.join(',');
}

/** Parses NAMESPACES_HEADER; a malformed value is refused rather than read as "no limit". */
export function parseNamespaceScope(header: string | string[] | undefined): string[] | undefined {
  if (header === undefined) return undefined;
  const raw = Array.isArray(header) ? header.join(',') : header;
  const patterns = raw.split(',').map((part) => part.trim());
  if (patterns.some((pattern) => !NAMESPACE_PATTERN_RE.test(pattern))) {
    throw createError('RAGWAY_ERR_INVALID_REQUEST', `${NAMESPACES_HEADER} must list namespaces or prefix patterns`, {
      param: NAMESPACES_HEADER,
    });
  }
  return patterns;
}

export function assertNamespaceAllowed(patterns: readonly string[] | undefined, namespace: string, param = 'namespace'): void {
  if (patterns === undefined || namespaceAllowed(patterns, namespace)) return;
  throw createError('RAGWAY_ERR_NAMESPACE_FORBIDDEN', `namespace ${JSON.stringify(namespace)} is not allowed for this key`, { param });
}

/** Routes that carry no data: kubelets and load balancers probe them without credentials. */
const OPEN_ROUTES = new Set<string>(['/healthz', '/readyz']);

export interface ScopedBody {
  queries?: readonly { namespace: string }[];
  chunks?: readonly { namespace: string }[];
  namespace?: string;
}

/**
 * Refuses (403) a search, write or delete body, or a document read's namespace, that reaches
 * outside `scope`. One function for the shard server and the in-process client, so both judge alike.
 */
export function assertInScope(scope: readonly string[], body: ScopedBody | undefined, namespaceParam?: string): void {
  for (const query of body?.queries ?? []) assertNamespaceAllowed(scope, query.namespace, 'queries[].namespace');
  for (const chunk of body?.chunks ?? []) assertNamespaceAllowed(scope, chunk.namespace, 'chunks[].namespace');
  if (typeof body?.namespace === 'string') assertNamespaceAllowed(scope, body.namespace);
  if (namespaceParam !== undefined) assertNamespaceAllowed(scope, namespaceParam);
}

/**
 * Installs both checks on a shard app: the credential on every request (before the body is
 * read), the namespace scope once the body is validated (the namespaces are in it).
 */
export function installShardAccess(app: FastifyInstance, options: { clusterToken?: string | undefined }): void {
  const expected = options.clusterToken !== undefined && options.clusterToken !== '' ? hashSecret(options.clusterToken) : undefined;
  if (expected !== undefined) {
    app.addHook('onRequest', async (request) => {
      const route = request.routeOptions.url;
      if (route !== undefined && OPEN_ROUTES.has(route)) return;
      const presented = request.headers[CLUSTER_TOKEN_HEADER];
      if (typeof presented !== 'string' || !digestsEqual(hashSecret(presented), expected)) {
        throw createError('RAGWAY_ERR_UNAUTHORIZED', `this shard needs the cluster credential in ${CLUSTER_TOKEN_HEADER}`);
      }
    });
  }
  app.addHook('preHandler', async (request) => {
    const scope = parseNamespaceScope(request.headers[NAMESPACES_HEADER]);
    if (scope === undefined) return;
    const route = request.routeOptions.url;
    if (route === '/v1/changes' || route === '/v1/export' || route === '/v1/faults') {
      throw createError('RAGWAY_ERR_FORBIDDEN', `${route} is for the cluster itself, not for a tenant's call`);
    }
    const params = request.params as { namespace?: unknown } | undefined;
    assertInScope(scope, (request.body ?? {}) as ScopedBody, typeof params?.namespace === 'string' ? params.namespace : undefined);
  });
}
