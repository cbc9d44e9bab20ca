// Liveness and readiness. /healthz answers while the process runs (restart me if not);
// /readyz only when gateway/readiness.ts says the whole system is ready — model loaded,
// every shard with a ready replica, no start-up task such as the first-run ingest still
// running — so a load balancer or Kubernetes never routes traffic to a half-loaded gateway.
// Not ready is a 503 in the catalog's envelope, plus what it waits for and how far along.
import type { FastifyInstance } from 'fastify';
import { createError } from '../../../core/errors.js';
import { evaluateReadiness } from '../../readiness.js';

const READY_CHECK_TIMEOUT_MS = 2_000;

export default async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const readiness = await evaluateReadiness(app, AbortSignal.timeout(READY_CHECK_TIMEOUT_MS));
    const { model, shards, waiting_for: waitingFor } = readiness;
    if (!readiness.ready) {
      const err = createError('RAGWAY_ERR_NOT_READY', `not ready: ${readiness.summary}`, { retryAfterSeconds: 1 });
      reply.header('retry-after', '1');
      return reply.code(503).send({ ...err.toEnvelope(), status: 'not_ready', waiting_for: waitingFor, model: model.id, shards });
    }
    return { status: 'ready', model: model.id, shards };
  });
}
