// Cache layers (query embeddings, search results, answers) and the epoch tracker that
// invalidates them: it learns shard epochs from every response and write, and polls the
// shards so writes made through another gateway are noticed within RAGWAY_CACHE_EPOCH_POLL_MS.
import fp from 'fastify-plugin';
import { Gauge } from 'prom-client';
import { EpochTracker } from '../cache/epoch-tracker.js';
import { createCaches } from '../cache/cache-set.js';

export default fp(
  async (app) => {
    const { config, scatter } = app;
    const epochs = new EpochTracker(scatter.shardCount, {
      poll: async (signal) => (await scatter.stats(signal)).map((stats) => stats.epoch),
      pollIntervalMs: config.cacheEpochPollMs,
      onPollError: (err) => app.log.debug({ err }, 'epoch poll failed; cached entries keep their last known epochs'),
    });
    const caches = createCaches(
      {
        embeddingsBytes: config.cacheEmbeddingsBytes,
        embeddingsTtlMs: config.cacheEmbeddingsTtlMs,
        retrievalBytes: config.cacheRetrievalBytes,
        retrievalTtlMs: config.cacheRetrievalTtlMs,
        answersBytes: config.cacheAnswersBytes,
        answersTtlMs: config.cacheAnswersTtlMs,
      },
      epochs,
      app.metrics.cacheObserver(),
    );
    new Gauge({
      name: 'ragway_cache_bytes',
      help: 'Bytes held by each cache layer (its budget is RAGWAY_CACHE_<LAYER>_BYTES)',
      labelNames: ['layer'],
      registers: [app.metrics.registry],
      collect() {
        for (const layer of [caches.embeddings, caches.retrieval, caches.answers]) {
          if (layer !== undefined) this.set({ layer: layer.name }, layer.stats().bytes);
        }
      },
    });
    app.decorate('caches', caches);
    app.addHook('onReady', async () => {
      await epochs.pollNow(AbortSignal.timeout(2_000));
      epochs.start();
    });
    app.addHook('onClose', async () => epochs.stop());
  },
  { name: 'ragway-cache', dependencies: ['ragway-retriever', 'ragway-metrics'] },
);
