// A failure talking to one OpenAI-compatible upstream, and how transport errors read.
import { RagwayError, type ErrorCode, type RagwayErrorOptions } from '../../core/errors.js';
import { headerValue } from './openai-compatible.js';

/**
 * A failure talking to one upstream. `transient` says whether another upstream (or a retry)
 * could succeed where this one failed; it is false once deltas have reached the caller, because
 * retrying then would repeat text the client already has.
 */
export class UpstreamError extends RagwayError {
  /** The upstream's base URL. */
  readonly upstream: string;
  /** What went wrong, without the upstream's name ("answered 500: …"). */
  readonly reason: string;
  readonly transient: boolean;

  /** `options.message` replaces the default message, "upstream <upstream> <reason>". */
  constructor(code: ErrorCode, upstream: string, reason: string, transient: boolean, options: RagwayErrorOptions & { message?: string } = {}) {
    super(code, options.message ?? `upstream ${upstream} ${reason}`, options);
    this.upstream = upstream;
    this.reason = reason;
    this.transient = transient;
  }
}

export function isTransientUpstreamError(err: unknown): err is UpstreamError {
  return err instanceof UpstreamError && err.transient;
}

/** Retry-After as whole seconds (delta-seconds or an HTTP date), or retry-after-ms. */
export function parseRetryAfter(headers: Record<string, string | string[] | undefined>, now: number = Date.now()): number | undefined {
  const value = headerValue(headers['retry-after'])?.trim();
  if (value !== undefined && value !== '') {
    if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value));
    const date = Date.parse(value);
    if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - now) / 1000));
  }
  const ms = headerValue(headers['retry-after-ms'])?.trim();
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms)) return Math.ceil(Number(ms) / 1000);
  return undefined;
}

export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** "connect ECONNREFUSED 127.0.0.1:8000", "other side closed (UND_ERR_SOCKET)", … */
export function describeCause(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    // Happy-eyeballs connects (localhost → ::1 and 127.0.0.1) fail with an AggregateError whose
    // own message is empty; the per-address errors carry the story.
    return [...new Set(err.errors.map(describeCause))].join('; ');
  }
  if (err instanceof Error) {
    const code = errorCode(err);
    const message = err.message || err.name;
    return code !== undefined && !message.includes(code) ? `${message} (${code})` : message;
  }
  return String(err);
}
