// Access control in front of every route: API keys (Bearer or x-api-key) with scopes and
// namespaces, per-key rate limits (memory, or Redis shared by every gateway), per-key caps
// on open streams, admission control per route class, and the audit log of writes.
// The key's namespaces are also handed to every shard call of the request (`request.namespaces`,
// passed explicitly by the routes down to the shard client's NAMESPACES_HEADER), so shards
// enforce them again where the data is.
//
// Order of checks, cheapest first: key and scope before the body is read (onRequest), rate
// limit there too; namespace, stream cap and admission once the body is validated
// (preHandler).
import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { createError } from '../../core/errors.js';
import { requestSignal } from '../../core/request-signal.js';
import { assertNamespaceAllowed } from '../../shards/access.js';
import { ConfigError } from '../config.js';
import { AdmissionGate, type RouteClass } from '../access/admission.js';
import type { EarlyRefusal } from '../access/early-refusal.js';
import { MemoryBuckets, RedisBuckets, type Buckets } from '../access/buckets.js';
import { KeyStore, type ApiKey } from '../access/key-store.js';
import { KeyRateLimiter } from '../access/rate-limiter.js';
import { StreamTokenMeter } from '../access/token-meter.js';
import { METRICS_ROUTE, OPEN_ROUTES, ROUTE_POLICIES, routeKey, type RoutePolicy } from '../access/route-policy.js';
import { CACHE_STATUS_HEADER } from '../routes/client-controls.js';

declare module 'fastify' {
  interface FastifyInstance {
    access: AccessControl;
  }
  interface FastifyRequest {
    apiKey: ApiKey | undefined;
    /**
     * The namespace patterns of the request's key, for every shard call it makes (shards refuse
     * any other namespace); undefined when no key is in play (auth open or off).
     */
    namespaces: readonly string[] | undefined;
    /**
     * Set on a streamed answer whose key has a tokens-per-minute budget: the route reports the
     * chunks (and usage) it streams, and they are charged as they go (access/token-meter.ts).
     */
    tokenMeter: StreamTokenMeter | undefined;
  }
}

export interface AccessControl {
  /** "keys" (every request needs a key), "open" (no keys configured), "off" (switched off). */
  readonly mode: 'keys' | 'open' | 'off';
  readonly keys: KeyStore | undefined;
  readonly gates: ReadonlyMap<RouteClass, AdmissionGate>;
}

/** The key a request presents: `Authorization: Bearer <key>` (OpenAI SDKs) or `x-api-key`. */
function presentedKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return match?.[1] ?? '';
  }
  const header = request.headers['x-api-key'];
  return typeof header === 'string' ? header.trim() : undefined;
}

const TOKENS_USED = /"total_tokens":(\d+)/g;

function tokensIn(payload: string): number {
  let total = 0;
  for (const match of payload.matchAll(TOKENS_USED)) total = Number(match[1]);
  return total;
}

function auditCounts(payload: unknown): Record<string, unknown> {
  if (typeof payload !== 'string' || payload.length > 1_000_000) return {};
  try {
    const body = JSON.parse(payload) as Record<string, unknown>;
    return {
      ...(Array.isArray(body['documents']) ? { documents: body['documents'].length } : {}),
      ...(typeof body['chunks_total'] === 'number' ? { chunks: body['chunks_total'] } : {}),
      ...(typeof body['chunks_deleted'] === 'number' ? { chunks: body['chunks_deleted'], documents: 1 } : {}),
    };
  } catch {
    return {};
  }
}

export interface AccessPluginOptions {
  /** Told which exact routes belong to which gate, so it can refuse ahead of Fastify. */
  earlyRefusal?: EarlyRefusal;
}

export default fp(
  async (app, options: AccessPluginOptions) => {
    const { config } = app;
    const audit = app.log.child({ audit: true }, { level: 'info' });
    let keys: KeyStore | undefined;
    if (config.auth === 'on' && config.keysFile === '') {
      throw new ConfigError('RAGWAY_AUTH=on needs a keys file: set RAGWAY_KEYS_FILE (create keys with `ragway keys create`)');
    }
    if (config.auth !== 'off' && config.keysFile !== '') {
      keys = await KeyStore.open(config.keysFile, config.keysPollMs, {
        onChange: ({ added, revoked, active }) => {
          for (const name of added) audit.info({ event: 'key.loaded', key: name, active_keys: active }, `API key "${name}" is active`);
          for (const name of revoked) audit.info({ event: 'key.revoked', key: name, active_keys: active }, `API key "${name}" no longer works`);
        },
        onError: (message) => app.log.warn(message),
      });
      app.addHook('onClose', async () => keys?.close());
    }
    const store = keys;
    const enforcing = (): boolean => config.auth === 'on' || (store?.present ?? false);

    let buckets: Buckets;
    if (config.redisUrl !== '') {
      buckets = await RedisBuckets.connect(config.redisUrl);
    } else {
      buckets = new MemoryBuckets();
    }
    app.addHook('onClose', async () => buckets.close());
    let lastLimiterWarning = 0;
    const limiter = new KeyRateLimiter(buckets, (err) => {
      if (Date.now() - lastLimiterWarning < 10_000) return;
      lastLimiterWarning = Date.now();
      app.log.warn({ err }, 'shared rate limiter (Redis) unavailable; limits hold per gateway until it answers');
    });

    const gates = new Map<RouteClass, AdmissionGate>();
    if (config.admission) {
      const common = { queueLength: config.admitQueueLength, queueTimeoutMs: config.admitQueueTimeoutMs };
      // Only searches adapt: an answer's time is mostly its length (a long stream is not a sign of load).
      const adaptive = config.admitAdaptive ? { minConcurrency: config.admitSearchMinConcurrency, tolerance: config.admitLatencyTolerance } : undefined;
      gates.set('search', new AdmissionGate('search', { concurrency: config.admitSearchConcurrency, ...common, adaptive }));
      gates.set('generation', new AdmissionGate('generation', { concurrency: config.admitGenerationConcurrency, ...common }));
      gates.set('ingest', new AdmissionGate('ingest', { concurrency: config.admitIngestConcurrency, ...common }));
      const exact = new Map<string, AdmissionGate>();
      for (const [route, policy] of Object.entries(ROUTE_POLICIES)) {
        const gate = policy.routeClass === undefined ? undefined : gates.get(policy.routeClass);
        if (gate !== undefined && !route.includes('*')) exact.set(route, gate);
      }
      options.earlyRefusal?.setRoutes(exact);
      app.metrics.watchAdmission(gates);
    }
    const openStreams = new Map<string, number>();
    app.decorate('access', {
      get mode() {
        return enforcing() ? 'keys' : config.auth === 'off' ? 'off' : 'open';
      },
      keys: store,
      gates,
    } satisfies AccessControl);
    app.decorateRequest('apiKey', undefined);
    app.decorateRequest('namespaces', undefined);
    app.decorateRequest('tokenMeter', undefined);

    app.addHook('onRequest', async (request, reply) => {
      const route = routeKey(request);
      // A request its gate would refuse anyway is refused before its body is read or its key
      // hashed: under overload, refusing must cost far less than serving.
      const routeClass = ROUTE_POLICIES[route]?.routeClass;
      const gate = routeClass === undefined ? undefined : gates.get(routeClass);
      if (gate?.full === true) throw gate.refuse();
      if (!enforcing()) return;
      if (OPEN_ROUTES.has(route)) return;
      if (route === METRICS_ROUTE && !config.metricsRequireAdmin) return;
      const presented = presentedKey(request);
      if (presented === undefined || presented === '') {
        reply.header('www-authenticate', 'Bearer');
        throw createError('RAGWAY_ERR_UNAUTHORIZED', 'missing API key: send "Authorization: Bearer <key>" or "x-api-key: <key>"');
      }
      const key = store?.authenticate(presented);
      if (key === undefined) {
        reply.header('www-authenticate', 'Bearer error="invalid_token"');
        throw createError('RAGWAY_ERR_UNAUTHORIZED', 'invalid or revoked API key');
      }
      request.apiKey = key;
      request.namespaces = key.namespaces;
      const needed = route === METRICS_ROUTE ? 'admin' : ROUTE_POLICIES[route]?.scope;
      if (needed !== undefined && !key.scopes.has(needed)) {
        throw createError('RAGWAY_ERR_FORBIDDEN', `key "${key.name}" lacks the "${needed}" scope that ${request.method} ${request.routeOptions.url} needs`);
      }
      const limited = limiter.admit(key, reply);
      if (limited !== undefined) await limited;
    });

    app.addHook('preHandler', async (request, reply) => {
      const policy: RoutePolicy | undefined = ROUTE_POLICIES[routeKey(request)];
      if (policy === undefined) return;
      const key = request.apiKey;
      if (key !== undefined && policy.namespace !== undefined) {
        const namespace = policy.namespace(request);
        if (namespace !== undefined) assertNamespaceAllowed(key.namespaces, namespace);
      }
      if (key?.limits.max_streams !== undefined && policy.stream?.(request) === true) {
        const open = openStreams.get(key.id) ?? 0;
        if (open >= key.limits.max_streams) {
          throw createError('RAGWAY_ERR_RATE_LIMITED', `key "${key.name}" already has ${open} streams open (its limit)`, { retryAfterSeconds: 1 });
        }
        openStreams.set(key.id, open + 1);
        reply.raw.once('close', () => {
          const left = (openStreams.get(key.id) ?? 1) - 1;
          if (left <= 0) openStreams.delete(key.id);
          else openStreams.set(key.id, left);
        });
      }
      if (key?.limits.tokens_per_minute !== undefined && policy.chargesTokens === true && policy.stream?.(request) === true) {
        // A stream is hijacked (no onSend with a payload to read): the route reports what it sends.
        const meter = new StreamTokenMeter((tokens) => void limiter.charge(key, tokens));
        request.tokenMeter = meter;
        reply.raw.once('close', () => meter.finish());
      }
      const gate = policy.routeClass === undefined ? undefined : gates.get(policy.routeClass);
      if (gate !== undefined) {
        const release = await gate.acquire(requestSignal(request, reply));
        if (reply.raw.destroyed || reply.raw.writableFinished) release(false);
        else reply.raw.once('close', () => release(reply.statusCode < 300 && reply.getHeader(CACHE_STATUS_HEADER) !== 'hit'));
      }
    });

    app.addHook('onSend', async (request, reply, payload) => {
      const key = request.apiKey;
      const policy = ROUTE_POLICIES[routeKey(request)];
      if (key !== undefined && policy?.chargesTokens === true && typeof payload === 'string' && reply.statusCode < 300) {
        const tokens = tokensIn(payload);
        if (tokens > 0) void limiter.charge(key, tokens);
      }
      if (policy?.audit !== undefined) {
        const namespace = policy.namespace?.(request);
        audit.info(
          {
            event: policy.audit,
            key: key?.name ?? null,
            namespace,
            ...(policy.audit === 'documents.delete' ? { document_id: (request.params as Record<string, string>)['*'] } : {}),
            ...auditCounts(payload),
            status: reply.statusCode,
            request_id: request.id,
          },
          `${policy.audit} ${reply.statusCode < 300 ? 'done' : 'refused'}`,
        );
      }
      return payload;
    });
  },
  { name: 'ragway-access', dependencies: ['ragway-lifecycle', 'ragway-metrics'] },
);
