// Several upstreams serving one model, tried in order (docs/architecture.md §6.9). An upstream that
// fails transiently before producing anything — cannot connect, times out before its first
// token, answers 5xx or 429 — hands the request to the next one. Once an upstream has yielded
// an event the answer is committed to it: its later failures reach the caller as they are,
// because switching would repeat or contradict text the client already has. A non-transient
// error (the upstream rejected the request itself) is the same everywhere, so it is thrown at once.
import { abortError, type RagwayError } from '../../core/errors.js';
import { isTransientUpstreamError, UpstreamError } from './upstream-errors.js';
import type { GenerationEvent, GenerationRequest, Generator, ProxiedChat } from './provider.js';
import type { TraceHeaders } from '../../core/tracing.js';

export interface FailoverGeneratorOptions {
  /** Default: the first generator's id. */
  id?: string;
  /** Default: the first generator's ownedBy. */
  ownedBy?: string;
}

export class FailoverGenerator implements Generator {
  readonly id: string;
  readonly ownedBy: string;
  readonly #generators: readonly Generator[];

  constructor(generators: readonly Generator[], options: FailoverGeneratorOptions = {}) {
    const first = generators[0];
    if (first === undefined) throw new Error('FailoverGenerator needs at least one generator');
    this.#generators = [...generators];
    this.id = options.id ?? first.id;
    this.ownedBy = options.ownedBy ?? first.ownedBy;
  }

  stream(request: GenerationRequest, signal: AbortSignal): AsyncIterable<GenerationEvent> {
    return this.#run(request, signal);
  }

  /** Only when every member can proxy; a member that answered is committed, as in `stream`. */
  get proxy(): ((body: Readonly<Record<string, unknown>>, signal: AbortSignal, trace?: TraceHeaders) => Promise<ProxiedChat>) | undefined {
    if (!this.#generators.every((generator) => generator.proxy !== undefined)) return undefined;
    return async (body, signal, trace) => {
      const failures: RagwayError[] = [];
      for (const generator of this.#generators) {
        if (signal.aborted) throw abortError(signal);
        try {
          return await (generator.proxy as NonNullable<Generator['proxy']>).call(generator, body, signal, trace);
        } catch (err) {
          if (signal.aborted) throw abortError(signal);
          if (!isTransientUpstreamError(err)) throw err;
          failures.push(err);
        }
      }
      throw allFailed(failures);
    };
  }

  async *#run(request: GenerationRequest, signal: AbortSignal): AsyncGenerator<GenerationEvent, void, undefined> {
    const failures: RagwayError[] = [];
    for (const generator of this.#generators) {
      if (signal.aborted) throw abortError(signal);
      const iterator = generator.stream(request, signal)[Symbol.asyncIterator]();
      let first: IteratorResult<GenerationEvent>;
      try {
        first = await iterator.next();
      } catch (err) {
        if (signal.aborted) throw abortError(signal);
        if (!isTransientUpstreamError(err)) throw err;
        failures.push(err);
        continue;
      }
      if (first.done === true) return;
      // Committed: from here on this upstream's events and errors are the answer's.
      let finished = false;
      try {
        yield first.value;
        for (;;) {
          const next = await iterator.next();
          if (next.done === true) break;
          yield next.value;
        }
        finished = true;
      } finally {
        // A consumer that stopped early must close the upstream request too.
        if (!finished) await iterator.return?.();
      }
      return;
    }
    throw allFailed(failures);
  }
}

/**
 * "all N upstreams failed: url1: reason; url2: reason" — RATE_LIMITED with the soonest
 * Retry-After when any upstream was rate-limited (a retry after it is likely to succeed, and
 * clients back off on 429), else the code they share when they all failed the same way (all
 * timed out: TIMEOUT), else UPSTREAM_UNAVAILABLE. Transient, so groups can be nested. A group
 * of one passes its upstream's error on unchanged.
 */
function allFailed(failures: readonly RagwayError[]): RagwayError {
  const only = failures[0];
  if (failures.length === 1 && only !== undefined) return only;
  const reasons = failures.map((f) => (f instanceof UpstreamError ? `${f.upstream}: ${f.reason}` : f.message)).join('; ');
  const upstreams = failures.map((f) => (f instanceof UpstreamError ? f.upstream : '?')).join(', ');
  const codes = new Set(failures.map((f) => f.code));
  const [shared] = codes;
  const code = codes.has('RAGWAY_ERR_UPSTREAM_RATE_LIMITED')
    ? 'RAGWAY_ERR_UPSTREAM_RATE_LIMITED'
    : codes.size === 1 && shared !== undefined
      ? shared
      : 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE';
  const retryAfters = failures.map((f) => f.retryAfterSeconds).filter((s): s is number => s !== undefined);
  const retryAfterSeconds = code === 'RAGWAY_ERR_UPSTREAM_RATE_LIMITED' && retryAfters.length > 0 ? Math.min(...retryAfters) : undefined;
  return new UpstreamError(code, upstreams, `failed (${reasons})`, true, {
    message: `all ${failures.length} upstreams failed: ${reasons}`,
    cause: new AggregateError(failures, reasons),
    ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
  });
}
