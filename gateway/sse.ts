// Server-sent events on a hijacked Fastify reply. Headers go out at once; every frame is
// written as soon as it exists (no compression, no buffering, `X-Accel-Buffering: no` for
// nginx); when the client reads slowly, `send` waits for 'drain', so the producer — an
// upstream LLM stream — is read only as fast as the client consumes it. Idle streams get
// `: ping` comments so proxies do not time them out.
import type { FastifyReply } from 'fastify';

export interface SseOptions {
  /** Send a `: ping` comment after this long without a frame; 0 disables. */
  pingIntervalMs: number;
}

export class SseStream {
  readonly #reply: FastifyReply;
  readonly #pingIntervalMs: number;
  #ping: NodeJS.Timeout | undefined;
  #ended = false;

  constructor(reply: FastifyReply, options: SseOptions) {
    this.#reply = reply;
    this.#pingIntervalMs = options.pingIntervalMs;
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
    raw.flushHeaders();
    // Small frames must leave now, not wait for Nagle's algorithm to batch them.
    raw.socket?.setNoDelay(true);
    this.#armPing();
  }

  /** Writes one event; resolves when the socket can take more (backpressure). */
  async send(data: string, event?: string): Promise<void> {
    const frame = `${event === undefined ? '' : `event: ${event}\n`}data: ${data}\n\n`;
    await this.#write(frame);
  }

  async comment(text: string): Promise<void> {
    await this.#write(`: ${text}\n\n`);
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#ping);
    if (!this.#reply.raw.destroyed) this.#reply.raw.end();
  }

  async #write(frame: string): Promise<void> {
    if (this.closed) return;
    this.#armPing();
    const raw = this.#reply.raw;
    if (raw.write(frame)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        raw.off('drain', done);
        raw.off('close', done);
        resolve();
      };
      raw.on('drain', done);
      raw.on('close', done);
    });
  }

  #armPing(): void {
    if (this.#pingIntervalMs <= 0) return;
    clearTimeout(this.#ping);
    this.#ping = setTimeout(() => {
      void this.comment('ping');
    }, this.#pingIntervalMs);
    this.#ping.unref();
  }
}
