// The shard set: one replica set per shard (keep-alive undici Pools, load- and latency-aware
// replica choice, hedging, ejection and probing), the scatter-gather on top, and the
// coalescer that turns concurrent searches into one batch request per shard. Shards are checked at start: a shard of another
// protocol version or vector dimension stops the gateway with a message saying so; a shard
// that is merely not up yet only makes /readyz fail until it is.
//
// With a DNS shard spec the replica sets start empty and ShardDiscovery fills them: a first
// round before the start-up check, then one every RAGWAY_SHARD_DNS_REFRESH_MS.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { ShardDiscovery } from '../../retriever/discovery/shard-discovery.js';
import { HttpShardClient, type HttpShardClientOptions } from '../../retriever/http-shard-client.js';
import { ReplicaSet, replicaSetsFromSpec, type ReplicaSetOptions } from '../../retriever/replica-set.js';
import { Scatter, type ScatterObserver } from '../../retriever/scatter.js';
import { SearchCoalescer } from '../../retriever/search-coalescer.js';
import type { ShardClient } from '../../retriever/shard-client.js';
import { ConfigError, loadClusterToken, parseDnsServers, parseShardSource, type Config } from '../config.js';
import { isRagwayError } from '../../core/errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Undefined unless the shard spec is a DNS name. */
    shardDiscovery: ShardDiscovery | undefined;
  }
}

export interface RetrieverPluginOptions {
  /** Shard clients the caller built (tests use in-process ones); closed with the app. */
  clients?: ShardClient[];
}

const STARTUP_CHECK_TIMEOUT_MS = 5_000;

function setOptions(config: Config, observer: ScatterObserver): Omit<ReplicaSetOptions, 'shard' | 'label'> {
  return {
    observer,
    hedge: {
      enabled: config.hedge,
      percentile: config.hedgePercentile,
      maxExtraFraction: config.hedgeMaxExtraFraction,
      minDelayMs: config.hedgeMinDelayMs,
    },
    ejection: { failures: config.replicaEjectFailures, baseBackoffMs: config.replicaProbeBackoffMs, maxBackoffMs: config.replicaProbeMaxBackoffMs },
  };
}

function shardsFor(app: FastifyInstance, observer: ScatterObserver): { sets: ReplicaSet[]; discovery?: ShardDiscovery } {
  const { config } = app;
  const source = parseShardSource(config.shards);
  const http: HttpShardClientOptions = {
    connections: config.shardConnections,
    requestTimeoutMs: config.shardTimeoutMs,
    clusterToken: loadClusterToken(config),
  };
  if (source.kind === 'static') {
    if (source.shards.length === 0) throw new ConfigError('no shards configured: set RAGWAY_SHARDS or pass --shards');
    return { sets: replicaSetsFromSpec(source.shards, { ...setOptions(config, observer), http }) };
  }
  const sets = Array.from(
    { length: source.shards },
    (_, shard) => new ReplicaSet([], { ...setOptions(config, observer), shard, label: `shard-${shard}`, discovered: true }),
  );
  const discovery = new ShardDiscovery({
    source,
    sets,
    servers: parseDnsServers(config.dnsServers),
    refreshMs: config.shardDnsRefreshMs,
    lookupTimeoutMs: config.shardDnsTimeoutMs,
    identifyTimeoutMs: config.shardDnsTimeoutMs,
    expectedDim: app.embedder.backend.dimensions,
    client: (url, label) => new HttpShardClient(url, { ...http, label }),
    log: (level, message) => app.log[level](message),
  });
  return { sets, discovery };
}

export default fp(
  async (app, options: RetrieverPluginOptions) => {
    const observer = app.metrics.scatterObserver();
    const { sets, discovery } = options.clients === undefined ? shardsFor(app, observer) : { sets: options.clients, discovery: undefined };
    const scatter = new Scatter(sets, observer);
    scatter.start();
    app.metrics.watchCluster(() => scatter.cluster(AbortSignal.timeout(1_000)));
    app.addHook('onClose', async () => {
      // Discovery first: no replica may join a set that is closing.
      await discovery?.close();
      await scatter.close();
    });

    if (discovery !== undefined) {
      try {
        await discovery.refresh(AbortSignal.timeout(STARTUP_CHECK_TIMEOUT_MS));
      } catch (err) {
        app.log.warn({ err }, 'shard discovery found nothing at start; it keeps looking, and /readyz fails until every shard has a replica');
      }
      discovery.start();
    }
    try {
      await scatter.check(app.embedder.backend.dimensions, AbortSignal.timeout(STARTUP_CHECK_TIMEOUT_MS));
    } catch (err) {
      if (isRagwayError(err) && err.statusCode < 500) throw err;
      // A discovered replica of the wrong dimension is refused by discovery itself, not fatal here.
      if (isRagwayError(err) && err.code === 'RAGWAY_ERR_NOT_READY' && discovery === undefined) throw err;
      app.log.warn({ err }, 'not every shard answered at start; /readyz fails until they do');
    }

    app.decorate('scatter', scatter);
    app.decorate('shardDiscovery', discovery);
    app.decorate('shardSearch', new SearchCoalescer(scatter, {
        onBatch: (queries) => app.metrics.searchBatchQueries.observe(queries),
      }));
  },
  { name: 'ragway-retriever', dependencies: ['ragway-embedder', 'ragway-access'] },
);
