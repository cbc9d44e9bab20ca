// Property-based fuzzing of every route (fast-check): at least 10,000 generated malformed
// requests — broken JSON, wrong types, unknown fields, odd content types, bad and missing
// keys, path tricks — against a gateway with API keys on and real shard processes behind it.
// None may get a 5xx or take the process down, and afterwards a valid search still finds
// the right document. RSS growth over the run is reported.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import { generateToken } from '../../../core/secrets.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';
import { writeKeys } from '../../helpers/keys.js';

const RUNS = 10_000;
// Data routes get most of the requests; probes, /v1/cluster and /metrics (which ask every
// shard, or render every metric) are covered with fewer, to keep the run short.
const ROUTES = [
  ['POST', '/v1/search', 12],
  ['POST', '/v1/query', 10],
  ['POST', '/v1/chat/completions', 10],
  ['POST', '/v1/embeddings', 10],
  ['POST', '/v1/documents', 10],
  ['GET', '/v1/documents/fz.md', 3],
  ['DELETE', '/v1/documents/fz.md', 3],
  ['GET', '/v1/models', 2],
  ['GET', '/v1/cluster', 1],
  ['GET', '/metrics', 1],
  ['GET', '/healthz', 1],
  ['GET', '/readyz', 1],
] as const;

describe('fuzzing every route', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let shards: TestShards;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;
  let key: string;
  let controlKey: string;

  before(async () => {
    dir = await tempDir('fuzz');
    backend = await loadDefaultBackend();
    const clusterToken = generateToken('rgwc_');
    shards = await startShards(2, dir.path, backend.dimensions, { clusterToken });
    const keysFile = join(dir.path, 'keys.json');
    const written = await writeKeys(keysFile, [
      { name: 'fuzzer', scopes: ['read', 'write', 'admin'], namespaces: ['default', 'fz-*'], limits: {} },
      // The control documents live where the fuzzer's key cannot write or delete them.
      { name: 'control', scopes: ['read', 'write'], namespaces: ['control'], limits: {} },
    ]);
    key = written['fuzzer']!;
    controlKey = written['control']!;
    app = await buildApp(loadConfig({}, { shards: shards.spec, keysFile, clusterToken, logLevel: 'silent', maxDocumentsPerRequest: 20 }), {
      embeddingBackend: backend,
      defaultMetrics: false,
    });
    const ingest = await app.inject({
      method: 'POST',
      url: '/v1/documents',
      headers: { authorization: `Bearer ${controlKey}` },
      payload: { namespace: 'control', documents: [{ id: 'guide.md', text: 'Set a time to live on cache entries with the ttl option.' }, { id: 'trains.md', text: 'The train departs from the central station every morning.' }] },
    });
    assert.equal(ingest.statusCode, 200);
  });

  after(async () => {
    await app?.close();
    await shards?.stop();
    await backend?.close();
    await dir?.remove();
  });

  it(`answers ${RUNS} malformed requests without a 5xx, then still searches correctly`, async () => {
    const value = fc.oneof(
      { depthSize: 'small' },
      fc.string({ maxLength: 40 }),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom('', 'default', 'fz-x', 'b', '../b', '$or', '__proto__', 'constructor', '\u0000', 'a'.repeat(300)),
    );
    const fields = fc.constantFrom(
      'query', 'vector', 'k', 'ef', 'namespace', 'filter', 'include', 'cache', 'deadline_ms', 'require_complete', 'stream',
      'model', 'messages', 'rag', 'input', 'encoding_format', 'dimensions', 'documents', 'max_tokens', 'temperature',
      'stream_options', '__proto__', 'constructor', '$where',
    );
    const objectBody = fc.dictionary(fields, fc.oneof(value, fc.array(value, { maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 8 }), value, { maxKeys: 4 })), { maxKeys: 6 });
    const body = fc.oneof(
      objectBody.map((object) => JSON.stringify(object)),
      fc.json({ maxDepth: 3 }),
      fc.string({ maxLength: 200 }),
      fc.constantFrom('{', '{"query":', '[]', 'null', '{"query":"x","k":1e999}', '{"filter":{"$regex":".*"},"query":"x"}', '{"query":"x","namespace":"default","filter":{"$or":[]}}', '\u0000\u0001', '{"documents":[{"text":""}]}'),
      fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 64 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
    );
    const path = fc.oneof(
      ...ROUTES.map(([method, url, weight]) => ({ weight, arbitrary: fc.constant({ method, url }) })),
      { weight: 6, arbitrary: fc.tuple(fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH'), fc.string({ maxLength: 30 })).map(([method, tail]) => ({ method, url: `/v1/${encodeURIComponent(tail)}` })) },
      { weight: 6, arbitrary: fc.tuple(fc.constantFrom('GET', 'DELETE'), fc.constantFrom('..%2F..%2Fetc%2Fpasswd', '%00', 'a/../../b', '%E0%A4%A', 'x?namespace=b', 'x?namespace=', 'x?namespace=default&namespace=b', 'x?k=1'), fc.string({ maxLength: 10 })).map(([method, trick, extra]) => ({ method, url: `/v1/documents/${trick}${encodeURIComponent(extra)}` })) },
    );
    const headers = fc.record(
      {
        auth: fc.oneof(
          { weight: 8, arbitrary: fc.constant(`Bearer ${key}`) },
          { weight: 1, arbitrary: fc.constantFrom('', 'Bearer', 'Bearer ', 'Basic Zm9vOmJhcg==', `Bearer ${key}x`, `bearer ${key.toUpperCase()}`, 'Bearer rgw_00000000_xxxxxxxxxxxxxxxxxxxxxxxx') },
          { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
        ),
        contentType: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', 'application/xml', ''),
        accept: fc.constantFrom('application/json', 'text/event-stream', '*/*', ''),
        extra: fc.dictionary(fc.constantFrom('x-ragway-cache-mode', 'x-ragway-deadline-ms', 'x-ragway-cache-ttl-ms', 'x-api-key', 'x-ragway-namespaces'), fc.string({ maxLength: 20 }), { maxKeys: 2 }),
      },
      { noNullPrototype: true },
    );

    const statuses = new Map<number, number>();

    const rssBefore = process.memoryUsage().rss;
    const started = performance.now();
    await fc.assert(
      fc.asyncProperty(path, body, headers, async ({ method, url }, payload, h) => {
        const requestHeaders: Record<string, string> = { ...h.extra };
        if (h.auth !== '') requestHeaders['authorization'] = h.auth;
        if (h.contentType !== '') requestHeaders['content-type'] = h.contentType;
        if (h.accept !== '') requestHeaders['accept'] = h.accept;
        const response = await app.inject({
          method: method as 'GET',
          url,
          headers: requestHeaders,
          ...(method === 'GET' || method === 'DELETE' ? {} : { payload }),
        });
        statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);

        if (response.statusCode >= 500) {
          throw new Error(`${method} ${url} → ${response.statusCode}: ${response.body.slice(0, 300)}`);
        }
        if (response.statusCode >= 400) {
          const envelope = response.json() as { error?: { code?: string; message?: string } };
          assert.match(envelope.error?.code ?? '', /^RAGWAY_ERR_/, `${method} ${url}: ${response.body.slice(0, 200)}`);
          assert.ok(!/\/work\/|node_modules|at .*\(.*:\d+:\d+\)/.test(envelope.error?.message ?? ''), 'no paths or stack traces in errors');
        }
      }),
      { numRuns: RUNS, seed: 1337, endOnFailure: true },
    );
    const seconds = (performance.now() - started) / 1_000;
    const rssAfter = process.memoryUsage().rss;
    process.stdout.write(
      `# fuzz: ${RUNS} requests in ${seconds.toFixed(1)} s; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}; ` +
        `RSS ${(rssBefore / 2 ** 20).toFixed(0)} → ${(rssAfter / 2 ** 20).toFixed(0)} MiB (${((rssAfter - rssBefore) / 2 ** 20).toFixed(1)} MiB growth)\n`,
    );
    const total = [...statuses.values()].reduce((sum, count) => sum + count, 0);
    assert.ok(total >= RUNS);

    const search = await app.inject({
      method: 'POST',
      url: '/v1/search',
      headers: { authorization: `Bearer ${controlKey}` },
      payload: { query: 'how long do cache entries live', k: 1, namespace: 'control', cache: { mode: 'bypass' } },
    });
    assert.equal(search.statusCode, 200);
    assert.equal((search.json() as { results: { document_id: string }[] }).results[0]?.document_id, 'guide.md');
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200);
  });
});
