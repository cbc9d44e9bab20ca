// The optional rerank stage: a remote reranker (RAGWAY_RERANK_URL) or a local cross-encoder
// folder (RAGWAY_RERANK_MODEL_DIR), or none. A configured local folder that is missing or
// incomplete stops the start with a message naming it; a remote one is only called per
// request (it may come up later, and failing open covers it meanwhile).
import fp from 'fastify-plugin';
import { Counter } from 'prom-client';
import type { RerankBackend } from '../rerank/backend.js';
import { CrossEncoderRerankBackend } from '../rerank/cross-encoder.js';
import { RemoteRerankBackend } from '../rerank/remote.js';
import { RerankStage } from '../rerank/stage.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Undefined when no reranker is configured (a request asking for one gets a 400). */
    reranker: RerankStage | undefined;
  }
}

export default fp(
  async (app) => {
    const { config } = app;
    let backend: RerankBackend | undefined;
    if (config.rerankUrl !== '') {
      backend = new RemoteRerankBackend({
        url: config.rerankUrl,
        format: config.rerankFormat,
        model: config.rerankModel,
        apiKey: config.rerankApiKey,
        timeoutMs: config.rerankTimeoutMs,
      });
    } else if (config.rerankModelDir !== '') {
      backend = await CrossEncoderRerankBackend.load({ dir: config.rerankModelDir, intraOpNumThreads: config.embedThreads });
    }
    if (backend === undefined) {
      app.decorate('reranker', undefined);
      return;
    }
    const failures = new Counter({
      name: 'ragway_rerank_fail_open_total',
      help: 'Requests answered without reranking because the reranker failed, by error code',
      labelNames: ['code'],
      registers: [app.metrics.registry],
    });
    const stage = new RerankStage(backend, app.caches.rerank, {
      defaultTopN: config.rerankTopN,
      onFailOpen: (code, reason, log) => {
        failures.inc({ code });
        // The request's logger when there is one: the line then carries its reqId (and trace id).
        (log ?? app.log).warn({ code, reason }, 'reranker failed; answering in retrieval order');
      },
    });
    app.decorate('reranker', stage);
    app.addHook('onClose', async () => stage.close());
    app.log.info({ model: stage.modelId }, 'reranker configured');
  },
  { name: 'ragway-reranker', dependencies: ['ragway-metrics', 'ragway-cache'] },
);
