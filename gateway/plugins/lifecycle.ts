// In-flight tracking and draining for graceful shutdown. A request is in flight from
// onRequest until its socket response closes — which also covers hijacked SSE streams that
// never reach onResponse. While draining, new requests get 503 with `Connection: close`, so
// load balancers move on, and in-flight ones (streams included) are left to finish.
// Start-up tasks hold readiness here too (gateway/readiness.ts), so /readyz knows about them.
import fp from 'fastify-plugin';
import { createError } from '../../core/errors.js';
import { sendError } from '../../core/http-errors.js';
import { ReadinessHolds } from '../readiness.js';

export interface Lifecycle {
  readonly inFlight: number;
  readonly draining: boolean;
  /** Start-up tasks (the first-run ingest of `ragway start`) that keep /readyz at 503 until released. */
  readonly holds: ReadinessHolds;
  /** Stops admitting requests and resolves when none is in flight or `graceMs` has passed. */
  drain(graceMs: number): Promise<{ drained: boolean; remaining: number }>;
}

export default fp(
  async (app) => {
    let inFlight = 0;
    let draining = false;
    let wake: (() => void) | undefined;
    const holds = new ReadinessHolds();
    app.addHook('onRequest', async (request, reply) => {
      if (draining) {
        reply.header('connection', 'close');
        return sendError(reply, createError('RAGWAY_ERR_NOT_READY', 'the gateway is shutting down', { retryAfterSeconds: 1 }));
      }
      inFlight += 1;
      reply.raw.once('close', () => {
        inFlight -= 1;
        if (inFlight === 0) wake?.();
      });
      return undefined;
    });
    const lifecycle: Lifecycle = {
      holds,
      get inFlight() {
        return inFlight;
      },
      get draining() {
        return draining;
      },
      async drain(graceMs) {
        draining = true;
        if (inFlight > 0) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, graceMs);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
        return { drained: inFlight === 0, remaining: inFlight };
      },
    };
    app.decorate('lifecycle', lifecycle);
  },
  { name: 'ragway-lifecycle' },
);
