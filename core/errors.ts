// The one error catalog. Every 4xx/5xx that ragway returns — from the gateway or a shard —
// is built here, so callers match on `err.code` and clients always get the same envelope:
// {"error":{"message","type","code","param"}} (OpenAI style, docs/architecture.md §5.1).

export interface ErrorSpec {
  readonly statusCode: number;
  readonly type: string;
  /**
   * A 5xx that is the server working as designed (load shedding), not a failure: it is not
   * logged as an error (under overload that would be thousands of lines a second) and its
   * message, written for clients, is sent as it is.
   */
  readonly shedsLoad?: boolean;
}

export const ERRORS = {
  RAGWAY_ERR_INVALID_REQUEST: { statusCode: 400, type: 'invalid_request_error' },
  RAGWAY_ERR_INVALID_JSON: { statusCode: 400, type: 'invalid_request_error' },
  RAGWAY_ERR_INVALID_FILTER: { statusCode: 400, type: 'invalid_request_error' },
  RAGWAY_ERR_INPUT_TOO_LONG: { statusCode: 400, type: 'invalid_request_error' },
  RAGWAY_ERR_PROTOCOL_MISMATCH: { statusCode: 400, type: 'invalid_request_error' },
  RAGWAY_ERR_UNAUTHORIZED: { statusCode: 401, type: 'authentication_error' },
  RAGWAY_ERR_NAMESPACE_FORBIDDEN: { statusCode: 403, type: 'permission_error' },
  /** The key is valid but lacks the scope (read, write, admin) the route needs. */
  RAGWAY_ERR_FORBIDDEN: { statusCode: 403, type: 'permission_error' },
  /** A browser page from an origin CORS does not allow (RAGWAY_CORS_ORIGINS). */
  RAGWAY_ERR_ORIGIN_NOT_ALLOWED: { statusCode: 403, type: 'permission_error' },
  /** A Host header naming no allowed name on a loopback-bound server (DNS rebinding). */
  RAGWAY_ERR_HOST_NOT_ALLOWED: { statusCode: 403, type: 'permission_error' },
  RAGWAY_ERR_NOT_FOUND: { statusCode: 404, type: 'not_found_error' },
  RAGWAY_ERR_NAMESPACE_NOT_FOUND: { statusCode: 404, type: 'not_found_error' },
  RAGWAY_ERR_MODEL_NOT_FOUND: { statusCode: 404, type: 'invalid_request_error' },
  /** The upstream LLM refused our request as invalid (e.g. context too long); its message is passed on. */
  RAGWAY_ERR_UPSTREAM_REJECTED: { statusCode: 400, type: 'invalid_request_error' },
  RAGWAY_ERR_UPSTREAM_RATE_LIMITED: { statusCode: 429, type: 'rate_limit_error' },
  RAGWAY_ERR_UNSUPPORTED_MEDIA_TYPE: { statusCode: 415, type: 'invalid_request_error' },
  RAGWAY_ERR_BODY_TOO_LARGE: { statusCode: 413, type: 'invalid_request_error' },
  /** The client did not send its headers or body within the server's timeouts. */
  RAGWAY_ERR_REQUEST_TIMEOUT: { statusCode: 408, type: 'invalid_request_error' },
  RAGWAY_ERR_URI_TOO_LONG: { statusCode: 414, type: 'invalid_request_error' },
  RAGWAY_ERR_HEADERS_TOO_LARGE: { statusCode: 431, type: 'invalid_request_error' },
  RAGWAY_ERR_OVERLOADED: { statusCode: 429, type: 'rate_limit_error' },
  /** A key's own request or token budget is spent for now (Retry-After says when it refills). */
  RAGWAY_ERR_RATE_LIMITED: { statusCode: 429, type: 'rate_limit_error' },
  RAGWAY_ERR_CLIENT_CLOSED: { statusCode: 499, type: 'client_closed_request' },
  RAGWAY_ERR_INTERNAL: { statusCode: 500, type: 'server_error' },
  RAGWAY_ERR_SHARD_ERROR: { statusCode: 502, type: 'server_error' },
  /** Every configured upstream failed to connect, answered 5xx, or broke its stream. */
  RAGWAY_ERR_UPSTREAM_UNAVAILABLE: { statusCode: 502, type: 'server_error' },
  RAGWAY_ERR_NOT_READY: { statusCode: 503, type: 'server_error' },
  /** Admission control: this route class is at its concurrency limit and its queue is full. */
  RAGWAY_ERR_SATURATED: { statusCode: 503, type: 'server_error', shedsLoad: true },
  RAGWAY_ERR_SHARD_UNAVAILABLE: { statusCode: 503, type: 'server_error' },
  RAGWAY_ERR_DEADLINE_EXCEEDED: { statusCode: 504, type: 'timeout_error' },
  /** An upstream did not connect, send its first token, or send its next chunk in time. */
  RAGWAY_ERR_UPSTREAM_TIMEOUT: { statusCode: 504, type: 'timeout_error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorEnvelope {
  error: { message: string; type: string; code: string; param: string | null };
}

export interface RagwayErrorOptions {
  param?: string | null;
  cause?: unknown;
  /** Seconds, sent as Retry-After with 429 and 503. */
  retryAfterSeconds?: number;
}

export class RagwayError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly type: string;
  readonly param: string | null;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options: RagwayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RagwayError';
    this.code = code;
    this.statusCode = ERRORS[code].statusCode;
    this.type = ERRORS[code].type;
    this.param = options.param ?? null;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  toEnvelope(): ErrorEnvelope {
    return { error: { message: this.message, type: this.type, code: this.code, param: this.param } };
  }
}

export function createError(code: ErrorCode, message: string, options?: RagwayErrorOptions): RagwayError {
  return new RagwayError(code, message, options);
}

export function isRagwayError(err: unknown): err is RagwayError {
  return err instanceof RagwayError;
}

/** Rebuilds a RagwayError from an envelope received over HTTP (e.g. from a shard). */
export function errorFromEnvelope(body: unknown, fallbackMessage: string): RagwayError | undefined {
  if (typeof body !== 'object' || body === null || !('error' in body)) return undefined;
  const inner = (body as { error: unknown }).error;
  if (typeof inner !== 'object' || inner === null) return undefined;
  const { code, message, param } = inner as { code?: unknown; message?: unknown; param?: unknown };
  if (typeof code !== 'string' || !(code in ERRORS)) return undefined;
  return new RagwayError(code as ErrorCode, typeof message === 'string' ? message : fallbackMessage, {
    param: typeof param === 'string' ? param : null,
  });
}

/** The abort reason as a RagwayError, so an aborted request never surfaces as a 500. */
export function abortError(signal: AbortSignal): RagwayError {
  const reason: unknown = signal.reason;
  if (isRagwayError(reason)) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return createError('RAGWAY_ERR_DEADLINE_EXCEEDED', 'the request deadline passed', { cause: reason });
  }
  return createError('RAGWAY_ERR_CLIENT_CLOSED', 'the request was aborted', { cause: reason });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/**
 * Resolves with `promise`, or rejects with the abort error as soon as `signal` aborts —
 * for work that cannot itself be cancelled (the caller stops waiting; the work is abandoned).
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal));
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
