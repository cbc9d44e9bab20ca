// Generators backed by an OpenAI-compatible LLM server. What differs between such servers is a
// ProviderDescriptor (openai-compatible.ts), i.e. data; the transport below (keep-alive pool,
// timeouts, error mapping, backpressure, abort) is shared by all.
//
// The stream contract with the rest of the gateway (provider.ts):
// - before the first delta every failure is thrown from the first `next()`, as an UpstreamError
//   that says whether another upstream could do better (`transient`), so FailoverGenerator can
//   move on and the route can still answer with a proper status;
// - after it, a broken upstream stream is thrown from the iterator, never a silent end;
// - deltas are yielded as their chunk is read and the body is read only as fast as the
//   consumer asks, so a slow client slows the upstream instead of growing a buffer here;
// - a consumer that stops (return()/break) or a caller abort closes the upstream connection,
import { Pool, type Dispatcher } from 'undici';
import { abortError, createError, isRagwayError, type ErrorCode, type RagwayError, type RagwayErrorOptions } from '../../core/errors.js';
import { errorMessageOf, excerpt, headerValue, OPENAI_COMPATIBLE, parseJson, type ProviderDescriptor } from './openai-compatible.js';
import type { FinishReason, GenerationEvent, GenerationRequest, Generator, ProxiedChat, Usage } from './provider.js';
import { startProxyCall } from './proxy-call.js';
import { SseParser } from './sse-parser.js';
import { describeCause, errorCode, parseRetryAfter, UpstreamError } from './upstream-errors.js';
import type { TraceHeaders } from '../../core/tracing.js';

export interface UpstreamGeneratorOptions {
  /** The model id clients use. */
  id: string;
  /** The model name sent to the upstream. */
  upstreamModel: string;
  /** Base URL, e.g. http://127.0.0.1:8000 or https://api.example.com/v1 (a trailing /v1 is not doubled). */
  url: string;
  apiKey?: string;
  /** Default OPENAI_COMPATIBLE. */
  descriptor?: ProviderDescriptor;
  /** `owned_by` in /v1/models; default the descriptor's name. */
  ownedBy?: string;
  connectTimeoutMs: number;
  /** From sending the request to the first content delta. */
  firstTokenTimeoutMs: number;
  /** Longest wait for the next chunk once tokens flow. */
  idleTimeoutMs: number;
  /** Keep-alive connections to this upstream. Default 64. */
  connections?: number;
}

const DEFAULT_CONNECTIONS = 64;
// Enough of an error body to show the upstream's message; the rest is not read.
const ERROR_BODY_LIMIT_BYTES = 16 * 1024;
// After [DONE] the rest of the body is read (normally just the chunked terminator) so the
// connection goes back to the pool; a server that keeps it open longer than this loses it.
const DRAIN_LIMIT_MS = 1_000;

type Phase = 'request' | 'stream';

export class UpstreamGenerator implements Generator {
  readonly id: string;
  readonly ownedBy: string;
  readonly upstreamModel: string;
  /** The base URL as errors name it: origin plus any path prefix, no trailing slash. */
  readonly url: string;
  readonly #descriptor: ProviderDescriptor;
  readonly #apiKey: string | undefined;
  readonly #path: string;
  readonly #pool: Pool;
  readonly #connectTimeoutMs: number;
  readonly #firstTokenTimeoutMs: number;
  readonly #idleTimeoutMs: number;

  constructor(options: UpstreamGeneratorOptions) {
    const parsed = new URL(options.url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', `LLM upstream URL must be http(s), got ${parsed.href}`);
    }
    this.#descriptor = options.descriptor ?? OPENAI_COMPATIBLE;
    const basePath = parsed.pathname.replace(/\/+$/, '');
    this.url = parsed.origin + basePath;
    this.#path = joinOverlapping(basePath, this.#descriptor.chatPath);
    this.id = options.id;
    this.ownedBy = options.ownedBy ?? this.#descriptor.name;
    this.upstreamModel = options.upstreamModel;
    this.#apiKey = options.apiKey;
    this.#connectTimeoutMs = options.connectTimeoutMs;
    this.#firstTokenTimeoutMs = options.firstTokenTimeoutMs;
    this.#idleTimeoutMs = options.idleTimeoutMs;
    this.#pool = new Pool(parsed.origin, {
      connections: options.connections ?? DEFAULT_CONNECTIONS,
      connectTimeout: options.connectTimeoutMs,
      // The first-token and idle timers below own these waits: undici's would count time the
      // consumer spends not reading, and could not tell the two cases apart in the error.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  stream(request: GenerationRequest, signal: AbortSignal): AsyncIterable<GenerationEvent> {
    return this.#run(request, signal);
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }

  /**
   * Forwards a chat body as it is but for `model`, and hands back the response body as it
   * arrives (retrieval off: ragway is a transparent proxy). The first-token timer runs until
   * the response headers, the idle timer between body chunks; an error status is mapped
   * like a generation's, so failover and the client's status work the same.
   */
  async proxy(body: Readonly<Record<string, unknown>>, signal: AbortSignal, trace?: TraceHeaders): Promise<ProxiedChat> {
    const streamed = body.stream === true;
    const idleTimeoutMs = this.#idleTimeoutMs;
    const response = await startProxyCall({
      dispatcher: this.#pool,
      path: this.#path,
      headers: { ...this.#descriptor.headers(this.#apiKey), ...trace, accept: streamed ? 'text/event-stream' : 'application/json' },
      // `model` keeps its place among the client's fields; only its value is ours.
      body: JSON.stringify({ ...body, model: this.upstreamModel }),
      signal,
      firstTokenTimeoutMs: this.#firstTokenTimeoutMs,
      idleTimeoutMs,
      errorBodyLimitBytes: ERROR_BODY_LIMIT_BYTES,
      timeoutError: (phase, chunks) =>
        phase === 'request'
          ? this.#error('RAGWAY_ERR_UPSTREAM_TIMEOUT', `did not answer within ${this.#firstTokenTimeoutMs} ms`, true)
          : this.#error('RAGWAY_ERR_UPSTREAM_TIMEOUT', `sent nothing for ${idleTimeoutMs} ms after ${chunks} chunks`, false),
      statusError: (status, headers, text) => this.#statusError(status, headers, text),
      transportError: (err, phase, chunks) => this.#transportError(err, phase, phase === 'stream' ? chunks + 1 : 0),
    });
    return {
      upstreamModel: this.upstreamModel,
      contentType: headerValue(response.headers['content-type']) ?? 'application/json',
      pipe: response.pipe,
    };
  }

  async *#run(request: GenerationRequest, signal: AbortSignal): AsyncGenerator<GenerationEvent, void, undefined> {
    if (signal.aborted) throw abortError(signal);
    // One controller for everything that ends the upstream request: the caller's abort, our
    // timers, and the consumer leaving. undici destroys the socket when it fires mid-response.
    const call = new UpstreamCall(signal);
    const { controller } = call;
    const arm = call.arm.bind(call);
    const disarm = call.disarm.bind(call);

    let deltas = 0;
    // Set once the response body has been read to its end: only then may the connection stay.
    let drained = false;
    const fail = (err: unknown, phase: Phase): RagwayError => {
      if (signal.aborted) return abortError(signal);
      if (call.timedOut !== undefined) return call.timedOut;
      if (isRagwayError(err)) return err;
      return this.#transportError(err, phase, deltas);
    };

    try {
      arm(this.#firstTokenTimeoutMs, () => this.#error('RAGWAY_ERR_UPSTREAM_TIMEOUT', `sent no token within ${this.#firstTokenTimeoutMs} ms`, true));
      let response: Dispatcher.ResponseData;
      try {
        response = await this.#pool.request({
          method: 'POST',
          path: this.#path,
          headers: request.trace === undefined ? this.#descriptor.headers(this.#apiKey) : { ...this.#descriptor.headers(this.#apiKey), ...request.trace },
          body: JSON.stringify(this.#descriptor.buildBody(request, this.upstreamModel)),
          signal: controller.signal,
        });
      } catch (err) {
        throw fail(err, 'request');
      }
      const reader = response.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      const read = async (phase: Phase): Promise<IteratorResult<Buffer>> => {
        try {
          return await reader.next();
        } catch (err) {
          throw fail(err, phase);
        }
      };

      if (response.statusCode < 200 || response.statusCode >= 300) {
        const text = await readLimited(read, ERROR_BODY_LIMIT_BYTES);
        throw this.#statusError(response.statusCode, response.headers, text);
      }
      const contentType = headerValue(response.headers['content-type']) ?? '';
      if (!contentType.toLowerCase().includes('text/event-stream')) {
        const text = await readLimited(read, ERROR_BODY_LIMIT_BYTES);
        const message = errorMessageOf(parseJson(text));
        throw this.#error(
          'RAGWAY_ERR_UPSTREAM_UNAVAILABLE',
          `answered ${response.statusCode} with ${contentType || 'no content-type'} instead of an event stream${message !== undefined ? `: ${message}` : ''}`,
          true,
        );
      }

      const parser = new SseParser();
      let finishReason: FinishReason | undefined;
      let usage: Usage | undefined;
      let sawDone = false;
      reading: for (;;) {
        // Before the first delta the first-token timer runs; after it, only the wait for the
        // next chunk is timed — not the time the consumer takes between pulls.
        if (deltas > 0) {
          arm(this.#idleTimeoutMs, () =>
            this.#error('RAGWAY_ERR_UPSTREAM_TIMEOUT', `sent nothing for ${this.#idleTimeoutMs} ms after ${deltas} deltas`, false),
          );
        }
        const chunk = await read('stream');
        if (deltas > 0) disarm();
        const events = chunk.done ? parser.end() : parser.push(chunk.value);
        for (const event of events) {
          const parsed = this.#descriptor.parseEvent(event.data, event.event);
          if (parsed.error !== undefined) throw this.#streamError(parsed.error, deltas);
          if (parsed.finishReason !== undefined) finishReason = parsed.finishReason;
          if (parsed.usage !== undefined) usage = parsed.usage;
          if (parsed.text !== undefined && parsed.text.length > 0) {
            if (deltas === 0) disarm();
            deltas++;
            yield { type: 'delta', text: parsed.text };
            if (signal.aborted) throw abortError(signal);
          }
          if (parsed.done === true) {
            sawDone = true;
            break reading;
          }
        }
        if (chunk.done) break;
      }
      disarm();

      if (!sawDone && finishReason === undefined) {
        throw this.#error(
          'RAGWAY_ERR_UPSTREAM_UNAVAILABLE',
          `ended the stream without [DONE] or a finish_reason after ${deltas} deltas`,
          deltas === 0,
        );
      }
      yield { type: 'done', finishReason: finishReason ?? 'stop', ...(usage !== undefined ? { usage } : {}) };

      if (sawDone) {
        // Keep the connection reusable; if the rest does not come promptly, give it up.
        arm(Math.min(this.#idleTimeoutMs, DRAIN_LIMIT_MS), () => this.#error('RAGWAY_ERR_UPSTREAM_TIMEOUT', 'kept the stream open after [DONE]', false));
        try {
          while (!(await reader.next()).done);
          drained = true;
        } catch {
          // The answer is complete; a connection lost while draining only costs a reconnect.
        }
      } else {
        drained = true;
      }
    } finally {
      call.release();
      // Anything but a fully read response (a consumer that stopped, an error, a drain given
      // up) must close the connection: that is what tells the upstream to stop generating.
      if (!drained) controller.abort(new Error('the stream consumer stopped reading'));
    }
  }

  #error(code: ErrorCode, reason: string, transient: boolean, options?: RagwayErrorOptions): UpstreamError {
    return new UpstreamError(code, this.url, reason, transient, options);
  }

  #transportError(err: unknown, phase: Phase, deltas: number): UpstreamError {
    const cause = describeCause(err);
    const code = errorCode(err);
    if (code === 'UND_ERR_CONNECT_TIMEOUT') {
      return this.#error('RAGWAY_ERR_UPSTREAM_TIMEOUT', `did not accept a connection within ${this.#connectTimeoutMs} ms`, true, { cause: err });
    }
    if (phase === 'request') return this.#error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `did not answer: ${cause}`, true, { cause: err });
    if (deltas === 0) {
      return this.#error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `broke the stream before the first token: ${cause}`, true, { cause: err });
    }
    return this.#error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `broke the stream after ${deltas} deltas: ${cause}`, false, { cause: err });
  }

  #statusError(status: number, headers: Dispatcher.ResponseData['headers'], text: string): UpstreamError {
    const message = errorMessageOf(parseJson(text)) ?? excerpt(text);
    const detail = message.length > 0 ? `: ${message}` : '';
    if (status === 429) {
      const retryAfterSeconds = parseRetryAfter(headers);
      return this.#error('RAGWAY_ERR_UPSTREAM_RATE_LIMITED', `rate-limited ragway (HTTP 429)${detail}`, true, {
        ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
      });
    }
    if (status === 401 || status === 403) {
      // Our key, our configuration: not the client's fault. Another upstream has its own key,
      // so it is worth trying.
      return this.#error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `rejected ragway's API key (HTTP ${status})${detail}`, true);
    }
    if (status === 404) {
      // Almost always a wrong base URL or model name in our configuration, not a bad request.
      return this.#error(
        'RAGWAY_ERR_UPSTREAM_UNAVAILABLE',
        `answered 404 for POST ${this.#path} with model "${this.upstreamModel}"${detail}`,
        true,
      );
    }
    if (status === 408) return this.#error('RAGWAY_ERR_UPSTREAM_TIMEOUT', `answered 408${detail}`, true);
    if (status >= 500) return this.#error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `answered ${status}${detail}`, true);
    if (status >= 400) return this.#error('RAGWAY_ERR_UPSTREAM_REJECTED', `rejected the request (HTTP ${status})${detail}`, false);
    return this.#error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `answered an unexpected HTTP ${status}${detail}`, true);
  }

  #streamError(error: { message: string; status?: number }, deltas: number): UpstreamError {
    const status = error.status;
    if (deltas > 0) return this.#error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `failed mid-stream after ${deltas} deltas: ${error.message}`, false);
    if (status === 429) return this.#error('RAGWAY_ERR_UPSTREAM_RATE_LIMITED', `rate-limited ragway: ${error.message}`, true);
    if (status !== undefined && status >= 400 && status < 500 && status !== 401 && status !== 403 && status !== 404 && status !== 408) {
      return this.#error('RAGWAY_ERR_UPSTREAM_REJECTED', `rejected the request (HTTP ${status}): ${error.message}`, false);
    }
    return this.#error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `failed before the first token: ${error.message}`, true);
  }
}

/**
 * Joins a base path and an endpoint path without repeating the segments they share:
 * "/v1" + "/v1/chat/completions" → "/v1/chat/completions", "/openai/v1" + the same →
 * "/openai/v1/chat/completions", "" + the same → unchanged.
 */
export function joinOverlapping(basePath: string, endpoint: string): string {
  const base = basePath.split('/').filter((s) => s.length > 0);
  const tail = endpoint.split('/').filter((s) => s.length > 0);
  for (let overlap = Math.min(base.length, tail.length); overlap > 0; overlap--) {
    const suffix = base.slice(base.length - overlap);
    if (suffix.every((segment, i) => segment === tail[i])) {
      return `/${[...base, ...tail.slice(overlap)].join('/')}`;
    }
  }
  return `/${[...base, ...tail].join('/')}`;
}

async function readLimited(read: (phase: Phase) => Promise<IteratorResult<Buffer>>, limit: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  while (size < limit) {
    const chunk = await read('stream');
    if (chunk.done) break;
    parts.push(chunk.value);
    size += chunk.value.length;
  }
  return Buffer.concat(parts).subarray(0, limit).toString('utf8');
}

/**
 * What ends one upstream call: an AbortController linked to the caller's signal, and one
 * re-armable timer (first token, then idle between chunks) whose expiry aborts the call with
 * the timeout error it was armed with — kept so the failure is reported as that timeout.
 */
class UpstreamCall {
  readonly controller = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #timedOut: UpstreamError | undefined;
  readonly #signal: AbortSignal;
  readonly #onCallerAbort = (): void => this.controller.abort(this.#signal.reason);

  constructor(signal: AbortSignal) {
    this.#signal = signal;
    signal.addEventListener('abort', this.#onCallerAbort, { once: true });
  }

  get timedOut(): UpstreamError | undefined {
    return this.#timedOut;
  }

  arm(ms: number, error: () => UpstreamError): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timedOut = error();
      this.controller.abort(this.#timedOut);
    }, ms);
  }

  disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The call is over: no timer, and the caller's signal no longer holds a listener. */
  release(): void {
    this.disarm();
    this.#signal.removeEventListener('abort', this.#onCallerAbort);
  }
}
