// OpenTelemetry tracing (RAGWAY_TRACING=otlp): this gateway's tracer provider, a server span
// per request (core/request-tracing.ts) and the stage spans the pipeline opens under it. Off by
// default, and then nothing but an undefined `request.traceSpan`. Registered before any route:
// the request logger that carries the trace id is fixed per route when the route is added.
// Spans still queued are exported when the app closes.
import fp from 'fastify-plugin';
import { installRequestTracing } from '../../core/request-tracing.js';
import { Tracing } from '../../core/tracing.js';
import { tracingSettings } from '../config.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Undefined when tracing is off. */
    tracing: Tracing | undefined;
  }
}

/** Probes and scrapes: every few seconds from kubelets and Prometheus, none of them a user's request. */
const UNTRACED_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

export default fp(
  async (app) => {
    const settings = tracingSettings(app.config, 'gateway');
    const tracing = settings === undefined ? undefined : new Tracing(settings);
    app.decorate('tracing', tracing);
    installRequestTracing(app, tracing, { untracedPaths: UNTRACED_PATHS });
    if (tracing === undefined || settings === undefined) return;
    app.addHook('onClose', async () => tracing.shutdown());
    app.log.info({ url: settings.url, service: settings.serviceName, sample_ratio: settings.sampleRatio }, 'tracing on: spans exported over OTLP/HTTP');
  },
  { name: 'ragway-tracing' },
);
