// Regression tests for the hostile-input defects found by fuzzing a running gateway (issue
// 14), each with the exact request that broke it, against real shard processes and the real
// model. After all of them the cluster must still be whole: every replica ready, a valid
// search with full coverage.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { freePort } from '../../../cli/free-port.js';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';
import { rawExchange, uploadThenRead } from '../../helpers/raw-http.js';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '../../../shards/protocol.js';

interface ErrorBody {
  error: { message: string; type: string; code: string; param: string | null };
}

/** `open` × n, then `inner`, then `close` × n: e.g. [[[…1…]]] nested n deep. */
const nested = (n: number, open: string, close: string, inner = '1'): string => open.repeat(n) + inner + close.repeat(n);

function assertEnvelope(body: unknown, code: string): ErrorBody['error'] {
  const error = (body as ErrorBody).error;
  assert.equal(typeof error, 'object', `not an envelope: ${JSON.stringify(body)}`);
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(error.code, code, JSON.stringify(body));
  // Never internals: no stack frames, file paths or stack-overflow text reach a client.
  assert.doesNotMatch(error.message, /Maximum call stack|\bat .+\.js:\d+|\/[\w.-]+\/[\w.-]+\.(?:js|ts)\b/);
  return error;
}

describe('hostile input (issue 14) over real shard processes', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let shards: TestShards;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;
  let base: string;
  let port: number;

  const post = async (path: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) => {
    const response = await fetch(base + path, { method: 'POST', headers, body });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: response.status, json, headers: response.headers };
  };

  before(async () => {
    dir = await tempDir('hostile');
    backend = await loadDefaultBackend();
    shards = await startShards(2, dir.path, backend.dimensions);
    app = await buildApp(
      loadConfig({}, {
        shards: shards.spec,
        logLevel: 'silent',
        maxBodyBytes: 256 * 1024,
        maxMetadataBytes: 4 * 1024,
        maxFilterBytes: 4 * 1024,
        allowedHosts: 'ragway.internal',
      }),
      { embeddingBackend: backend, defaultMetrics: false },
    );
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    const seeded = await post(
      '/v1/documents',
      JSON.stringify({
        documents: [
          { id: 'cache.md', text: 'Set a time to live on cache entries with the ttl option.', metadata: { topic: 'cache', year: 2024 } },
          { id: 'trains.md', text: 'The train leaves the central station every morning.', metadata: { topic: 'travel', year: 2020 } },
        ],
      }),
    );
    assert.equal(seeded.status, 200, JSON.stringify(seeded.json));
  });

  after(async () => {
    await app?.close();
    await shards?.stop();
    await backend?.close();
    await dir?.remove();
  });

  it('1: metadata nested 10,000 deep is a 400 at the edge, three times over, and takes no replica out', async () => {
    const request = `{"documents":[{"id":"deep","text":"hello","metadata":{"a":${nested(10_000, '[', ']')}}}]}`;
    for (let i = 0; i < 3; i += 1) {
      const response = await post('/v1/documents', request);
      assert.equal(response.status, 400);
      const error = assertEnvelope(response.json, 'RAGWAY_ERR_INVALID_JSON');
      assert.match(error.message, /deeper than 32 levels/);
    }
    // Oversized metadata (it would be copied into every chunk) is refused too, naming the field.
    const big = await post('/v1/documents', JSON.stringify({ documents: [{ id: 'big', text: 'hello', metadata: { blob: 'x'.repeat(5_000) } }] }));
    assert.equal(big.status, 400);
    assert.equal(assertEnvelope(big.json, 'RAGWAY_ERR_INVALID_REQUEST').param, 'documents[0].metadata');
    const cluster = (await (await fetch(`${base}/v1/cluster`)).json()) as {
      shards: { replicas: { state: string; consecutive_failures: number }[] }[];
    };
    for (const shard of cluster.shards) {
      for (const replica of shard.replicas) {
        assert.equal(replica.state, 'ready');
        assert.equal(replica.consecutive_failures, 0);
      }
    }
  });

  it('2: filters nested 10,000 deep are a 400 (not 500) on /v1/search, /v1/query and chat', async () => {
    const filters = [
      nested(10_000, '{"$and":[', ']}', '{"a":1}'),
      `{"a":${nested(10_000, '[', ']')}}`,
      nested(10_000, '{"a":', '}'),
    ];
    for (const filter of filters) {
      for (const [path, body] of [
        ['/v1/search', `{"query":"x","filter":${filter}}`],
        ['/v1/query', `{"query":"x","filter":${filter}}`],
        ['/v1/chat/completions', `{"model":"ragway-extractive","messages":[{"role":"user","content":"x"}],"rag":{"filter":${filter}}}`],
      ] as const) {
        const response = await post(path, body);
        assert.equal(response.status, 400, `${path}: ${JSON.stringify(response.json)}`);
        assertEnvelope(response.json, 'RAGWAY_ERR_INVALID_JSON');
      }
    }
    const big = await post('/v1/search', JSON.stringify({ query: 'x', filter: { id: { $in: Array.from({ length: 1_000 }, (_, i) => `id-${i}`) } } }));
    assert.equal(big.status, 400);
    assert.equal(assertEnvelope(big.json, 'RAGWAY_ERR_INVALID_REQUEST').param, 'filter');
  });

  it('2: non-finite numbers are a 400 naming the field, in filters and in metadata', async () => {
    const filter = await post('/v1/search', '{"query":"x","filter":{"a":{"$gt":1e999}}}');
    assert.equal(filter.status, 400);
    assert.equal(assertEnvelope(filter.json, 'RAGWAY_ERR_INVALID_REQUEST').param, 'filter.a.$gt');
    const metadata = await post('/v1/documents', '{"documents":[{"id":"inf","text":"hello","metadata":{"a":1e999}}]}');
    assert.equal(metadata.status, 400);
    assert.equal(assertEnvelope(metadata.json, 'RAGWAY_ERR_INVALID_REQUEST').param, 'documents[0].metadata.a');
    const negative = await post('/v1/query', '{"query":"x","temperature":-1e999}');
    assert.equal(negative.status, 400);
    assert.equal(assertEnvelope(negative.json, 'RAGWAY_ERR_INVALID_REQUEST').param, 'temperature');
    const stored = await fetch(`${base}/v1/documents/inf`);
    assert.equal(stored.status, 404, 'nothing was written');
  });

  it('4: a cross-site text/plain write is refused and writes nothing', async () => {
    const body = JSON.stringify({ documents: [{ id: 'evil', text: 'planted by a web page' }] });
    const crossSite = await post('/v1/documents', body, { 'content-type': 'text/plain;charset=UTF-8', origin: 'http://evil.example' });
    assert.equal(crossSite.status, 403);
    assertEnvelope(crossSite.json, 'RAGWAY_ERR_ORIGIN_NOT_ALLOWED');
    // Without an Origin, the content types a browser may send without a preflight are still refused.
    for (const type of ['text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const response = await post('/v1/documents', body, { 'content-type': type });
      assert.equal(response.status, 415, type);
      const error = assertEnvelope(response.json, 'RAGWAY_ERR_UNSUPPORTED_MEDIA_TYPE');
      assert.match(error.message, /content-type: application\/json/);
    }
    const untyped = await rawExchange(port, `POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    assert.equal(untyped.status, 415);
    assert.match((untyped.json as ErrorBody).error.message, /got no content-type/);
    assert.equal((await fetch(`${base}/v1/documents/evil`)).status, 404, 'nothing was written');
    const plusJson = await post('/v1/search', JSON.stringify({ query: 'ttl cache', k: 1 }), { 'content-type': 'application/vnd.ragway+json; charset=utf-8' });
    assert.equal(plusJson.status, 200, '+json is JSON');
  });

  it('4: CORS is off by default: no allow-origin header, preflights refused', async () => {
    const preflight = await fetch(`${base}/v1/search`, {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.equal(preflight.status, 403);
    assert.equal(preflight.headers.get('access-control-allow-origin'), null);
    const sameOrigin = await post('/v1/search', JSON.stringify({ query: 'ttl', k: 1 }), { 'content-type': 'application/json', origin: base });
    assert.equal(sameOrigin.status, 200, 'a page of this server itself is same-origin');
  });

  it('4: CORS answers configured origins only', async () => {
    const cors = await buildApp(loadConfig({}, { shards: shards.spec, logLevel: 'silent', corsOrigins: 'https://app.example.com' }), {
      embeddingBackend: backend,
      defaultMetrics: false,
    });
    try {
      const preflight = await cors.inject({
        method: 'OPTIONS',
        url: '/v1/chat/completions',
        headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-stainless-os' },
      });
      assert.equal(preflight.statusCode, 204);
      assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example.com');
      assert.equal(preflight.headers['access-control-allow-headers'], 'content-type, x-stainless-os');
      assert.match(String(preflight.headers['access-control-allow-methods']), /POST/);
      const get = await cors.inject({ method: 'GET', url: '/v1/models', headers: { origin: 'https://app.example.com' } });
      assert.equal(get.statusCode, 200);
      assert.equal(get.headers['access-control-allow-origin'], 'https://app.example.com');
      assert.equal(get.headers.vary, 'origin');
      const other = await cors.inject({ method: 'GET', url: '/v1/models', headers: { origin: 'https://other.example.com' } });
      assert.equal(other.statusCode, 403);
    } finally {
      await cors.close();
    }
  });

  it('4: bound to loopback, Host must be a loopback or configured name (DNS rebinding)', async () => {
    const status = async (host: string) => (await rawExchange(port, `GET /v1/models HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).status;
    for (const host of ['localhost', 'localhost:9999', '127.0.0.1', `127.0.0.1:${port}`, '[::1]:8080', 'ragway.internal:8080']) {
      assert.equal(await status(host), 200, host);
    }
    const rebound = await rawExchange(port, 'GET /v1/models HTTP/1.1\r\nHost: evil.example:8080\r\nConnection: close\r\n\r\n');
    assert.equal(rebound.status, 403);
    assertEnvelope(rebound.json, 'RAGWAY_ERR_HOST_NOT_ALLOWED');
    // A shard on loopback refuses a rebound name as well.
    const shard = new URL(shards.urls[0] as string);
    const atShard = await rawExchange(Number(shard.port), `GET /v1/stats HTTP/1.1\r\nHost: evil.example\r\n${PROTOCOL_HEADER}: ${PROTOCOL_VERSION}\r\nConnection: close\r\n\r\n`);
    assert.equal(atShard.status, 403);
  });

  it('6: framework and client-error paths answer with the envelope', async () => {
    const badUrl = await fetch(`${base}/v1/documents/%ZZ`);
    assert.equal(badUrl.status, 400);
    assertEnvelope(await badUrl.json(), 'RAGWAY_ERR_INVALID_REQUEST');
    const longId = await fetch(`${base}/v1/documents/${'a'.repeat(600)}`);
    assert.equal(longId.status, 400);
    assert.equal(assertEnvelope(await longId.json(), 'RAGWAY_ERR_INVALID_REQUEST').param, '*');
    // An id the gateway accepts (≤ 480) but longer than Fastify's default param limit (100)
    // reaches the shard's document route as a plain 404, not a 414/502.
    const mediumId = await fetch(`${base}/v1/documents/${'b'.repeat(300)}`);
    assert.equal(mediumId.status, 404);
    assertEnvelope(await mediumId.json(), 'RAGWAY_ERR_NOT_FOUND');
    // Straight at a shard, an over-long path segment is a 414 in the envelope.
    const shardLong = await fetch(`${shards.urls[0]}/v1/documents/default/${'c'.repeat(3_000)}`, { headers: { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) } });
    assert.equal(shardLong.status, 414);
    assertEnvelope(await shardLong.json(), 'RAGWAY_ERR_URI_TOO_LONG');
    const framing = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n');
    assert.equal(framing.status, 400);
    assertEnvelope(framing.json, 'RAGWAY_ERR_INVALID_REQUEST');
    const garbage = await rawExchange(port, '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n');
    assert.equal(garbage.status, 400);
    assertEnvelope(garbage.json, 'RAGWAY_ERR_INVALID_REQUEST');
    const headers = await rawExchange(port, `GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'h'.repeat(20_000)}\r\n\r\n`);
    assert.equal(headers.status, 431);
    assertEnvelope(headers.json, 'RAGWAY_ERR_HEADERS_TOO_LARGE');
  });

  it('8: a gzip body is refused with 415 before it is read', async () => {
    const response = await post('/v1/search', JSON.stringify({ query: 'x' }), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    assert.equal(response.status, 415);
    assert.equal(assertEnvelope(response.json, 'RAGWAY_ERR_UNSUPPORTED_MEDIA_TYPE').param, 'content-encoding');
  });

  it('8: a body over the limit sent without Expect: 100-continue gets the 413, not a reset', async () => {
    // The body keeps coming after the server has decided; the client reads only once it is sent.
    const body = Buffer.alloc(2 * 1024 * 1024, 'x');
    for (const chunked of [false, true]) {
      const framing = chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.length}`;
      const exchange = await uploadThenRead(port, `POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${framing}\r\n\r\n`, body, { chunked });
      assert.equal(exchange.error, undefined, `connection ended with ${exchange.error} (${framing})`);
      assert.equal(exchange.status, 413, framing);
      assertEnvelope(exchange.json, 'RAGWAY_ERR_BODY_TOO_LARGE');
    }
    // Per-route limits: a search body is held to RAGWAY_MAX_QUERY_BODY_BYTES (1 MiB by default)…
    const search = await post('/v1/search', JSON.stringify({ query: 'x'.repeat(60_000), filter: { a: 'y'.repeat(1_100_000) } }));
    assert.equal(search.status, 413);
  });

  it('8: a shard given x-ragway-deadline-ms: -1 answers 400', async () => {
    const response = await fetch(`${shards.urls[0]}/v1/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), 'x-ragway-deadline-ms': '-1' },
      body: JSON.stringify({ queries: [{ vector: Buffer.alloc(400).toString('base64'), k: 1, namespace: 'default' }] }),
    });
    assert.equal(response.status, 400);
    assert.equal(assertEnvelope(await response.json(), 'RAGWAY_ERR_INVALID_REQUEST').param, 'x-ragway-deadline-ms');
    const gateway = await post('/v1/search', JSON.stringify({ query: 'ttl' }), { 'content-type': 'application/json', 'x-ragway-deadline-ms': '-1' });
    assert.equal(gateway.status, 400);
  });

  it('7: client-facing 503s name the shard by index, never its URL or the cause; the log has both with the request id', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const broken = await buildApp(loadConfig({}, { shards: `${shards.urls[0]};${dead}`, logLevel: 'error', replicaEjectFailures: 100 }), {
      embeddingBackend: backend,
      defaultMetrics: false,
      logger: { level: 'error', stream },
    });
    try {
      // Enough documents that some land on the dead shard-1.
      const documents = Array.from({ length: 8 }, (_, i) => ({ id: `doc-${i}`, text: `document number ${i} about caches` }));
      const response = await broken.inject({ method: 'POST', url: '/v1/documents', payload: { documents } });
      assert.equal(response.statusCode, 503, response.body);
      const error = assertEnvelope(response.json(), 'RAGWAY_ERR_SHARD_UNAVAILABLE');
      assert.match(error.message, /shard-1 replica 0/);
      assert.doesNotMatch(error.message, /http:|127\.0\.0\.1|ECONNREFUSED|connect /);
      const requestId = /request id (\S+)\)$/.exec(error.message)?.[1];
      assert.ok(requestId !== undefined, error.message);
      const logged = lines.map((line) => JSON.parse(line) as { reqId?: string; msg: string }).find((line) => line.reqId === requestId);
      assert.ok(logged !== undefined, 'the failure is logged under the request id the client was told');
      assert.ok(logged.msg.includes(dead), `the log names the address: ${logged.msg}`);
      // A partial search labels the missing shard the same way.
      const partial = (await broken.inject({ method: 'POST', url: '/v1/search', payload: { query: 'cache', k: 1 } })).json();
      assert.equal(partial.coverage.partial, true);
      const reason = partial.coverage.missing[0].reason as string;
      assert.match(reason, /shard-1/);
      assert.doesNotMatch(reason, /http:|127\.0\.0\.1|ECONNREFUSED/);
    } finally {
      await broken.close();
    }
  });

  it('afterwards every replica is ready and a valid search has full coverage', async () => {
    const cluster = (await (await fetch(`${base}/v1/cluster`)).json()) as {
      shards_total: number;
      shards_ready: number;
      shards: { replicas: { state: string; consecutive_failures: number }[] }[];
    };
    assert.equal(cluster.shards_ready, cluster.shards_total);
    assert.ok(cluster.shards.every((shard) => shard.replicas.every((replica) => replica.state === 'ready' && replica.consecutive_failures === 0)));
    const search = await post('/v1/search', JSON.stringify({ query: 'how long do cache entries live', k: 2, cache: { mode: 'bypass' } }));
    assert.equal(search.status, 200);
    const body = search.json as { results: { document_id: string }[]; coverage: unknown };
    assert.deepEqual(body.coverage, { shards_total: 2, shards_ok: 2, partial: false });
    assert.equal(body.results[0]?.document_id, 'cache.md');
  });
});
