// Request timing for every route and the Prometheus endpoint. Other plugins reach the
// metrics through `app.metrics` to wire their observers.
import fp from 'fastify-plugin';
import { GatewayMetrics } from '../metrics.js';

export default fp(
  async (app, options: { defaultMetrics?: boolean }) => {
    const metrics = new GatewayMetrics(options);
    app.decorate('metrics', metrics);
    // Observed when the response's socket work is over, not in onResponse: hijacked replies
    // (SSE streams) never reach onResponse, and their duration is the one that matters most.
    app.addHook('onRequest', async (request, reply) => {
      const started = performance.now();
      reply.raw.once('close', () => {
        metrics.httpDuration.observe(
          { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.raw.statusCode) },
          (performance.now() - started) / 1000,
        );
      });
    });
    app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    });
    app.addHook('onClose', async () => metrics.registry.clear());
  },
  { name: 'ragway-metrics' },
);
