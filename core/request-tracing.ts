// The server span of every HTTP request, for the gateway and the shards alike: it continues
// the caller's trace when the request carries a W3C `traceparent`, is reachable as
// `request.traceSpan` (handlers hand it down explicitly), ends when the response's socket work
// is over (SSE streams are hijacked and never reach onResponse), and its ids are bound into
// the request's log lines next to Fastify's reqId.
//
// With tracing off only the `traceSpan` decoration (undefined) is added: no hook runs.
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { SpanKind, type TraceSpan, type Tracing } from './tracing.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's server span; undefined when tracing is off. */
    traceSpan: TraceSpan | undefined;
  }
}

export interface RequestTracingOptions {
  /** Paths never traced: probes and scrapes, which would bury the requests that matter. */
  untracedPaths?: ReadonlySet<string>;
  /**
   * Trace only requests that continue a caller's trace (the shards: their spans belong in the
   * gateway's traces; the gateway's own background probes would otherwise each start one).
   */
  requireParent?: boolean;
}

/**
 * Starts a server span per request on `app` (call before the routes are added: Fastify fixes a
 * route's child-logger factory when the route is registered). `tracing` undefined: off.
 */
export function installRequestTracing(app: FastifyInstance, tracing: Tracing | undefined, options: RequestTracingOptions = {}): void {
  app.decorateRequest('traceSpan', undefined);
  if (tracing === undefined) return;
  const traced = (raw: IncomingMessage): boolean =>
    !(options.untracedPaths?.has(pathOf(raw)) ?? false) && (options.requireParent !== true || tracing.continuesTrace(raw.headers));
  // The span starts where Fastify makes the request's logger, so every line it logs — the
  // "incoming request" line included — carries the trace id.
  const started = new WeakMap<IncomingMessage, TraceSpan | null>();
  const start = (raw: IncomingMessage): TraceSpan | undefined => {
    if (!traced(raw)) return undefined;
    return tracing.startFromHeaders(`${raw.method ?? 'GET'}`, raw.headers, {
      'http.request.method': raw.method ?? 'GET',
      'url.path': pathOf(raw),
      'server.port': raw.socket.localPort ?? 0,
      'network.peer.address': raw.socket.remoteAddress ?? '',
    }, SpanKind.SERVER);
  };
  app.setChildLoggerFactory((logger, bindings, loggerOptions, raw) => {
    const span = start(raw as IncomingMessage);
    started.set(raw as IncomingMessage, span ?? null);
    return logger.child(span === undefined ? bindings : { ...bindings, trace_id: span.traceId, span_id: span.spanId }, loggerOptions);
  });
  app.addHook('onRequest', async (request, reply) => {
    const known = started.get(request.raw);
    started.delete(request.raw);
    const span = known === undefined ? start(request.raw) : (known ?? undefined);
    if (span === undefined) return;
    request.traceSpan = span;
    reply.raw.once('close', () => {
      const route = request.routeOptions.url;
      const status = reply.raw.statusCode;
      if (route !== undefined) span.rename(`${request.method} ${route}`).set('http.route', route);
      span.set('http.response.status_code', status);
      // A client that left before the response was complete.
      if (!reply.raw.writableFinished) span.set('ragway.client_aborted', true);
      if (status >= 500) span.set('error.type', String(status));
      span.end();
    });
  });
  // A server span is failed by what the server got wrong (5xx), not by a client's mistake.
  app.addHook('onError', async (request, _reply, error) => {
    if (((error as { statusCode?: number }).statusCode ?? 500) >= 500) request.traceSpan?.fail(error);
  });
}

function pathOf(raw: IncomingMessage): string {
  const url = raw.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
