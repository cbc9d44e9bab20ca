// The shard set: one replica set per shard (keep-alive undici Pools, load- and latency-aware
// replica choice, hedging, ejection and probing), the scatter-gather on top, and the
// coalescer that turns concurrent searches into one batch request per shard. Shards are checked at start: a shard of another
// protocol version or vector dimension stops the gateway with a message saying so; a shard
// that is merely not up yet only makes /readyz fail until it is.
import fp from 'fastify-plugin';
import { replicaSetsFromSpec, type ReplicaSet } from '../../retriever/replica-set.js';
import { Scatter, type ScatterObserver } from '../../retriever/scatter.js';
import { SearchCoalescer } from '../../retriever/search-coalescer.js';
import type { ShardClient } from '../../retriever/shard-client.js';
import { ConfigError, loadClusterToken, parseShardSpec, type Config } from '../config.js';
import { isRagwayError } from '../../core/errors.js';

export interface RetrieverPluginOptions {
  /** Shard clients the caller built (tests use in-process ones); closed with the app. */
  clients?: ShardClient[];
}

const STARTUP_CHECK_TIMEOUT_MS = 5_000;

function replicaSetsFor(config: Config, observer: ScatterObserver): ReplicaSet[] {
  const shards = parseShardSpec(config.shards);
  if (shards.length === 0) throw new ConfigError('no shards configured: set RAGWAY_SHARDS or pass --shards');
  return replicaSetsFromSpec(shards, {
    observer,
    http: {
      connections: config.shardConnections,
      requestTimeoutMs: config.shardTimeoutMs,
      clusterToken: loadClusterToken(config),
    },
    hedge: {
      enabled: config.hedge,
      percentile: config.hedgePercentile,
      maxExtraFraction: config.hedgeMaxExtraFraction,
      minDelayMs: config.hedgeMinDelayMs,
    },
    ejection: { failures: config.replicaEjectFailures, baseBackoffMs: config.replicaProbeBackoffMs, maxBackoffMs: config.replicaProbeMaxBackoffMs },
  });
}

export default fp(
  async (app, options: RetrieverPluginOptions) => {
    const { config } = app;
    const observer = app.metrics.scatterObserver();
    const clients = options.clients ?? replicaSetsFor(config, observer);
    const scatter = new Scatter(clients, observer);
    scatter.start();
    app.metrics.watchAntiEntropy(() => scatter.cluster(AbortSignal.timeout(1_000)));
    app.addHook('onClose', async () => scatter.close());

    try {
      await scatter.check(app.embedder.backend.dimensions, AbortSignal.timeout(STARTUP_CHECK_TIMEOUT_MS));
    } catch (err) {
      if (isRagwayError(err) && err.statusCode < 500) throw err;
      if (isRagwayError(err) && err.code === 'RAGWAY_ERR_NOT_READY') throw err;
      app.log.warn({ err }, 'not every shard answered at start; /readyz fails until they do');
    }

    app.decorate('scatter', scatter);
    app.decorate('shardSearch', new SearchCoalescer(scatter, {
        onBatch: (queries) => app.metrics.searchBatchQueries.observe(queries),
      }));
  },
  { name: 'ragway-retriever', dependencies: ['ragway-embedder', 'ragway-access'] },
);
