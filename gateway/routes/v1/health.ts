// Liveness and readiness. /healthz answers while the process runs; /readyz only when the
// embedding model is loaded and every shard answers with the right protocol and dimension,
// so a load balancer or Kubernetes never routes traffic to a gateway that would 503.
import type { FastifyInstance } from 'fastify';
import { checkShard } from '../../../retriever/check-shard.js';
import { createError } from '../../../core/errors.js';
import { sendError } from '../../../core/http-errors.js';

const READY_CHECK_TIMEOUT_MS = 2_000;

export default async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const signal = AbortSignal.timeout(READY_CHECK_TIMEOUT_MS);
    const dimensions = app.embedder.backend.dimensions;
    const shards = await Promise.all(
      app.scatter.shards.map(async (client) => {
        try {
          const stats = await checkShard(client, dimensions, signal);
          return { name: client.name, ok: true, count: stats.count, epoch: stats.epoch };
        } catch (err) {
          return { name: client.name, ok: false, error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    const failing = shards.filter((shard) => !shard.ok);
    if (failing.length > 0) {
      return sendError(
        reply,
        createError(
          'RAGWAY_ERR_NOT_READY',
          `${failing.length} of ${shards.length} shards not ready: ${failing.map((s) => `${s.name}: ${s.error}`).join('; ')}`,
          { retryAfterSeconds: 1 },
        ),
      );
    }
    return { status: 'ready', model: app.embedder.backend.modelId, shards };
  });
}
