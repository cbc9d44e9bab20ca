// The shard set: one keep-alive undici Pool per shard, the scatter-gather on top, and the
// coalescer that turns concurrent searches into one batch request per shard. Shards are checked at start: a shard of another
// protocol version or vector dimension stops the gateway with a message saying so; a shard
// that is merely not up yet only makes /readyz fail until it is.
import fp from 'fastify-plugin';
import { HttpShardClient } from '../../retriever/http-shard-client.js';
import { Scatter } from '../../retriever/scatter.js';
import { SearchCoalescer } from '../../retriever/search-coalescer.js';
import type { ShardClient } from '../../retriever/shard-client.js';
import { ConfigError, parseShardSpec } from '../config.js';
import { isRagwayError } from '../errors.js';

export interface RetrieverPluginOptions {
  /** Shard clients the caller built (tests use in-process ones); closed with the app. */
  clients?: ShardClient[];
}

const STARTUP_CHECK_TIMEOUT_MS = 5_000;

function clientsFromSpec(spec: string, options: { connections: number; timeoutMs: number }): ShardClient[] {
  const shards = parseShardSpec(spec);
  if (shards.length === 0) throw new ConfigError('no shards configured: set RAGWAY_SHARDS or pass --shards');
  return shards.map((replicas, index) => {
    if (replicas.length > 1) {
      throw new ConfigError(
        `shard ${index} lists ${replicas.length} replicas; this version reads and writes one replica per shard ` +
          '(replica sets with failover are not implemented yet)',
      );
    }
    return new HttpShardClient(replicas[0] as string, {
      label: `shard-${index}`,
      connections: options.connections,
      requestTimeoutMs: options.timeoutMs,
    });
  });
}

export default fp(
  async (app, options: RetrieverPluginOptions) => {
    const { config } = app;
    const clients =
      options.clients ??
      clientsFromSpec(config.shards, { connections: config.shardConnections, timeoutMs: config.shardTimeoutMs });
    const scatter = new Scatter(clients, app.metrics.scatterObserver());
    app.addHook('onClose', async () => scatter.close());

    try {
      await scatter.check(app.embedder.backend.dimensions, AbortSignal.timeout(STARTUP_CHECK_TIMEOUT_MS));
    } catch (err) {
      if (isRagwayError(err) && err.statusCode < 500) throw err;
      if (isRagwayError(err) && err.code === 'RAGWAY_ERR_NOT_READY') throw err;
      app.log.warn({ err }, 'not every shard answered at start; /readyz fails until they do');
    }

    app.decorate('scatter', scatter);
    app.decorate('shardSearch', new SearchCoalescer(scatter, { onBatch: (queries) => app.metrics.searchBatchQueries.observe(queries) }));
  },
  { name: 'ragway-retriever', dependencies: ['ragway-embedder'] },
);
