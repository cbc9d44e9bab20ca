// HTTP on a bare TCP socket, for what fetch cannot send: malformed framing, a body that
// stops early, one byte a second, a Host header of our choosing. Reads until the server
// closes the connection (or `closeAfterMs`), and says how it ended.
import { connect, type Socket } from 'node:net';

export interface RawExchange {
  /** Everything the server sent. */
  text: string;
  /** Status of the first response, if one came. */
  status: number | undefined;
  /** The first response's body parsed as JSON, if it was JSON. */
  json: unknown;
  /** The socket error (ECONNRESET…) if the connection ended with one. */
  error: string | undefined;
  /** ms from connect to close. */
  closedAfterMs: number;
}

export function parseResponse(text: string): { status: number | undefined; json: unknown } {
  const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
  const bodyStart = text.indexOf('\r\n\r\n');
  let json: unknown;
  if (bodyStart !== -1) {
    const body = text.slice(bodyStart + 4);
    const start = body.indexOf('{');
    const end = body.lastIndexOf('}');
    try {
      json = start === -1 ? undefined : JSON.parse(body.slice(start, end + 1));
    } catch {
      json = undefined;
    }
  }
  return { status: match === null ? undefined : Number(match[1]), json };
}

export interface RawOptions {
  /** Close from our side after this long (default 10 s). */
  closeAfterMs?: number;
  /** Stop reading (and close) once one whole response with a Content-Length has arrived. */
  untilResponse?: boolean;
  /** Called with the socket once connected, to write on it over time. */
  onConnect?: (socket: Socket) => void;
}

function isComplete(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) return false;
  const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
  return length !== null && Buffer.byteLength(text.slice(end + 4)) >= Number(length[1]);
}

/** Sends `data` (if any), then reads until the connection ends. */
export function rawExchange(port: number, data: string | Buffer | undefined, options: RawOptions = {}): Promise<RawExchange> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const timer = setTimeout(() => socket.destroy(), options.closeAfterMs ?? 10_000);
    socket.on('connect', () => {
      if (data !== undefined) socket.write(data);
      options.onConnect?.(socket);
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (options.untilResponse === true && isComplete(Buffer.concat(chunks).toString('utf8'))) socket.destroy();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({ text, ...parseResponse(text), error, closedAfterMs: performance.now() - started });
    });
  });
}

/**
 * Sends `head` and then `body` in 64 KiB pieces without reading anything (as curl does
 * without `Expect: 100-continue`), and only then reads the answer. A server that closes while
 * the body is still arriving makes the writes fail (EPIPE/ECONNRESET) before any answer is read.
 */
export function uploadThenRead(port: number, head: string, body: Buffer, options: { chunked?: boolean } = {}): Promise<RawExchange> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    socket.pause();
    const chunks: Buffer[] = [];
    let error: string | undefined;
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (isComplete(Buffer.concat(chunks).toString('utf8'))) socket.destroy();
    });
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({ text, ...parseResponse(text), error, closedAfterMs: performance.now() - started });
    });
    socket.on('connect', async () => {
      socket.write(head);
      const piece = 64 * 1024;
      for (let offset = 0; offset < body.length && !socket.destroyed; offset += piece) {
        const part = body.subarray(offset, offset + piece);
        const data = options.chunked === true ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]) : part;
        if (!socket.write(data)) await new Promise((done) => socket.once('drain', done).once('close', done));
        await new Promise((done) => setTimeout(done, 1));
      }
      if (options.chunked === true && !socket.destroyed) socket.write('0\r\n\r\n');
      socket.resume();
      setTimeout(() => socket.destroy(), 5_000).unref();
    });
  });
}
