// The key's namespaces reach the shards on every route. The gateway refuses a foreign namespace
// itself (tenant-isolation.test.ts); this checks the second line of defence is really there:
// a recording HTTP proxy between a real gateway and real shard processes sees the key's scope
// header on every data call (search in each mode, ingest, document read, delete, and the
// retrieval of /v1/query and chat, streamed or not), and the shards refuse what lies outside it.
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import { generateToken } from '../../../core/secrets.js';
import { CLUSTER_TOKEN_HEADER, NAMESPACES_HEADER } from '../../../shards/access.js';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '../../../shards/protocol.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';
import { bearer, writeKeys } from '../../helpers/keys.js';
import { listenOnLoopback } from '../../helpers/listen.js';

interface Seen {
  method: string;
  path: string;
  scope: string | undefined;
}

/** Forwards every request to `target` unchanged and remembers its path and scope header. */
async function recordingProxy(target: string): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const scope = incoming.headers[NAMESPACES_HEADER];
      seen.push({ method: incoming.method ?? '', path: (incoming.url ?? '').split('?')[0] ?? '', scope: Array.isArray(scope) ? scope.join(',') : scope });
      const headers: IncomingHttpHeaders = { ...incoming.headers };
      delete headers.host;
      delete headers.connection;
      delete headers['content-length'];
      request(`${target}${incoming.url ?? '/'}`, {
        method: (incoming.method ?? 'GET') as 'GET',
        headers: headers as Record<string, string>,
        ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
      }).then(
        async (response) => {
          const body = Buffer.from(await response.body.arrayBuffer());
          const out: Record<string, string | string[]> = {};
          for (const [name, value] of Object.entries(response.headers)) {
            if (value !== undefined && name !== 'connection' && name !== 'transfer-encoding' && name !== 'keep-alive') out[name] = value;
          }
          outgoing.writeHead(response.statusCode, { ...out, 'content-length': String(body.length) });
          outgoing.end(body);
        },
        () => outgoing.destroy(),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

const DATA_PATHS = /^\/v1\/(search|upsert|delete|documents\/.+)$/;

describe('namespace scope on shard calls', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let shards: TestShards;
  let proxies: Awaited<ReturnType<typeof recordingProxy>>[] = [];
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;
  let keys: Record<string, string>;
  const clusterToken = generateToken('rgwc_');

  before(async () => {
    dir = await tempDir('shard-scope');
    backend = await loadDefaultBackend();
    shards = await startShards(2, dir.path, backend.dimensions, { clusterToken });
    proxies = await Promise.all(shards.urls.map((url) => recordingProxy(url)));
    const keysFile = join(dir.path, 'keys.json');
    keys = await writeKeys(keysFile, [{ name: 'tenant-a', scopes: ['read', 'write'], namespaces: ['a', 'shared-*'], limits: {} }]);
    const config = loadConfig({}, { shards: proxies.map((proxy) => proxy.url).join(';'), keysFile, clusterToken, logLevel: 'silent' });
    app = await buildApp(config, { embeddingBackend: backend, defaultMetrics: false });
  });

  after(async () => {
    await app?.close();
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await shards?.stop();
    await backend?.close();
    await dir?.remove();
  });

  it('sends the key’s namespaces with every data call of every route', async () => {
    for (const proxy of proxies) proxy.seen.length = 0;
    const key = bearer(keys['tenant-a'] as string);
    // Real HTTP, not inject: the streamed answers need a socket.
    const base = await listenOnLoopback(app);
    const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object): Promise<void> => {
      const response = await request(`${base}${url}`, {
        method,
        headers: { ...key, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(payload !== undefined ? { body: JSON.stringify(payload) } : {}),
      });
      const text = await response.body.text();
      assert.ok(response.statusCode < 300, `${method} ${url}: ${response.statusCode} ${text.slice(0, 300)}`);
      assert.ok(!text.includes('"error"'), `${method} ${url}: ${text.slice(0, 300)}`);
    };
    const documents = Array.from({ length: 6 }, (_, i) => ({ id: `notes/${i}.md`, text: `Balloon launch notes number ${i}: the northern field, in spring.` }));
    await call('POST', '/v1/documents', { namespace: 'a', documents });
    await call('GET', '/v1/documents/notes/1.md?namespace=a');
    for (const mode of ['vector', 'lexical', 'hybrid'] as const) {
      await call('POST', '/v1/search', { query: 'where is the balloon launched', namespace: 'a', mode, cache: { mode: 'bypass' } });
    }
    await call('POST', '/v1/search', { query: 'balloon launch diversified', namespace: 'a', mmr_lambda: 0.5, cache: { mode: 'bypass' } });
    await call('POST', '/v1/query', { query: 'where is the balloon launched', namespace: 'a', cache: { mode: 'bypass' } });
    await call('POST', '/v1/query', { query: 'when is the balloon launched', namespace: 'a', stream: true, cache: { mode: 'bypass' } });
    const messages = [{ role: 'user', content: 'which field is the launch from' }];
    await call('POST', '/v1/chat/completions', { model: 'ragway-extractive', messages, rag: { namespace: 'a' }, cache: { mode: 'bypass' } });
    await call('POST', '/v1/chat/completions', { model: 'ragway-extractive', messages, stream: true, rag: { namespace: 'a' }, cache: { mode: 'bypass' } });
    await call('DELETE', '/v1/documents/notes/2.md?namespace=a');

    const data = proxies.flatMap((proxy) => proxy.seen).filter((entry) => DATA_PATHS.test(entry.path));
    const kinds = new Set(data.map((entry) => `${entry.method} ${entry.path.startsWith('/v1/documents/') ? '/v1/documents/…' : entry.path}`));
    assert.deepEqual([...kinds].sort(), ['GET /v1/documents/…', 'POST /v1/delete', 'POST /v1/search', 'POST /v1/upsert']);
    const unscoped = data.filter((entry) => entry.scope !== 'a,shared-*');
    assert.deepEqual(unscoped, [], 'every data call carries the key’s scope');
    assert.ok(data.filter((entry) => entry.path === '/v1/search').length >= 16, `searches seen: ${data.length}`);
  });

  it('refuses a namespace with a slash (or any other character outside the rule) with a 400 that states the rule', async () => {
    const key = bearer(keys['tenant-a'] as string);
    const attempts = [
      await app.inject({ method: 'POST', url: '/v1/search', headers: key, payload: { query: 'x', namespace: 'a/docs' } }),
      await app.inject({ method: 'POST', url: '/v1/documents', headers: key, payload: { namespace: 'a/docs', documents: [{ text: 'x' }] } }),
      await app.inject({ method: 'GET', url: '/v1/documents/x.md?namespace=a%2Fdocs', headers: key }),
      await app.inject({ method: 'POST', url: '/v1/query', headers: key, payload: { query: 'x', namespace: 'a docs' } }),
    ];
    for (const [index, response] of attempts.entries()) {
      assert.equal(response.statusCode, 400, `attempt ${index}: ${response.body}`);
      const { error } = response.json() as { error: { code: string; param: string; message: string } };
      assert.equal(error.code, 'RAGWAY_ERR_INVALID_REQUEST');
      assert.equal(error.param, 'namespace');
      assert.match(error.message, /no '\/'/);
    }
  });

  it('leaves the cluster’s own calls (epoch polls, probes) unscoped, and a scoped shard call outside the scope is refused', async () => {
    const own = proxies.flatMap((proxy) => proxy.seen).filter((entry) => !DATA_PATHS.test(entry.path));
    assert.ok(own.every((entry) => entry.scope === undefined), JSON.stringify(own.slice(0, 5)));
    // The same header, through the gateway's own client path, for another namespace: the shard says no.
    const response = await request(`${proxies[0]?.url}/v1/documents/b/x.md`, {
      headers: { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), [CLUSTER_TOKEN_HEADER]: clusterToken, [NAMESPACES_HEADER]: 'a,shared-*' },
    });
    await response.body.dump();
    assert.equal(response.statusCode, 403);
  });
});
