// Fastify server options shared by the gateway and the shards: how long a client may take
// to send its request, how many connections it may hold, and the catalog's envelope on the
// paths Fastify answers without the app's error handler (malformed URLs, HTTP framing
// errors, timeouts). A few hundred slow clients (slowloris) are cut off by the header and
// request timeouts instead of holding the server's connections for ever.
import type { Socket } from 'node:net';
import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest, FastifyServerFactory } from 'fastify';
import { createError, type RagwayError } from './errors.js';
import { sendError, toRagwayError } from './http-errors.js';

export interface ClientLimits {
  /** Longest a client may take to send the request headers (also bounds a new connection that sends nothing). */
  headersTimeoutMs: number;
  /** Longest a client may take to send the whole request, body included; the response is not limited by it. */
  requestTimeoutMs: number;
  /** Longest an idle keep-alive connection is kept between requests. */
  keepAliveTimeoutMs: number;
}

/** The clientError answer: the envelope on the raw socket, then the connection is closed. */
export function clientErrorResponse(err: NodeJS.ErrnoException): string {
  let error: RagwayError;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    error = createError('RAGWAY_ERR_REQUEST_TIMEOUT', 'the request was not received in time; send headers and body without pauses');
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    error = createError('RAGWAY_ERR_HEADERS_TOO_LARGE', 'the request headers are larger than this server accepts');
  } else {
    error = createError('RAGWAY_ERR_INVALID_REQUEST', 'malformed HTTP request');
  }
  const body = JSON.stringify(error.toEnvelope());
  return (
    `HTTP/1.1 ${error.statusCode} ${STATUS_CODES[error.statusCode] ?? ''}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has nobody to answer; a destroyed one cannot be written.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) socket.write(clientErrorResponse(err));
  socket.destroy();
}

/** Answers a request itself and returns true, or returns false to hand it to Fastify. */
export type RequestInterceptor = (request: IncomingMessage, response: ServerResponse) => boolean;

/**
 * The HTTP server Fastify would create, with `intercept` ahead of Fastify's own request
 * handler (gateway/access/early-refusal.ts). Fastify leaves a factory's server as it is, so
 * the timeouts it sets on its own server (lib/server.js) are set here.
 */
function interceptingServer(intercept: RequestInterceptor): FastifyServerFactory<Server> {
  return (handler, options) => {
    const server = createServer((options['http'] ?? {}) as ServerOptions, (request, response) => {
      if (!intercept(request, response)) handler(request, response);
    });
    server.keepAliveTimeout = options['keepAliveTimeout'] as number;
    server.requestTimeout = options['requestTimeout'] as number;
    server.setTimeout(options['connectionTimeout'] as number);
    return server;
  };
}

/** The Fastify constructor options for these limits and error paths. */
export function serverOptions(limits: ClientLimits, intercept?: RequestInterceptor) {
  return {
    ...(intercept === undefined ? {} : { serverFactory: interceptingServer(intercept) }),
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks the two timeouts on this interval (30 s by default, which would let a slow
    // client stay that much longer than configured); a quarter of the shorter one, within
    // 100 ms – 1 s, keeps the overshoot small for little work.
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1_000, Math.max(100, Math.round(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4))),
    },
    clientErrorHandler: onClientError,
    frameworkErrors: (error: unknown, _request: FastifyRequest, reply: FastifyReply) => {
      sendError(reply, toRagwayError(error));
    },
  };
}
