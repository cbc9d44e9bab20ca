// Server-sent events on a hijacked Fastify reply. Headers leave with the first frame (one
// write instead of two; a stream with nothing to say yet still gets them after
// HEADERS_LINGER_MS); every frame is written as soon as it exists (no compression, no buffering, `X-Accel-Buffering: no` for
// nginx); when the client reads slowly, `send` waits for 'drain', so the producer — an
// upstream LLM stream — is read only as fast as the client consumes it. Idle streams get
// `: ping` comments so proxies do not time them out. A client that stops reading altogether
// is cut off after `stallTimeoutMs`: the connection is destroyed, which aborts the request's
// signal and with it the generation, so an unread stream holds nothing for long and buffers
// at most one frame beyond the socket's high-water mark (pings wait while it is full).
import type { FastifyReply } from 'fastify';

export interface SseOptions {
  /** Send a `: ping` comment after this long without a frame; 0 disables. */
  pingIntervalMs: number;
  /** Close the stream when the client has not taken a written frame for this long. */
  stallTimeoutMs: number;
}

/**
 * How long headers wait for a first frame to travel with. Every stream writes its first frame
 * within a few milliseconds of opening (sources, or an upstream's role chunk), so this only
 * bounds the odd stream whose producer stays quiet.
 */
const HEADERS_LINGER_MS = 20;

export class SseStream {
  readonly #reply: FastifyReply;
  readonly #pingIntervalMs: number;
  readonly #stallTimeoutMs: number;
  #ping: NodeJS.Timeout | undefined;
  #headersLinger: NodeJS.Timeout | undefined;
  /** Waiting for 'drain': nothing more is written until the client reads. */
  #blocked = false;
  #ended = false;

  constructor(reply: FastifyReply, options: SseOptions) {
    this.#reply = reply;
    this.#pingIntervalMs = options.pingIntervalMs;
    this.#stallTimeoutMs = options.stallTimeoutMs;
  }

  /** True once the client has gone or the stream was ended. */
  get closed(): boolean {
    return this.#ended || this.#reply.raw.destroyed || this.#reply.raw.writableEnded;
  }

  open(extraHeaders: Record<string, string> = {}): void {
    this.#reply.hijack();
    const raw = this.#reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      ...extraHeaders,
    });
    this.#headersLinger = setTimeout(() => {
      this.#headersLinger = undefined;
      if (!raw.destroyed && !raw.headersSent) raw.flushHeaders();
    }, HEADERS_LINGER_MS);
    this.#headersLinger.unref();
    // Small frames must leave now, not wait for Nagle's algorithm to batch them.
    raw.socket?.setNoDelay(true);
    this.#armPing();
  }

  /** Writes one event; resolves when the socket can take more (backpressure). */
  async send(data: string, event?: string): Promise<void> {
    const frame = `${event === undefined ? '' : `event: ${event}\n`}data: ${data}\n\n`;
    await this.#write(frame);
  }

  /**
   * Writes frames that are already encoded and complete (a transparent proxy's upstream
   * bytes). Returns undefined when the socket took them, else a promise to wait for before
   * writing more (backpressure): no promise at all on the common path.
   */
  writeFrames(frames: Buffer): Promise<void> | undefined {
    return this.#write(frames);
  }

  async comment(text: string): Promise<void> {
    // A ping only keeps an idle connection open; one the client is not reading needs none.
    if (this.#blocked) return;
    await this.#write(`: ${text}\n\n`);
  }

  /**
   * Ends the stream; `lastFrames` (complete, encoded frames) go out in the same write as the
   * end of the response.
   */
  end(lastFrames?: Buffer): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#ping);
    clearTimeout(this.#headersLinger);
    const raw = this.#reply.raw;
    if (raw.destroyed) return;
    if (lastFrames === undefined || lastFrames.length === 0 || raw.writableEnded) raw.end();
    else raw.end(lastFrames);
  }

  #write(frame: string | Buffer): Promise<void> | undefined {
    if (this.closed) return undefined;
    this.#armPing();
    if (this.#headersLinger !== undefined) {
      clearTimeout(this.#headersLinger);
      this.#headersLinger = undefined;
    }
    const raw = this.#reply.raw;
    if (raw.write(frame)) return undefined;
    this.#blocked = true;
    return new Promise<void>((resolve) => {
      const stalled = setTimeout(() => {
        // The client stopped reading: end it here rather than hold the frame (and the
        // generation behind it) for ever. 'close' follows and resolves the wait.
        raw.destroy();
      }, this.#stallTimeoutMs);
      const done = (): void => {
        clearTimeout(stalled);
        raw.off('drain', done);
        raw.off('close', done);
        this.#blocked = false;
        resolve();
      };
      raw.on('drain', done);
      raw.on('close', done);
    });
  }

  #armPing(): void {
    if (this.#pingIntervalMs <= 0) return;
    // One timer for the stream's life, pushed back on every write (refresh() re-arms it even
    // after it fired) rather than a new timer per frame.
    if (this.#ping !== undefined) {
      this.#ping.refresh();
      return;
    }
    this.#ping = setTimeout(() => {
      void this.comment('ping');
    }, this.#pingIntervalMs);
    this.#ping.unref();
  }
}
