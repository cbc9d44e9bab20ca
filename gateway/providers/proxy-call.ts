// One chat request forwarded to an LLM upstream as it came (retrieval off), read through
// undici's dispatch-handler API. The body's chunks go from the socket callback straight to the
// consumer's sink: no Readable stream, async iterator or promise per chunk in between, so what
// a transparent proxy costs per token is little more than its read and its write. That matters
// most when many streams start at once (every microsecond of per-request setup is paid by the
// streams behind it in the queue).
//
// Contract, as for the generator's other calls: every failure before the response headers
// rejects `startProxyCall` (status errors carry the upstream's message); after them a broken
// body rejects `pipe`. One timer guards the call: first-token until the headers, then idle
// between chunks (refreshed, not re-created, per chunk). A sink that returns a promise pauses
// the upstream until it settles (backpressure); a sink that throws or rejects, or the caller's
// signal, ends the upstream request.
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { abortError, isRagwayError } from '../../core/errors.js';

export type ChunkSink = (chunk: Buffer) => void | Promise<void>;

export type ProxyPhase = 'request' | 'stream';

export interface ProxyCallOptions {
  dispatcher: Dispatcher;
  path: string;
  headers: Record<string, string>;
  body: string;
  signal: AbortSignal;
  /** From sending the request to the response headers. */
  firstTokenTimeoutMs: number;
  /** Longest wait for the next body chunk. */
  idleTimeoutMs: number;
  /** How much of an error status's body is read for its message. */
  errorBodyLimitBytes: number;
  timeoutError(phase: ProxyPhase, chunks: number): Error;
  statusError(status: number, headers: IncomingHttpHeaders, text: string): Error;
  transportError(err: unknown, phase: ProxyPhase, chunks: number): Error;
}

export interface ProxyResponse {
  headers: IncomingHttpHeaders;
  /** Hands each body chunk to `sink` as it arrives; resolves at the end of the body. Call once. */
  pipe(sink: ChunkSink): Promise<void>;
}

export function startProxyCall(options: ProxyCallOptions): Promise<ProxyResponse> {
  if (options.signal.aborted) return Promise.reject(abortError(options.signal));
  return new Promise<ProxyResponse>((resolveHeaders, rejectHeaders) => {
    new ProxyHandler(options, resolveHeaders, rejectHeaders).dispatch();
  });
}

class ProxyHandler implements Dispatcher.DispatchHandler {
  readonly #options: ProxyCallOptions;
  readonly #resolveHeaders: (response: ProxyResponse) => void;
  readonly #rejectHeaders: (err: Error) => void;
  #controller: Dispatcher.DispatchController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #timedOut: Error | undefined;
  #phase: 'headers' | 'error-body' | 'body' | 'done' = 'headers';
  #status = 0;
  #responseHeaders: IncomingHttpHeaders = {};
  #errorBody: Buffer[] = [];
  #errorBodyBytes = 0;
  #chunks = 0;
  #sink: ChunkSink | undefined;
  /** Chunks that arrived before `pipe` attached its sink. */
  #early: Buffer[] = [];
  /** The sink's last write is waiting (backpressure): the upstream is paused until it settles. */
  #waiting = false;
  #ended = false;
  #failure: Error | undefined;
  #resolveBody: (() => void) | undefined;
  #rejectBody: ((err: Error) => void) | undefined;
  readonly #onCallerAbort = (): void => this.#abort(abortError(this.#options.signal));

  constructor(options: ProxyCallOptions, resolveHeaders: (response: ProxyResponse) => void, rejectHeaders: (err: Error) => void) {
    this.#options = options;
    this.#resolveHeaders = resolveHeaders;
    this.#rejectHeaders = rejectHeaders;
  }

  dispatch(): void {
    const options = this.#options;
    options.signal.addEventListener('abort', this.#onCallerAbort, { once: true });
    this.#arm(options.firstTokenTimeoutMs, 'request');
    try {
      options.dispatcher.dispatch({ method: 'POST', path: options.path, headers: options.headers, body: options.body }, this);
    } catch (err) {
      this.#fail(options.transportError(err, 'request', 0));
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#failure !== undefined) controller.abort(this.#failure);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx: the real status follows
    this.#status = statusCode;
    this.#responseHeaders = headers;
    if (statusCode >= 300) {
      this.#phase = 'error-body';
      return;
    }
    this.#phase = 'body';
    this.#arm(this.#options.idleTimeoutMs, 'stream');
    this.#resolveHeaders({ headers, pipe: (sink) => this.#pipe(sink) });
    // Until a sink is attached, arrivals wait in #early; pausing keeps that to what one read holds.
    if (this.#sink === undefined) controller.pause();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#timer?.refresh();
    if (this.#phase === 'error-body') {
      this.#errorBody.push(chunk);
      this.#errorBodyBytes += chunk.length;
      // Enough to quote the upstream's message; the rest is not worth reading.
      if (this.#errorBodyBytes >= this.#options.errorBodyLimitBytes) this.#abort(this.#statusFailure());
      return;
    }
    this.#chunks += 1;
    if (this.#sink === undefined) {
      this.#early.push(chunk);
      return;
    }
    this.#feed(controller, chunk);
  }

  onResponseEnd(): void {
    if (this.#phase === 'error-body') {
      // The response is complete (its connection goes back to the pool): nothing to abort.
      this.#fail(this.#statusFailure());
      return;
    }
    this.#ended = true;
    if (this.#sink !== undefined && !this.#waiting) this.#finish();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    const options = this.#options;
    const phase: ProxyPhase = this.#phase === 'body' ? 'stream' : 'request';
    let failure: Error;
    if (options.signal.aborted) failure = abortError(options.signal);
    else if (this.#timedOut !== undefined) failure = this.#timedOut;
    else if (this.#failure !== undefined) failure = this.#failure;
    else if (isRagwayError(err)) failure = err;
    else failure = options.transportError(err, phase, this.#chunks);
    this.#fail(failure);
  }

  #pipe(sink: ChunkSink): Promise<void> {
    if (this.#sink !== undefined) return Promise.reject(new Error('a proxied body can be piped once'));
    this.#sink = sink;
    return new Promise<void>((resolve, reject) => {
      this.#resolveBody = resolve;
      this.#rejectBody = reject;
      if (this.#failure !== undefined) {
        reject(this.#failure);
        return;
      }
      const early = this.#early;
      this.#early = [];
      const controller = this.#controller;
      // As one chunk: chunk boundaries mean nothing to the sink, and one write keeps order.
      if (controller !== undefined && early.length > 0) this.#feed(controller, early.length === 1 ? (early[0] as Buffer) : Buffer.concat(early));
      if (this.#waiting) return;
      if (this.#ended) this.#finish();
      else if (controller?.paused === true && this.#phase === 'body') controller.resume();
    });
  }

  #feed(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const sink = this.#sink as ChunkSink;
    let pending: void | Promise<void>;
    try {
      pending = sink(chunk);
    } catch (err) {
      this.#abort(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (pending === undefined) return;
    this.#waiting = true;
    controller.pause();
    pending.then(
      () => {
        this.#waiting = false;
        if (this.#ended) this.#finish();
        else if (this.#phase !== 'done') controller.resume();
      },
      (err: unknown) => this.#abort(err instanceof Error ? err : new Error(String(err))),
    );
  }

  #arm(ms: number, phase: ProxyPhase): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timedOut = this.#options.timeoutError(phase, this.#chunks);
      this.#abort(this.#timedOut);
    }, ms);
  }

  #statusFailure(): Error {
    const text = Buffer.concat(this.#errorBody).subarray(0, this.#options.errorBodyLimitBytes).toString('utf8');
    return this.#options.statusError(this.#status, this.#responseHeaders, text);
  }

  /** Ends the upstream request with `reason` (the failure everyone waiting sees). */
  #abort(reason: Error): void {
    if (this.#phase === 'done') return;
    this.#failure ??= reason;
    if (this.#controller !== undefined && !this.#controller.aborted) this.#controller.abort(reason);
    else this.#fail(this.#failure);
  }

  #finish(): void {
    if (this.#phase === 'done') return;
    this.#phase = 'done';
    this.#release();
    this.#resolveBody?.();
  }

  #fail(failure: Error): void {
    if (this.#phase === 'done') return;
    const beforeHeaders = this.#phase !== 'body';
    this.#phase = 'done';
    this.#failure = failure;
    this.#release();
    if (beforeHeaders) this.#rejectHeaders(failure);
    else this.#rejectBody?.(failure);
  }

  #release(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#options.signal.removeEventListener('abort', this.#onCallerAbort);
  }
}
