// /docs: the OpenAPI document is generated from the routes' schemas; every route the gateway
// serves is in it with its request and response schemas, and the browsable page loads.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';

interface Operation {
  requestBody?: { content: Record<string, { schema: unknown }> };
  parameters?: Array<{ in: string; name: string }>;
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
}
type OpenApi = { openapi: string; paths: Record<string, Record<string, Operation>> };

/** "/v1/documents/*" and "/v1/documents/:id" as OpenAPI writes them. */
function openApiPath(url: string): string {
  return url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{*}');
}

describe('API docs', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let shards: TestShards;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;
  const served: Array<Pick<RouteOptions, 'url'> & { method: string; schema: RouteOptions['schema'] }> = [];

  before(async () => {
    dir = await tempDir('docs');
    backend = await loadDefaultBackend();
    shards = await startShards(1, dir.path, backend.dimensions);
    app = await buildApp(loadConfig({}, { shards: shards.spec, logLevel: 'silent' }), {
      embeddingBackend: backend,
      defaultMetrics: false,
      onRoute: (route) => {
        const methods = Array.isArray(route.method) ? route.method : [route.method];
        for (const method of methods) served.push({ url: route.url, method: method.toLowerCase(), schema: route.schema });
      },
    });
    await app.ready();
  });

  after(async () => {
    await app?.close();
    await shards?.stop();
    await backend?.close();
    await dir?.remove();
  });

  it('lists every route the gateway serves, with its schemas', async () => {
    const response = await app.inject({ method: 'GET', url: '/docs/json' });
    assert.equal(response.statusCode, 200);
    const document = response.json() as OpenApi;
    assert.match(document.openapi, /^3\./);
    const api = served.filter((route) => !route.url.startsWith('/docs') && route.method !== 'head');
    assert.ok(api.some((route) => route.url === '/v1/chat/completions'), 'the route list is collected');
    for (const route of api) {
      const operation = document.paths[openApiPath(route.url)]?.[route.method];
      assert.ok(operation, `${route.method.toUpperCase()} ${route.url} is missing from /docs/json`);
      const schema = route.schema ?? {};
      if (schema.body !== undefined) assert.ok(operation.requestBody, `${route.method} ${route.url}: no request body schema`);
      if (schema.querystring !== undefined) {
        assert.ok(operation.parameters?.some((parameter) => parameter.in === 'query'), `${route.url}: no query parameters`);
      }
      if (schema.response !== undefined) {
        for (const status of Object.keys(schema.response as object)) {
          assert.ok(operation.responses[status], `${route.method} ${route.url}: no ${status} response`);
        }
      }
    }
    // The main routes are all declared with schemas, so the document says what they take.
    for (const [path, method] of [['/v1/search', 'post'], ['/v1/query', 'post'], ['/v1/chat/completions', 'post'], ['/v1/embeddings', 'post'], ['/v1/documents', 'post']] as const) {
      assert.ok(document.paths[path]?.[method]?.requestBody?.content['application/json']?.schema, `${method} ${path}`);
    }
  });

  it('serves a browsable page', async () => {
    const page = await app.inject({ method: 'GET', url: '/docs/' });
    assert.equal(page.statusCode, 200);
    assert.match(page.headers['content-type'] as string, /text\/html/);
    assert.match(page.body, /swagger/i);
  });
});
