// startProxyCall against a real HTTP server whose every response the test scripts: chunks in
// order, status errors with their message (a huge error body included), first-token and idle
// timeouts, a sink that makes the upstream wait, and every way a call can end early (caller
// abort, a sink that throws, a refused connection) closing the upstream connection.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { startProxyCall, type ProxyCallOptions, type ProxyPhase } from '../../../../gateway/providers/proxy-call.js';
import { deferred } from '../../../helpers/deferred.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

class Failure extends Error {
  constructor(
    readonly kind: 'timeout' | 'status' | 'transport',
    readonly detail: string,
  ) {
    super(`${kind}: ${detail}`);
  }
}

describe('startProxyCall', () => {
  let server: Server;
  let pool: Pool;
  let handle: Handler = (_req, res) => {
    res.end();
  };
  /** Resolved with each response's 'close' and whether it had finished. */
  let closed = deferred<boolean>();

  before(async () => {
    server = createServer((req, res) => {
      res.on('close', () => closed.resolve(res.writableFinished));
      void Promise.resolve(handle(req, res)).catch(() => res.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });

  after(async () => {
    await pool.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function options(overrides: Partial<ProxyCallOptions> = {}): ProxyCallOptions {
    closed = deferred<boolean>();
    return {
      dispatcher: pool,
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json' },
      body: '{"stream":true}',
      signal: new AbortController().signal,
      firstTokenTimeoutMs: 2_000,
      idleTimeoutMs: 2_000,
      errorBodyLimitBytes: 1_024,
      timeoutError: (phase: ProxyPhase, chunks: number) => new Failure('timeout', `${phase} after ${chunks} chunks`),
      statusError: (status, _headers, text) => new Failure('status', `${status} ${text}`),
      transportError: (err, phase) => new Failure('transport', `${phase}: ${(err as Error).message}`),
      ...overrides,
    };
  }

  const failure = (kind: Failure['kind'], detail?: RegExp) => (err: unknown) =>
    err instanceof Failure && err.kind === kind && (detail === undefined || detail.test(err.detail));

  it('hands every chunk to the sink in order and resolves at the end of the body', async () => {
    handle = async (req, res) => {
      let body = '';
      for await (const chunk of req) body += String(chunk);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (let i = 0; i < 5; i += 1) {
        res.write(`data: ${i} ${body}\n\n`);
        await sleep(5);
      }
      res.end();
    };
    const response = await startProxyCall(options());
    assert.equal(response.headers['content-type'], 'text/event-stream');
    let text = '';
    await response.pipe((chunk) => {
      text += chunk.toString('utf8');
    });
    assert.equal(text, [0, 1, 2, 3, 4].map((i) => `data: ${i} {"stream":true}\n\n`).join(''));
    assert.equal(await closed.promise, true);
  });

  it('a sink that returns a promise is never called again before it settles, and loses nothing', async () => {
    handle = (_req, res) => {
      res.writeHead(200);
      // 2 MiB in one go: far more than one socket read, so the upstream must wait for the sink.
      for (let i = 0; i < 512; i += 1) res.write(Buffer.alloc(4_096, i % 256));
      res.end();
    };
    const response = await startProxyCall(options());
    let bytes = 0;
    let busy = false;
    let overlapped = false;
    await response.pipe(async (chunk) => {
      if (busy) overlapped = true;
      busy = true;
      bytes += chunk.length;
      await sleep(1);
      busy = false;
    });
    assert.equal(overlapped, false);
    assert.equal(bytes, 512 * 4_096);
  });

  it('rejects with the status error, quoting the body, before any sink exists', async () => {
    handle = (_req, res) => {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '3' });
      res.end('{"error":{"message":"slow down"}}');
    };
    await assert.rejects(startProxyCall(options()), failure('status', /^429 \{"error":\{"message":"slow down"\}\}$/));
  });

  it('reads no more of an error body than its limit, and still rejects (no hang)', async () => {
    handle = (_req, res) => {
      res.writeHead(500);
      // Never ends: only the limit may end the wait.
      res.write('x'.repeat(4_096));
    };
    await assert.rejects(startProxyCall(options()), failure('status', /^500 x{1024}$/));
    assert.equal(await closed.promise, false, 'the rest of the error body is not waited for');
  });

  it('times out before the headers with the first-token timeout', async () => {
    handle = () => undefined; // never answers
    await assert.rejects(startProxyCall(options({ firstTokenTimeoutMs: 100 })), failure('timeout', /^request after 0 chunks$/));
    assert.equal(await closed.promise, false);
  });

  it('times out between chunks with the idle timeout, counting what came', async () => {
    handle = (_req, res) => {
      res.writeHead(200);
      res.write('data: 1\n\n');
      res.write('data: 2\n\n');
    };
    const response = await startProxyCall(options({ idleTimeoutMs: 150 }));
    const chunks: string[] = [];
    await assert.rejects(
      response.pipe((chunk) => {
        chunks.push(chunk.toString('utf8'));
      }),
      failure('timeout', /^stream after \d chunks$/),
    );
    assert.equal(chunks.join(''), 'data: 1\n\ndata: 2\n\n');
    assert.equal(await closed.promise, false);
  });

  it("the caller's abort mid-body rejects the pipe with an abort error and closes the upstream", async () => {
    handle = (_req, res) => {
      res.writeHead(200);
      res.write('data: 1\n\n');
    };
    const controller = new AbortController();
    const response = await startProxyCall(options({ signal: controller.signal }));
    const piped = response.pipe(() => {
      controller.abort(new Error('client went away'));
    });
    await assert.rejects(piped, /aborted/);
    assert.equal(await closed.promise, false);
  });

  it('a sink that throws ends the call with its error and closes the upstream', async () => {
    handle = (_req, res) => {
      res.writeHead(200);
      res.write('data: 1\n\n');
    };
    const response = await startProxyCall(options());
    await assert.rejects(
      response.pipe(() => {
        throw new Error('sink broke');
      }),
      /sink broke/,
    );
    assert.equal(await closed.promise, false);
  });

  it('an already aborted signal never dispatches', async () => {
    let called = false;
    handle = (_req, res) => {
      called = true;
      res.end();
    };
    const controller = new AbortController();
    controller.abort(new Error('too late'));
    await assert.rejects(startProxyCall(options({ signal: controller.signal })), /aborted|too late/);
    await sleep(50);
    assert.equal(called, false);
  });

  it('a refused connection is a transport error of the request phase', async () => {
    const refused = new Pool('http://127.0.0.1:1', { connectTimeout: 1_000 });
    try {
      await assert.rejects(startProxyCall({ ...options(), dispatcher: refused }), failure('transport', /^request: /));
    } finally {
      await refused.close();
    }
  });
});
