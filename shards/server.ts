// The shard node's HTTP face: one Fastify app over one IndexStore. Everything the gateway
// sends is validated by the TypeBox schemas in protocol.ts; every failure leaves as the
// catalog's envelope, so the gateway's shard client can rebuild the exact RagwayError.
//
// Writes are acknowledged only once the write-ahead log has them on disk. A caller's time
// budget (DEADLINE_HEADER) is honoured: a request whose budget is already spent gets 504
// without any work, and a search batch stops at the deadline. Replicas started with peers
// catch up from them after listening, answering /readyz with 503 until they have.
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { abortError, createError } from '../core/errors.js';
import { ajvOptions, installErrorHandling } from '../core/http-errors.js';
import { installHttpGuards, isLoopbackHost } from '../core/http-guards.js';
import { serverOptions } from '../core/http-server.js';
import { installRequestTracing } from '../core/request-tracing.js';
import type { Tracing } from '../core/tracing.js';
import { requestSignal } from '../core/request-signal.js';
import { installShardAccess } from './access.js';
import { catchUpFromPeers, type CatchUpResult } from './catch-up.js';
import { AntiEntropy } from './anti-entropy.js';
import { acquireDataDirLock } from './data-dir-lock.js';
import { checkShardIdentity } from './shard-identity.js';
import { DIGEST_PATHS, DigestDocumentsRequest, DigestDocumentsResponse, DigestQuery } from './digest-protocol.js';
import { FaultInjector } from './faults.js';
import { IndexStore, type IndexStoreOptions, type WalSettings } from './index-store.js';
import {
  ChangesQuery,
  ChangesResponse,
  DEADLINE_HEADER,
  DeleteRequest,
  DeleteResponse,
  DocumentParams,
  DocumentResponse,
  EXPORT_CONTENT_TYPE,
  FaultSettings,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  SHARD_PATHS,
  SearchRequest,
  SearchResponse,
  StatsResponse,
  UpsertRequest,
  UpsertResponse,
  type FaultRoute,
} from './protocol.js';

/** Upserts carry base64 vectors: 10k chunks of 1024-d float32 are ~55 MB of JSON. */
export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024 * 1024;
/** How long a graceful close lets in-flight requests finish before cutting their connections. */
export const DEFAULT_GRACE_MS = 10_000;
const DEFAULT_CHANGES_LIMIT = 1_000;
export const DEFAULT_ANTI_ENTROPY_INTERVAL_MS = 10_000;
/**
 * Above the gateway's largest RAGWAY_MAX_JSON_DEPTH (64) plus the levels a shard request
 * wraps around metadata and filters, so whatever a gateway accepts a shard accepts.
 */
const SHARD_MAX_JSON_DEPTH = 128;
/** Upserts can be tens of MB: a minute to send one; idle peers are dropped after Node's 5 s. */
const SHARD_CLIENT_LIMITS = { headersTimeoutMs: 10_000, requestTimeoutMs: 120_000, keepAliveTimeoutMs: 5_000 };
/** Export lines are sent in pieces of about this size (fewer, larger socket writes). */
const EXPORT_PIECE_CHARS = 256 * 1024;

/**
 * Liveness and readiness probes come from kubelets and load balancers, which send no
 * protocol header; fault settings come from test scripts and curl.
 */
const PROTOCOL_EXEMPT = new Set<string>([SHARD_PATHS.health, SHARD_PATHS.ready, SHARD_PATHS.faults]);

export interface ShardAppOptions {
  bodyLimitBytes?: number;
  logger?: boolean;
  /** Serve /v1/faults and apply its settings (tests and benchmarks only; otherwise the route is a 404). */
  faults?: boolean;
  /** Anti-entropy with the peers, whose progress /v1/stats reports. */
  antiEntropy?: AntiEntropy;
  /** The cluster credential: without it in CLUSTER_TOKEN_HEADER only /healthz and /readyz answer. */
  clusterToken?: string | undefined;
  /** Listening on loopback: accept only loopback names in Host (DNS-rebinding defence). */
  loopback?: boolean;
  /** A server span per request, continuing the caller's `traceparent`; shut down (flushed) with the app. */
  tracing?: Tracing | undefined;
  /** The loopback address listened on (e.g. 127.0.0.2): accepted in Host besides the usual loopback names. */
  listenHost?: string;
  /** The shard this replica holds, reported in /v1/stats (gateways discovering replicas by DNS map addresses with it). */
  shardIndex?: number | undefined;
}

export interface ShardServerOptions
  extends ShardAppOptions,
    Pick<IndexStoreOptions, 'dataDir' | 'dim' | 'space' | 'm' | 'efConstruction' | 'efSearch'>,
    Pick<IndexStoreOptions, 'initialCapacity' | 'bruteForceThreshold' | 'autoSaveMs' | 'snapshotIntervalMs' | 'snapshotEveryWrites'> {
  /** Default 127.0.0.1; use 0.0.0.0 in a container. */
  host?: string;
  /** 0 picks a free port; read it back from the result. */
  port: number;
  /** Base URLs of the other replicas of this shard: catch up from one of them after starting. */
  peers?: string[];
  /** Serve own data when no peer completed a catch-up within this long (default 5 s). */
  catchUpTimeoutMs?: number;
  /** With peers: compare digests with one of them this often and pull what is missing (default 10 s; 0 = never). */
  antiEntropyIntervalMs?: number;
  /** Default grace period of close() (default 10 s). */
  graceMs?: number;
  wal?: WalSettings;
  /** Notable events (catch-up progress, recoveries) as plain lines, in addition to the Fastify logger. */
  log?: (line: string) => void;
}

export interface ShardServer {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  store: IndexStore;
  app: FastifyInstance;
  /** Settles when the start-up catch-up is over (at once without peers); the replica is ready then. */
  caughtUp: Promise<CatchUpResult | undefined>;
  /** Anti-entropy with the peers (undefined without peers); runOnce() forces a round. */
  antiEntropy: AntiEntropy | undefined;
  /**
   * Stops accepting, lets in-flight requests finish for up to `graceMs` (then cuts their
   * connections), then drains the write-ahead log and snapshots. Idempotent.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

/** Builds the routes over `store`; the caller owns the store (and closes it after the app). */
export function buildShardApp(store: IndexStore, options: ShardAppOptions = {}): FastifyInstance {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    // Strict: a typo'd field is a 400 and "5" is not 5 (Fastify's defaults strip and coerce).
    ajv: ajvOptions(),
    ...serverOptions(SHARD_CLIENT_LIMITS),
    // Document ids are up to 512 characters, percent-encoded up to three times as long.
    routerOptions: { maxParamLength: 2_048 },
  });
  installErrorHandling(app, { maxJsonDepth: SHARD_MAX_JSON_DEPTH });
  // Only calls that belong to a trace (the gateway's): probes and stats polls would each start one.
  installRequestTracing(app, options.tracing, { requireParent: true });
  if (options.tracing !== undefined) app.addHook('onClose', async () => options.tracing?.shutdown());
  // No browser has any business here: no CORS, and while on loopback only loopback names
  // in Host (the gateway addresses shards by IP or by their configured names otherwise).
  installHttpGuards(app, { corsOrigins: [], allowedHosts: options.loopback === true ? (options.listenHost === undefined ? [] : [options.listenHost]) : undefined });
  installShardAccess(app, { clusterToken: options.clusterToken });
  const faults = options.faults === true ? new FaultInjector() : undefined;
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    // Unknown routes fall through to the 404 handler whatever their headers say.
    if (route === undefined || PROTOCOL_EXEMPT.has(route)) return;
    checkProtocol(request.headers[PROTOCOL_HEADER]);
  });
  app.addHook('onSend', async (_request, reply) => {
    reply.header(PROTOCOL_HEADER, String(PROTOCOL_VERSION));
    // While closing, a connection that finishes its request must not linger as an idle
    // keep-alive: the server closes only once every connection is gone.
    if (closing) reply.header('connection', 'close');
  });

  /** Applies the fault plan for `route`; true when the connection was dropped (send nothing). */
  async function injectFaults(route: FaultRoute, request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const plan = faults?.plan(route);
    if (plan === undefined) return false;
    if (plan.delayMs > 0) {
      const signal = requestSignal(request, reply);
      await sleep(plan.delayMs, undefined, { signal }).catch(() => {
        throw abortError(signal);
      });
    }
    if (plan.drop) {
      reply.hijack();
      request.raw.socket.destroy();
      return true;
    }
    if (plan.fail) throw createError('RAGWAY_ERR_INTERNAL', 'injected fault');
    return false;
  }

  function assertServesFeed(): void {
    // Deliberately served while catching up too: what this replica holds is still news to a
    // peer that missed it, and when every replica of a shard restarts at once, each catching
    // up from the others is how they converge (applying is idempotent). Refusing would leave
    // them waiting for each other until the catch-up timeout, and then diverged.
  }

  app.post<{ Body: SearchRequest }>(
    SHARD_PATHS.search,
    { schema: { body: SearchRequest, response: { 200: SearchResponse } } },
    async (request, reply) => {
      const deadline = requestDeadline(request, reply);
      if (await injectFaults('search', request, reply)) return reply;
      return store.search(request.body, { deadline, signal: requestSignal(request, reply) });
    },
  );
  app.post<{ Body: UpsertRequest }>(
    SHARD_PATHS.upsert,
    { schema: { body: UpsertRequest, response: { 200: UpsertResponse } } },
    async (request, reply) => {
      const deadline = requestDeadline(request, reply);
      if (await injectFaults('upsert', request, reply)) return reply;
      checkDeadline(deadline);
      const response = store.upsert(request.body);
      // The acknowledgement is the durability promise: nothing is sent before the fsync.
      await store.durable();
      return response;
    },
  );
  app.post<{ Body: DeleteRequest }>(
    SHARD_PATHS.delete,
    { schema: { body: DeleteRequest, response: { 200: DeleteResponse } } },
    async (request, reply) => {
      const deadline = requestDeadline(request, reply);
      if (await injectFaults('delete', request, reply)) return reply;
      checkDeadline(deadline);
      const response = store.delete(request.body);
      await store.durable();
      return response;
    },
  );
  app.get<{ Params: DocumentParams }>(
    SHARD_PATHS.document,
    { schema: { params: DocumentParams, response: { 200: DocumentResponse } } },
    async (request, reply) => {
      requestDeadline(request, reply);
      const { namespace, document_id: documentId } = request.params;
      const document = store.getDocument(namespace, documentId);
      if (document === undefined) {
        throw createError(
          'RAGWAY_ERR_NOT_FOUND',
          `document ${JSON.stringify(documentId)} not found in namespace ${JSON.stringify(namespace)}`,
          { param: 'document_id' },
        );
      }
      return document;
    },
  );
  const identity = options.shardIndex === undefined ? {} : { shard_index: options.shardIndex };
  app.get(SHARD_PATHS.stats, { schema: { response: { 200: StatsResponse } } }, async () =>
    options.antiEntropy === undefined ? { ...store.stats(), ...identity } : { ...store.stats(), anti_entropy: options.antiEntropy.stats, ...identity },
  );
  app.get<{ Querystring: DigestQuery }>(
    DIGEST_PATHS.digest,
    {
      schema: { querystring: DigestQuery },
      preValidation: async (request) => coerceIntegers(request.query as Record<string, unknown>, ['bucket']),
    },
    async (request) => store.digest(request.query),
  );
  app.post<{ Body: DigestDocumentsRequest }>(
    DIGEST_PATHS.documents,
    { schema: { body: DigestDocumentsRequest, response: { 200: DigestDocumentsResponse } } },
    async (request) => ({ documents: store.exportDocuments(request.body.namespace, request.body.document_ids) }),
  );
  app.get<{ Querystring: ChangesQuery }>(
    SHARD_PATHS.changes,
    {
      schema: { querystring: ChangesQuery, response: { 200: ChangesResponse } },
      // Query strings are text and the app's ajv does not coerce: numbers are made numbers
      // here so the schema still judges them ("12x" stays a string and fails validation).
      preValidation: async (request) => coerceIntegers(request.query as Record<string, unknown>, ['since', 'limit']),
    },
    async (request, reply) => {
      if (await injectFaults('changes', request, reply)) return reply;
      assertServesFeed();
      return store.changesSince(request.query.since, request.query.limit ?? DEFAULT_CHANGES_LIMIT);
    },
  );
  app.get(SHARD_PATHS.export, async (request, reply) => {
    if (await injectFaults('export', request, reply)) return reply;
    assertServesFeed();
    reply.type(EXPORT_CONTENT_TYPE);
    return reply.send(Readable.from(pieces(store.exportLines())));
  });
  if (faults !== undefined) {
    app.get(SHARD_PATHS.faults, { schema: { response: { 200: FaultSettings } } }, async () => faults.settings);
    app.post<{ Body: FaultSettings }>(
      SHARD_PATHS.faults,
      { schema: { body: FaultSettings, response: { 200: FaultSettings } } },
      async (request) => faults.set(request.body),
    );
  }
  app.get(SHARD_PATHS.health, async () => ({ status: 'ok' }));
  app.get(SHARD_PATHS.ready, async () => {
    if (closing) throw createError('RAGWAY_ERR_NOT_READY', 'the shard is shutting down');
    if (store.state === 'catching-up') throw createError('RAGWAY_ERR_NOT_READY', 'the shard is catching up from its peers');
    const reason = store.unavailableReason;
    if (reason !== undefined) throw createError('RAGWAY_ERR_NOT_READY', reason);
    return { status: 'ready' };
  });
  return app;
}

function checkProtocol(header: string | string[] | undefined): void {
  if (header === String(PROTOCOL_VERSION)) return;
  const message =
    header === undefined
      ? `requests to this shard must carry the header ${PROTOCOL_HEADER}: ${PROTOCOL_VERSION}`
      : `this shard speaks protocol ${PROTOCOL_VERSION} but the request sent ${PROTOCOL_HEADER}: ${String(header)}; ` +
        'run the gateway and shards from the same release';
  throw createError('RAGWAY_ERR_PROTOCOL_MISMATCH', message, { param: PROTOCOL_HEADER });
}

/**
 * The caller's deadline as a Date.now() timestamp (undefined without the header). The budget
 * counts from when the request arrived, so time spent reading a large body is spent budget.
 */
function requestDeadline(request: FastifyRequest, reply: FastifyReply): number | undefined {
  const raw = request.headers[DEADLINE_HEADER];
  if (raw === undefined) return undefined;
  const budgetMs = typeof raw === 'string' && /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!Number.isFinite(budgetMs)) {
    throw createError('RAGWAY_ERR_INVALID_REQUEST', `${DEADLINE_HEADER} must be a number of milliseconds, got ${JSON.stringify(raw)}`, {
      param: DEADLINE_HEADER,
    });
  }
  if (budgetMs < 0) {
    throw createError('RAGWAY_ERR_INVALID_REQUEST', `${DEADLINE_HEADER} must not be negative, got ${JSON.stringify(raw)}`, {
      param: DEADLINE_HEADER,
    });
  }
  const remainingMs = budgetMs - reply.elapsedTime;
  if (remainingMs <= 0) {
    throw createError('RAGWAY_ERR_DEADLINE_EXCEEDED', `the caller's deadline (${DEADLINE_HEADER}: ${raw}) passed before the shard started`);
  }
  return Date.now() + remainingMs;
}

function checkDeadline(deadline: number | undefined): void {
  if (deadline !== undefined && Date.now() >= deadline) {
    throw createError('RAGWAY_ERR_DEADLINE_EXCEEDED', 'the deadline passed before the shard could apply the write; nothing was written');
  }
}

function coerceIntegers(query: Record<string, unknown>, names: readonly string[]): void {
  for (const name of names) {
    const value = query[name];
    if (typeof value === 'string' && /^\d{1,15}$/.test(value)) query[name] = Number(value);
  }
}

/** Joins NDJSON lines into pieces of about EXPORT_PIECE_CHARS, pulled only as the socket drains. */
function* pieces(lines: Iterable<string>): Generator<string> {
  let piece = '';
  for (const line of lines) {
    piece += `${line}\n`;
    if (piece.length >= EXPORT_PIECE_CHARS) {
      yield piece;
      piece = '';
    }
  }
  if (piece !== '') yield piece;
}

/** Opens the store in `dataDir`, listens, catches up from peers, and returns a handle whose close() drains to disk. */
export async function startShardServer(options: ShardServerOptions): Promise<ShardServer> {
  let app: FastifyInstance | undefined;
  const notify = (level: 'info' | 'warn', message: string): void => {
    if (level === 'warn') app?.log.warn(message);
    else app?.log.info(message);
    options.log?.(message);
  };
  // Before anything is read: a second process on this dir must fail before it touches the log.
  const lock = acquireDataDirLock(options.dataDir, (message) => notify('warn', message));
  let store: IndexStore;
  try {
    checkShardIdentity(options.dataDir, options.shardIndex);
    store = openStore(options, notify);
  } catch (err) {
    lock.release();
    throw err;
  }
  const peers = options.peers ?? [];
  // Not ready from the very first probe: a replica that was down may be missing writes.
  if (peers.length > 0) store.setState('catching-up');
  const antiEntropy =
    peers.length === 0
      ? undefined
      : new AntiEntropy({
          store,
          peers,
          intervalMs: options.antiEntropyIntervalMs ?? DEFAULT_ANTI_ENTROPY_INTERVAL_MS,
          clusterToken: options.clusterToken,
          log: notify,
        });
  const host = options.host ?? '127.0.0.1';
  app = buildShardApp(store, {
    bodyLimitBytes: options.bodyLimitBytes,
    logger: options.logger,
    faults: options.faults,
    clusterToken: options.clusterToken,
    loopback: isLoopbackHost(host),
    listenHost: host,
    antiEntropy,
    tracing: options.tracing,
    shardIndex: options.shardIndex,
  });
  try {
    await app.listen({ host, port: options.port });
  } catch (err) {
    store.close();
    lock.release();
    throw err;
  }
  const { port } = app.server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  lock.setUrl(url);
  const listening = app;
  const catchUpAbort = new AbortController();
  const caughtUp: Promise<CatchUpResult | undefined> =
    peers.length === 0
      ? Promise.resolve(undefined)
      : catchUpFromPeers({
          store,
          peers,
          signal: catchUpAbort.signal,
          unreachableTimeoutMs: options.catchUpTimeoutMs,
          clusterToken: options.clusterToken,
          log: notify,
        }).then(
          (result) => {
            store.setState('ready');
            return result;
          },
          (err: unknown) => {
            // Only an abort (close() during catch-up) ends up here.
            if (!catchUpAbort.signal.aborted) notify('warn', `catch-up stopped: ${String(err)}`);
            store.setState('ready');
            return undefined;
          },
        );
  // Background comparison with the peers begins once the start-up catch-up is over.
  void caughtUp.then(() => antiEntropy?.start());
  let closed: Promise<void> | undefined;
  return {
    antiEntropy,
    url,
    port,
    store,
    app: listening,
    caughtUp,
    close: (closeOptions) => {
      closed ??= (async () => {
        catchUpAbort.abort(createError('RAGWAY_ERR_NOT_READY', 'the shard is shutting down'));
        await caughtUp;
        await antiEntropy?.close();
        const graceMs = closeOptions?.graceMs ?? options.graceMs ?? DEFAULT_GRACE_MS;
        // Fastify stops accepting and closes idle keep-alive connections at once; requests in
        // flight get the grace period, then their connections are cut.
        const cut = setTimeout(() => listening.server.closeAllConnections(), graceMs);
        try {
          await listening.close();
        } finally {
          clearTimeout(cut);
          // Queued log writes reach the disk (their acks were already sent or cut), then a snapshot.
          try {
            await store.shutdown();
          } finally {
            lock.release();
          }
        }
      })();
      return closed;
    },
  };
}

function openStore(options: ShardServerOptions, notify: (level: 'info' | 'warn', message: string) => void): IndexStore {
  return IndexStore.open({
    dataDir: options.dataDir,
    dim: options.dim,
    space: options.space,
    m: options.m,
    efConstruction: options.efConstruction,
    efSearch: options.efSearch,
    initialCapacity: options.initialCapacity,
    bruteForceThreshold: options.bruteForceThreshold,
    autoSaveMs: options.autoSaveMs,
    snapshotIntervalMs: options.snapshotIntervalMs,
    snapshotEveryWrites: options.snapshotEveryWrites,
    wal: options.wal,
    onBackgroundError: (err) => notify('warn', `shard snapshot failed (the write-ahead log still holds every write): ${String(err)}`),
    onWarning: (message) => notify('warn', message),
  });
}
