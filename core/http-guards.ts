// Browser-facing defences, answered deliberately rather than left to chance:
//
// - CORS is off unless origins are configured. A request carrying an `Origin` that is not
//   allowed (and not this server's own) gets 403 before any work: a page on another site
//   can neither read answers nor write documents, even with a request the browser sends
//   without a preflight.
// - DNS rebinding: a page on evil.example can re-point its name at 127.0.0.1 and then talk
//   to a loopback-bound server "same-origin". Such a request still names evil.example in
//   `Host`, so while bound to loopback only localhost, 127.0.0.1, [::1] and configured
//   names are accepted (any port), as local model servers learned to do.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createError } from './errors.js';

export interface GuardOptions {
  /** Allowed origins (`https://app.example.com`), or `*`; empty turns CORS off. */
  corsOrigins: readonly string[];
  /** Host names accepted besides the loopback ones; undefined turns the Host check off. */
  allowedHosts: readonly string[] | undefined;
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];
const ALLOWED_METHODS = 'GET, POST, DELETE, OPTIONS';
const EXPOSED_HEADERS = 'retry-after, x-ragway-cache, x-ragway-cache-similarity';

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/^\[|\]$/g, '').toLowerCase();
  return name === 'localhost' || name === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/** "example.com:8080" → "example.com", "[::1]:8080" → "::1" (lower case). */
export function hostName(header: string): string {
  const value = header.trim().toLowerCase();
  if (value.startsWith('[')) return value.slice(1, value.indexOf(']') === -1 ? undefined : value.indexOf(']'));
  const colon = value.lastIndexOf(':');
  return colon === -1 ? value : value.slice(0, colon);
}

/** Origins as the browser sends them: scheme://host[:port], no path, lower case. */
function normalizeOrigin(origin: string): string {
  return origin.trim().replace(/\/+$/, '').toLowerCase();
}

/** Is `origin` this server itself, as addressed by the request's Host? */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    return new URL(origin).host === host.trim().toLowerCase();
  } catch {
    return false;
  }
}

export function installHttpGuards(app: FastifyInstance, options: GuardOptions): void {
  const origins = new Set(options.corsOrigins.map(normalizeOrigin).filter((origin) => origin !== ''));
  const anyOrigin = origins.has('*');
  const hosts =
    options.allowedHosts === undefined
      ? undefined
      : new Set([...LOOPBACK_NAMES, ...options.allowedHosts.map((name) => hostName(name))].filter((name) => name !== ''));

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const host = request.headers.host;
    if (hosts !== undefined && host !== undefined && !hosts.has(hostName(host))) {
      throw createError(
        'RAGWAY_ERR_HOST_NOT_ALLOWED',
        `this server listens on loopback and does not answer for host ${JSON.stringify(hostName(host))}; add it to RAGWAY_ALLOWED_HOSTS`,
        { param: 'host' },
      );
    }
    const origin = request.headers.origin;
    if (origin === undefined) return;
    const allowed = anyOrigin || origins.has(normalizeOrigin(origin));
    if (!allowed) {
      if (isSameOrigin(origin, host)) return;
      throw createError(
        'RAGWAY_ERR_ORIGIN_NOT_ALLOWED',
        `requests from pages of origin ${JSON.stringify(origin)} are not allowed; add it to RAGWAY_CORS_ORIGINS`,
        { param: 'origin' },
      );
    }
    reply.header('access-control-allow-origin', anyOrigin ? '*' : origin);
    reply.header('vary', 'origin');
    reply.header('access-control-expose-headers', EXPOSED_HEADERS);
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      // The origin is trusted by configuration, so whatever headers its page wants to send
      // (OpenAI's SDK adds its own x-stainless-* ones) are allowed.
      const requested = request.headers['access-control-request-headers'];
      reply.header('access-control-allow-methods', ALLOWED_METHODS);
      if (requested !== undefined) reply.header('access-control-allow-headers', requested);
      reply.header('access-control-max-age', '600');
      return reply.code(204).send();
    }
    return undefined;
  });
}
