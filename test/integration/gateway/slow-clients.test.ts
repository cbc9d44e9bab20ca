// Slow and hostile clients (issue 14.5, issue 13 "slow and hostile clients"): a few hundred
// slowloris connections must not starve the gateway, slow uploads time out, idle connections
// are capped, and an event stream nobody reads is closed with its generation stopped. Real
// shard processes, the real model, a scripted LLM upstream, real sockets; the timeouts are
// short here so the suite stays fast.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig, type Config } from '../../../gateway/config.js';
import { startLlmStack, type LlmStack } from '../../helpers/llm-stack.js';
import { rawExchange, type RawExchange } from '../../helpers/raw-http.js';

const HEADERS_TIMEOUT_MS = 3_000;
const REQUEST_TIMEOUT_MS = 3_000;
const STALL_TIMEOUT_MS = 500;
const SLOW_CONNECTIONS = 300;
const MODEL = 'scripted-llm';

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

describe('slow and hostile clients', () => {
  let stack: LlmStack;
  let app: FastifyInstance;
  let port: number;
  let base: string;
  const config = (overrides: Partial<Config> = {}): Config =>
    loadConfig({}, {
      shards: stack.shards.spec,
      logLevel: 'silent',
      headersTimeoutMs: HEADERS_TIMEOUT_MS,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      sseStallTimeoutMs: STALL_TIMEOUT_MS,
      llmUrl: `${stack.upstream.url}/v1`,
      llmModel: MODEL,
      ...overrides,
    });

  before(async () => {
    stack = await startLlmStack('slow-clients', { shards: 2 });
    app = await buildApp(config(), { embeddingBackend: stack.backend, defaultMetrics: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    const seeded = await fetch(`${base}/v1/documents`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ documents: [{ id: 'cache.md', text: 'Set a time to live on cache entries with the ttl option.' }] }),
    });
    assert.equal(seeded.status, 200);
  });

  after(async () => {
    await app?.close();
    await stack?.close();
  });

  it(`serves valid requests while ${SLOW_CONNECTIONS} slowloris connections send one header byte a second, and closes those at the header timeout`, async (t) => {
    const search = async (i: number): Promise<number> => {
      const started = performance.now();
      const response = await fetch(`${base}/v1/search`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: `ttl for cache entries ${i % 7}`, k: 3, cache: { mode: 'bypass' } }),
      });
      assert.equal(response.status, 200);
      await response.arrayBuffer();
      return performance.now() - started;
    };
    // The same requests with no slow connections, for comparison (same process, same load).
    const baseline: number[] = [];
    for (let i = 0; i < 60; i += 1) baseline.push(await search(i));

    const head = 'GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\nX-Padding: aaaaaaaaaaaaaaaa\r\n\r\n';
    let open = 0;
    const timers: NodeJS.Timeout[] = [];
    const slow: Promise<RawExchange>[] = [];
    for (let i = 0; i < SLOW_CONNECTIONS; i += 1) {
      slow.push(
        rawExchange(port, undefined, {
          closeAfterMs: HEADERS_TIMEOUT_MS + 10_000,
          onConnect: (socket: Socket) => {
            open += 1;
            let sent = 0;
            const drip = (): void => {
              if (socket.destroyed || sent >= head.length) return;
              socket.write(head[sent] as string);
              sent += 1;
            };
            drip();
            const timer = setInterval(drip, 1_000);
            timers.push(timer);
            socket.once('close', () => {
              open -= 1;
              clearInterval(timer);
            });
          },
        }),
      );
    }
    while (open < SLOW_CONNECTIONS) await new Promise((resolve) => setTimeout(resolve, 10));
    const slowStarted = performance.now();

    const latencies: number[] = [];
    const openDuring: number[] = [];
    for (let i = 0; i < 200; i += 1) {
      latencies.push(await search(i));
      openDuring.push(open);
      if (performance.now() - slowStarted > HEADERS_TIMEOUT_MS - 500) break;
    }
    // The first valid requests ran with every slow connection still open.
    assert.ok(openDuring.length >= 10, `only ${openDuring.length} requests before the slow connections timed out`);
    assert.deepEqual(openDuring.slice(0, 10), Array(10).fill(SLOW_CONNECTIONS));

    const ended = await Promise.all(slow);
    timers.forEach(clearInterval);
    for (const exchange of ended) {
      assert.equal(exchange.status, 408, exchange.text.slice(0, 200));
      assert.equal((exchange.json as { error: { code: string } }).error.code, 'RAGWAY_ERR_REQUEST_TIMEOUT');
      // Node checks the timeout every ~quarter of it: closed within a second of it, never early.
      assert.ok(exchange.closedAfterMs >= HEADERS_TIMEOUT_MS - 50, `closed early, after ${exchange.closedAfterMs} ms`);
      assert.ok(exchange.closedAfterMs < HEADERS_TIMEOUT_MS + 3_000, `still open after ${exchange.closedAfterMs} ms`);
    }
    const summary = (values: readonly number[]): string => {
      const sorted = [...values].sort((a, b) => a - b);
      return `n=${sorted.length} p50=${percentile(sorted, 50).toFixed(2)} ms p99=${percentile(sorted, 99).toFixed(2)} ms max=${(sorted.at(-1) as number).toFixed(2)} ms`;
    };
    const line = `uncached /v1/search latency: alone ${summary(baseline)}; with ${SLOW_CONNECTIONS} slowloris connections open ${summary(latencies)}`;
    t.diagnostic(line);
    console.log(line);
  });

  it('times out a body sent at one byte a second, and a body shorter than its Content-Length', async () => {
    const dripping = rawExchange(port, 'POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{', {
      closeAfterMs: REQUEST_TIMEOUT_MS + 10_000,
      onConnect: (socket) => {
        const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write(' ')), 1_000);
        socket.once('close', () => clearInterval(timer));
      },
    });
    const short = rawExchange(
      port,
      `POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n${'{"documents":[{"text":"'.padEnd(22, 'x')}`,
      { closeAfterMs: REQUEST_TIMEOUT_MS + 10_000 },
    );
    for (const exchange of await Promise.all([dripping, short])) {
      assert.equal(exchange.status, 408, exchange.text.slice(0, 200));
      assert.equal((exchange.json as { error: { code: string } }).error.code, 'RAGWAY_ERR_REQUEST_TIMEOUT');
      assert.ok(exchange.closedAfterMs >= REQUEST_TIMEOUT_MS - 50 && exchange.closedAfterMs < REQUEST_TIMEOUT_MS + 3_000, `closed after ${exchange.closedAfterMs} ms`);
    }
  });

  it('caps open connections: past RAGWAY_MAX_CONNECTIONS new ones are closed as they arrive', async () => {
    const capped = await buildApp(config({ maxConnections: 20 }), { embeddingBackend: stack.backend, defaultMetrics: false });
    try {
      await capped.listen({ host: '127.0.0.1', port: 0 });
      const cappedPort = (capped.server.address() as AddressInfo).port;
      const sockets: Socket[] = [];
      let closed = 0;
      for (let i = 0; i < 40; i += 1) {
        const socket = connect(cappedPort, '127.0.0.1');
        socket.on('error', () => {});
        socket.on('close', () => (closed += 1));
        sockets.push(socket);
        await new Promise((resolve) => socket.once('connect', resolve).once('close', resolve));
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(closed, 20, `${closed} of 40 idle connections closed; 20 should be`);
      sockets.forEach((socket) => socket.destroy());
    } finally {
      await capped.close();
    }
  });

  it('closes an event stream that is never read and stops its generation', async () => {
    const tokens = Array.from({ length: 4_000 }, (_, i) => `${i} ${'lorem ipsum '.repeat(1_300)}`);
    stack.upstream.resetScript({ tokens });
    const body = JSON.stringify({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'tell me about cache ttl' }] });
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    // Paused: the socket's buffers fill and nothing is ever read.
    socket.pause();
    await new Promise((resolve) => socket.once('connect', resolve));
    const sent = performance.now();
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    try {
      const abortedAfter = await stack.upstream.waitForAbort(15_000, sent);
      assert.ok(abortedAfter >= STALL_TIMEOUT_MS, `aborted after ${abortedAfter} ms`);
      const request = stack.upstream.requests.at(-1);
      assert.ok(request !== undefined);
      // Backpressure held: only what fits in the socket buffers left the stack.upstream.
      assert.ok(request.tokenSentAt.length < tokens.length, `${request.tokenSentAt.length} of ${tokens.length} tokens were sent`);
    } finally {
      socket.destroy();
      stack.upstream.resetScript();
    }
    const health = await fetch(`${base}/v1/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'cache ttl', k: 1 }),
    });
    assert.equal(health.status, 200);
    assert.deepEqual(((await health.json()) as { coverage: unknown }).coverage, { shards_total: 2, shards_ok: 2, partial: false });
  });
});
