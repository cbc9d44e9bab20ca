// buildApp(config) assembles the gateway without listening: server.ts listens, tests use
// inject() or listen on port 0. Long-lived resources live in named plugins that close
// themselves in onClose; nothing is a module-level singleton.
import Fastify, { type FastifyInstance, type FastifyServerOptions, type RouteOptions } from 'fastify';
import type { EmbeddingBackend } from '../embedder/backend.js';
import type { EmbeddingBatcher } from '../embedder/batcher.js';
import type { Scatter } from '../retriever/scatter.js';
import type { ShardClient } from '../retriever/shard-client.js';
import type { Config } from './config.js';
import type { DocumentService } from './documents.js';
import { ajvOptions, installErrorHandling } from '../core/http-errors.js';
import { installHttpGuards, isLoopbackHost } from '../core/http-guards.js';
import { serverOptions } from '../core/http-server.js';
import { publicMessage, replicaNames } from './public-errors.js';
import type { GatewayMetrics } from './metrics.js';
import type { SearchPipeline } from './search-pipeline.js';
import type { AnswerService } from './answer/answer-service.js';
import type { Generator } from './providers/provider.js';
import type { GeneratorRegistry } from './providers/registry.js';
import type { SearchCoalescer } from '../retriever/search-coalescer.js';
import type { Caches } from './cache/cache-set.js';
import { EarlyRefusal } from './access/early-refusal.js';
import accessPlugin from './plugins/access.js';
import apiDocsPlugin from './plugins/api-docs.js';
import cachePlugin from './plugins/cache.js';
import lifecyclePlugin, { type Lifecycle } from './plugins/lifecycle.js';
import servicesPlugin from './plugins/services.js';
import embedderPlugin from './plugins/embedder.js';
import metricsPlugin from './plugins/metrics.js';
import generatorPlugin from './plugins/generator.js';
import retrieverPlugin from './plugins/retriever.js';
import rerankerPlugin from './plugins/reranker.js';
import tracingPlugin from './plugins/tracing.js';
import chatCompletionRoutes from './routes/v1/chat-completions.js';
import embeddingRoutes from './routes/v1/embeddings.js';
import modelRoutes from './routes/v1/models.js';
import clusterRoutes from './routes/v1/cluster.js';
import queryRoutes from './routes/v1/query.js';
import documentRoutes from './routes/v1/documents.js';
import healthRoutes from './routes/v1/health.js';
import searchRoutes from './routes/v1/search.js';

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
    metrics: GatewayMetrics;
    embedder: EmbeddingBatcher;
    scatter: Scatter;
    pipeline: SearchPipeline;
    documents: DocumentService;
    answers: AnswerService;
    shardSearch: SearchCoalescer;
    caches: Caches;
    generators: GeneratorRegistry;
    lifecycle: Lifecycle;
    /** A server-side message as a client may read it (gateway/public-errors.ts). */
    publicMessage: (message: string, requestId: string) => string;
  }
}

const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["x-ragway-cluster-token"]',
  'headers.authorization',
  'headers["x-api-key"]',
];

export interface AppDependencies {
  /** Shared embedding backend (owned by the caller). */
  embeddingBackend?: EmbeddingBackend;
  /** Shard clients to use instead of RAGWAY_SHARDS. */
  shardClients?: ShardClient[];
  /** Fastify logger setting; defaults to JSON logs at the configured level. */
  logger?: FastifyServerOptions['logger'];
  /** Extra generation models (tests register scripted ones). */
  generators?: Generator[];
  /** Process-level metrics (event loop, GC) are off in tests that build many apps. */
  defaultMetrics?: boolean;
  /** Called for every route as it is added (the API docs test compares them with /docs). */
  onRoute?: (route: RouteOptions) => void;
}

export async function buildApp(config: Config, dependencies: AppDependencies = {}): Promise<FastifyInstance> {
  // Filled in by the access plugin once its admission gates exist.
  const earlyRefusal = new EarlyRefusal();
  const app = Fastify({
    // Keys and credentials never reach a log line, whatever a serializer includes.
    logger: dependencies.logger ?? (config.logLevel === 'silent' ? false : { level: config.logLevel, redact: REDACTED_LOG_PATHS }),
    bodyLimit: config.maxBodyBytes,
    ajv: ajvOptions(),
    // Bounds the time to *receive* a request; responses and SSE streams run as long as they need.
    ...serverOptions(
      {
        headersTimeoutMs: config.headersTimeoutMs,
        requestTimeoutMs: config.requestTimeoutMs,
        keepAliveTimeoutMs: config.keepAliveTimeoutMs,
      },
      (request, response) => earlyRefusal.refuse(request, response),
    ),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });
  app.server.maxConnections = config.maxConnections;
  app.decorate('config', config);
  if (dependencies.onRoute !== undefined) app.addHook('onRoute', dependencies.onRoute);
  const names = replicaNames(config.shards);
  const toPublic = (message: string, requestId: string): string => publicMessage(message, names, requestId);
  app.decorate('publicMessage', toPublic);
  installErrorHandling(app, { maxJsonDepth: config.maxJsonDepth, publicMessage: toPublic });
  installHttpGuards(app, {
    corsOrigins: splitList(config.corsOrigins),
    allowedHosts: isLoopbackHost(config.host) ? splitList(config.allowedHosts) : undefined,
  });

  // Before any route: a route's request logger (which carries the trace id) is fixed when it is added.
  await app.register(tracingPlugin);
  // First of the rest, so it sees every route as it is added (metrics registers one too).
  await app.register(apiDocsPlugin);
  await app.register(lifecyclePlugin);
  await app.register(metricsPlugin, { defaultMetrics: dependencies.defaultMetrics ?? true });
  await app.register(accessPlugin, { earlyRefusal });
  await app.register(embedderPlugin, dependencies.embeddingBackend ? { backend: dependencies.embeddingBackend } : {});
  await app.register(retrieverPlugin, dependencies.shardClients ? { clients: dependencies.shardClients } : {});
  await app.register(cachePlugin);
  await app.register(rerankerPlugin);
  await app.register(generatorPlugin, dependencies.generators ? { generators: dependencies.generators } : {});
  await app.register(servicesPlugin);

  await app.register(healthRoutes);
  await app.register(searchRoutes);
  await app.register(documentRoutes);
  await app.register(queryRoutes);
  await app.register(chatCompletionRoutes);
  await app.register(embeddingRoutes);
  await app.register(modelRoutes);
  await app.register(clusterRoutes);
  return app;
}

function splitList(list: string): string[] {
  return list
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}
