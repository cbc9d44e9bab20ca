// The embedding model and its micro-batcher. The model loads once at start (a gateway
// that cannot embed is not ready); on close the queue is failed fast and the session freed.
import fp from 'fastify-plugin';
import type { EmbeddingBackend } from '../../embedder/backend.js';
import { EmbeddingBatcher } from '../../embedder/batcher.js';
import { loadEmbeddingBackend } from '../embedding-backend.js';

export interface EmbedderPluginOptions {
  /** A backend the caller owns (tests share one across apps); it is not closed with the app. */
  backend?: EmbeddingBackend;
}

export default fp(
  async (app, options: EmbedderPluginOptions) => {
    const { config } = app;
    const owned = options.backend === undefined;
    const backend = options.backend ?? (await loadEmbeddingBackend(config));
    const batcher = new EmbeddingBatcher(
      backend,
      {
        maxBatchInputs: config.embedMaxBatchInputs,
        maxBatchTokens: config.embedMaxBatchTokens,
        maxWaitMs: config.embedMaxWaitMs,
        maxQueuedInputs: config.embedMaxQueuedInputs,
      },
      app.metrics.batcherObserver(),
    );
    app.decorate('embedder', batcher);
    app.addHook('onClose', async () => {
      batcher.close();
      if (owned) await backend.close();
    });
    app.log.info({ model: backend.modelId, dimensions: backend.dimensions }, 'embedding model loaded');
  },
  { name: 'ragway-embedder', dependencies: ['ragway-metrics'] },
);
