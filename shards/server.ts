// The shard node's HTTP face: one Fastify app over one ShardStore. Everything the gateway
// sends is validated by the TypeBox schemas in protocol.ts; every failure leaves as the
// catalog's envelope, so the gateway's shard client can rebuild the exact RagwayError.
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { createError } from '../gateway/errors.js';
import { ajvOptions, installErrorHandling } from '../gateway/http-errors.js';
import { IndexStore, type IndexStoreOptions } from './index-store.js';
import {
  DeleteRequest,
  DeleteResponse,
  DocumentParams,
  DocumentResponse,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  SHARD_PATHS,
  SearchRequest,
  SearchResponse,
  StatsResponse,
  UpsertRequest,
  UpsertResponse,
} from './protocol.js';
import type { ShardStore } from './shard-store.js';

/** Upserts carry base64 vectors: 10k chunks of 1024-d float32 are ~55 MB of JSON. */
export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024 * 1024;

/** Liveness and readiness probes come from kubelets and load balancers, which send no protocol header. */
const PROTOCOL_EXEMPT = new Set<string>([SHARD_PATHS.health, SHARD_PATHS.ready]);

export interface ShardAppOptions {
  bodyLimitBytes?: number;
  logger?: boolean;
}

export interface ShardServerOptions
  extends ShardAppOptions,
    Pick<IndexStoreOptions, 'dataDir' | 'dim' | 'space' | 'm' | 'efConstruction' | 'efSearch'>,
    Pick<IndexStoreOptions, 'initialCapacity' | 'bruteForceThreshold' | 'autoSaveMs'> {
  /** Default 127.0.0.1; use 0.0.0.0 in a container. */
  host?: string;
  /** 0 picks a free port; read it back from the result. */
  port: number;
}

export interface ShardServer {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  store: IndexStore;
  app: FastifyInstance;
  /** Stops accepting, drains in-flight requests, then flushes the store. Idempotent. */
  close(): Promise<void>;
}

/** Builds the routes over `store`; the caller owns the store (and closes it after the app). */
export function buildShardApp(store: ShardStore, options: ShardAppOptions = {}): FastifyInstance {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    // Strict: a typo'd field is a 400 and "5" is not 5 (Fastify's defaults strip and coerce).
    ajv: ajvOptions(),
  });
  // The wire protocol is JSON only; no curl-friendly parsing of other content types here.
  installErrorHandling(app, { lenientJson: false });
  app.removeContentTypeParser('text/plain');
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
  });
  app.post<{ Body: SearchRequest }>(
    SHARD_PATHS.search,
    { schema: { body: SearchRequest, response: { 200: SearchResponse } } },
    async (request) => store.search(request.body),
  );
  app.post<{ Body: UpsertRequest }>(
    SHARD_PATHS.upsert,
    { schema: { body: UpsertRequest, response: { 200: UpsertResponse } } },
    async (request) => store.upsert(request.body),
  );
  app.post<{ Body: DeleteRequest }>(
    SHARD_PATHS.delete,
    { schema: { body: DeleteRequest, response: { 200: DeleteResponse } } },
    async (request) => store.delete(request.body),
  );
  app.get<{ Params: DocumentParams }>(
    SHARD_PATHS.document,
    { schema: { params: DocumentParams, response: { 200: DocumentResponse } } },
    async (request) => {
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
  app.get(SHARD_PATHS.stats, { schema: { response: { 200: StatsResponse } } }, async () => store.stats());
  app.get(SHARD_PATHS.health, async () => ({ status: 'ok' }));
  app.get(SHARD_PATHS.ready, async () => {
    if (closing) throw createError('RAGWAY_ERR_NOT_READY', 'the shard is shutting down');
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

/** Opens the store in `dataDir`, listens, and returns a handle whose close() flushes to disk. */
export async function startShardServer(options: ShardServerOptions): Promise<ShardServer> {
  let app: FastifyInstance | undefined;
  const store = IndexStore.open({
    dataDir: options.dataDir,
    dim: options.dim,
    space: options.space,
    m: options.m,
    efConstruction: options.efConstruction,
    efSearch: options.efSearch,
    initialCapacity: options.initialCapacity,
    bruteForceThreshold: options.bruteForceThreshold,
    autoSaveMs: options.autoSaveMs,
    onAutoSaveError: (err) => app?.log.error({ err }, 'shard auto-save failed; retrying after the next write'),
  });
  app = buildShardApp(store, { bodyLimitBytes: options.bodyLimitBytes, logger: options.logger });
  const host = options.host ?? '127.0.0.1';
  try {
    await app.listen({ host, port: options.port });
  } catch (err) {
    store.close();
    throw err;
  }
  const { port } = app.server.address() as AddressInfo;
  const listening = app;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    store,
    app: listening,
    close: () => {
      closed ??= (async () => {
        try {
          await listening.close();
        } finally {
          store.close();
        }
      })();
      return closed;
    },
  };
}
