// API keys, scopes and tenant isolation over real shard processes that require the cluster
// credential: a key for namespace `a` is refused `b` on every route and never sees `b`'s
// chunks through filters, ids, the exact cache or the semantic cache; a shard reached
// directly without the credential refuses everything and changes nothing; a revoked key
// stops working within a second, without a restart.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import { generateToken } from '../../../core/secrets.js';
import { CLUSTER_TOKEN_HEADER, NAMESPACES_HEADER } from '../../../shards/access.js';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, encodeVector } from '../../../shards/protocol.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';
import { CLI } from '../../helpers/ragway-process.js';
import { bearer, writeKeys } from '../../helpers/keys.js';

const run = promisify(execFile);
const SECRET_B = 'The launch code for project zephyr is 7734, kept in the vault behind the blue door.';
const PUBLIC_A = 'Project zephyr is a weather balloon; the launch happens from the northern field in spring.';
const QUESTION = 'what is the launch code for project zephyr';

describe('tenant isolation', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let shards: TestShards;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;
  let keys: Record<string, string>;
  let keysFile: string;
  const clusterToken = generateToken('rgwc_');

  const inject = async (method: 'GET' | 'POST' | 'DELETE', url: string, key: string | undefined, payload?: unknown) => {
    const response = await app.inject({ method, url, headers: key === undefined ? {} : bearer(key), ...(payload !== undefined ? { payload: payload as object } : {}) });
    return { status: response.statusCode, body: response.json() as Record<string, any>, headers: response.headers };
  };

  before(async () => {
    dir = await tempDir('tenants');
    backend = await loadDefaultBackend();
    shards = await startShards(2, dir.path, backend.dimensions, { clusterToken });
    keysFile = join(dir.path, 'keys.json');
    keys = await writeKeys(keysFile, [
      { name: 'tenant-a', scopes: ['read', 'write'], namespaces: ['a'], limits: {} },
      { name: 'tenant-b', scopes: ['read', 'write'], namespaces: ['b'], limits: {} },
      { name: 'reader-a', scopes: ['read'], namespaces: ['a'], limits: {} },
      { name: 'teams', scopes: ['read', 'write'], namespaces: ['team-*'], limits: {} },
      { name: 'ops', scopes: ['admin'], namespaces: ['*'], limits: {} },
    ]);
    const config = loadConfig({}, {
      shards: shards.spec,
      keysFile,
      keysPollMs: 50,
      clusterToken,
      semanticCache: true,
      semanticCacheThreshold: 0.5,
      logLevel: 'silent',
    });
    app = await buildApp(config, { embeddingBackend: backend, defaultMetrics: false });
    assert.equal(app.access.mode, 'keys');
    const b = await inject('POST', '/v1/documents', keys['tenant-b'], { namespace: 'b', documents: [{ id: 'vault.md', text: SECRET_B, metadata: { owner: 'b' } }] });
    assert.equal(b.status, 200, JSON.stringify(b.body));
    const a = await inject('POST', '/v1/documents', keys['tenant-a'], { namespace: 'a', documents: [{ id: 'balloon.md', text: PUBLIC_A, metadata: { owner: 'a' } }] });
    assert.equal(a.status, 200, JSON.stringify(a.body));
  });

  after(async () => {
    await app?.close();
    await shards?.stop();
    await backend?.close();
    await dir?.remove();
  });

  it('asks for a key on every route but the probes, in the error envelope', async () => {
    for (const [method, url] of [['POST', '/v1/search'], ['GET', '/v1/models'], ['GET', '/v1/cluster'], ['GET', '/v1/nowhere']] as const) {
      const missing = await inject(method, url, undefined, method === 'POST' ? { query: 'x' } : undefined);
      assert.equal(missing.status, 401, url);
      assert.equal(missing.body.error.code, 'RAGWAY_ERR_UNAUTHORIZED');
      assert.equal(missing.body.error.type, 'authentication_error');
      assert.match(String(missing.headers['www-authenticate']), /^Bearer/);
    }
    const forged = await inject('POST', '/v1/search', `${keys['tenant-a']!.slice(0, -4)}AAAA`, { query: 'x', namespace: 'a' });
    assert.equal(forged.status, 401);
    assert.ok(!JSON.stringify(forged.body).includes(keys['tenant-a']!.slice(4, 20)), 'the key is not echoed');
    const viaHeader = await app.inject({ method: 'POST', url: '/v1/search', headers: { 'x-api-key': keys['tenant-a']! }, payload: { query: 'balloon', namespace: 'a' } });
    assert.equal(viaHeader.statusCode, 200);
    assert.equal((await inject('GET', '/healthz', undefined)).status, 200);
    assert.notEqual((await inject('GET', '/readyz', undefined)).status, 401);
  });

  it('refuses a scope the key lacks with 403', async () => {
    const write = await inject('POST', '/v1/documents', keys['reader-a'], { namespace: 'a', documents: [{ text: 'nope' }] });
    assert.equal(write.status, 403);
    assert.equal(write.body.error.code, 'RAGWAY_ERR_FORBIDDEN');
    assert.equal((await inject('DELETE', '/v1/documents/balloon.md?namespace=a', keys['reader-a'])).status, 403);
    assert.equal((await inject('GET', '/v1/cluster', keys['tenant-a'])).status, 403);
    assert.equal((await inject('GET', '/v1/cluster', keys['ops'])).status, 200);
    assert.equal((await inject('POST', '/v1/search', keys['ops'], { query: 'x', namespace: 'a' })).status, 403, 'admin alone is not read');
  });

  it('gives a key for `a` 403 for `b` on every route', async () => {
    const key = keys['tenant-a'];
    const attempts = [
      await inject('POST', '/v1/search', key, { query: QUESTION, namespace: 'b' }),
      await inject('POST', '/v1/search', key, { query: QUESTION }),
      await inject('POST', '/v1/query', key, { query: QUESTION, namespace: 'b' }),
      await inject('POST', '/v1/query', key, { query: QUESTION, namespace: 'b', stream: true }),
      await inject('POST', '/v1/chat/completions', key, { model: 'ragway-extractive', messages: [{ role: 'user', content: QUESTION }], rag: { namespace: 'b' } }),
      await inject('POST', '/v1/chat/completions', key, { model: 'ragway-extractive', messages: [{ role: 'user', content: QUESTION }], stream: true, rag: { namespace: 'b' } }),
      await inject('GET', '/v1/documents/vault.md?namespace=b', key),
      await inject('POST', '/v1/documents', key, { namespace: 'b', documents: [{ id: 'vault.md', text: 'overwritten' }] }),
      await inject('DELETE', '/v1/documents/vault.md?namespace=b', key),
    ];
    for (const [index, attempt] of attempts.entries()) {
      assert.equal(attempt.status, 403, `attempt ${index}: ${JSON.stringify(attempt.body)}`);
      assert.equal(attempt.body.error.code, 'RAGWAY_ERR_NAMESPACE_FORBIDDEN', `attempt ${index}`);
    }
    // Nothing of b changed.
    const stored = await inject('GET', '/v1/documents/vault.md?namespace=b', keys['tenant-b']);
    assert.equal(stored.status, 200);
    assert.equal(stored.body.text, SECRET_B);
  });

  it("never shows a's key b's chunks through filters, ids or either cache", async () => {
    // b asks first, so the exact and semantic caches hold b's answer and results.
    const bSearch = await inject('POST', '/v1/search', keys['tenant-b'], { query: QUESTION, namespace: 'b' });
    assert.equal(bSearch.body.results[0].document_id, 'vault.md');
    const bAnswer = await inject('POST', '/v1/query', keys['tenant-b'], { query: QUESTION, namespace: 'b' });
    assert.equal(bAnswer.status, 200);
    assert.match(JSON.stringify(bAnswer.body.sources), /7734/);

    const key = keys['tenant-a'];
    const leaks: string[] = [];
    const check = (label: string, body: unknown): void => {
      // b's text, not its id: a 404 names the id that was asked for.
      if (JSON.stringify(body).includes('7734') || JSON.stringify(body).includes('blue door')) leaks.push(label);
    };
    for (const filter of [{ owner: 'b' }, { $or: [{ owner: 'b' }, { owner: 'a' }] }, { namespace: 'b' }, { owner: { $exists: true } }]) {
      const result = await inject('POST', '/v1/search', key, { query: QUESTION, namespace: 'a', filter });
      assert.equal(result.status, 200, JSON.stringify(result.body));
      check(`filter ${JSON.stringify(filter)}`, result.body);
    }
    for (const url of ['/v1/documents/vault.md?namespace=a', '/v1/documents/..%2Fb%2Fvault.md?namespace=a', '/v1/documents/b/vault.md?namespace=a', '/v1/documents/vault.md?namespace=a&namespace=b']) {
      const result = await inject('GET', url, key);
      assert.ok([400, 403, 404].includes(result.status), `${url}: ${result.status}`);
      check(url, result.body);
    }
    const deleted = await inject('DELETE', '/v1/documents/vault.md?namespace=a', key);
    assert.equal(deleted.status, 404);
    // The same question, and a near-identical one, in a's namespace: the caches must miss b's entries.
    const exact = await inject('POST', '/v1/search', key, { query: QUESTION, namespace: 'a' });
    check('exact search cache', exact.body);
    const answer = await inject('POST', '/v1/query', key, { query: QUESTION, namespace: 'a' });
    check('answer cache', answer.body);
    const near = await inject('POST', '/v1/query', key, { query: `${QUESTION}?`, namespace: 'a' });
    check('semantic cache', near.body);
    const chat = await inject('POST', '/v1/chat/completions', key, { model: 'ragway-extractive', messages: [{ role: 'user', content: QUESTION }], rag: { namespace: 'a' } });
    check('chat', chat.body);
    assert.deepEqual(leaks, []);
    assert.ok(JSON.stringify(answer.body).includes('balloon'), "a's own document is what a gets");
  });

  it('matches prefix patterns', async () => {
    const key = keys['teams'];
    const ingest = await inject('POST', '/v1/documents', key, { namespace: 'team-red', documents: [{ id: 'x.md', text: 'red team notes' }] });
    assert.equal(ingest.status, 200);
    assert.equal((await inject('POST', '/v1/search', key, { query: 'notes', namespace: 'team-red' })).status, 200);
    assert.equal((await inject('POST', '/v1/search', key, { query: 'notes', namespace: 'teams' })).status, 403);
    assert.equal((await inject('POST', '/v1/search', key, { query: 'notes', namespace: 'a' })).status, 403);
  });

  it('shards refuse calls without the cluster credential and calls outside the scope', async () => {
    const shardUrl = shards.urls[0]!;
    const statsBefore = await Promise.all(
      shards.urls.map(async (url) => (await (await request(`${url}/v1/stats`, { headers: { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), [CLUSTER_TOKEN_HEADER]: clusterToken } })).body.json()) as { count: number; epoch: number }),
    );
    const vector = encodeVector(new Float32Array(backend.dimensions).fill(0.1));
    const chunk = { id: 'evil#0', document_id: 'evil', namespace: 'b', text: 'planted', vector };
    for (const headers of [{}, { [CLUSTER_TOKEN_HEADER]: 'rgwc_wrong' }]) {
      for (const [path, body] of [
        ['/v1/upsert', { chunks: [chunk] }],
        ['/v1/delete', { namespace: 'b', document_ids: ['vault.md'] }],
        ['/v1/search', { queries: [{ vector, k: 5, namespace: 'b' }] }],
        ['/v1/faults', { fail_probability: 1 }],
      ] as const) {
        const response = await request(`${shardUrl}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), ...headers },
          body: JSON.stringify(body),
        });
        const envelope = (await response.body.json()) as { error: { code: string } };
        assert.equal(response.statusCode, 401, path);
        assert.equal(envelope.error.code, 'RAGWAY_ERR_UNAUTHORIZED');
      }
      for (const path of ['/v1/stats', '/v1/export', '/v1/changes?since=0', '/v1/documents/b/vault.md']) {
        const response = await request(`${shardUrl}${path}`, { headers: { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), ...headers } });
        await response.body.dump();
        assert.equal(response.statusCode, 401, path);
      }
    }
    // With the credential but a tenant's scope, the shard still refuses other namespaces.
    const scoped = await request(`${shardUrl}/v1/upsert`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), [CLUSTER_TOKEN_HEADER]: clusterToken, [NAMESPACES_HEADER]: 'a' },
      body: JSON.stringify({ chunks: [chunk] }),
    });
    assert.equal(scoped.statusCode, 403);
    await scoped.body.dump();
    const scopedSearch = await request(`${shardUrl}/v1/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), [CLUSTER_TOKEN_HEADER]: clusterToken, [NAMESPACES_HEADER]: 'a' },
      body: JSON.stringify({ queries: [{ vector, k: 5, namespace: 'a' }, { vector, k: 5, namespace: 'b' }] }),
    });
    assert.equal(scopedSearch.statusCode, 403);
    await scopedSearch.body.dump();
    assert.equal((await request(`${shardUrl}/healthz`)).statusCode, 200);
    const statsAfter = await Promise.all(
      shards.urls.map(async (url) => (await (await request(`${url}/v1/stats`, { headers: { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), [CLUSTER_TOKEN_HEADER]: clusterToken } })).body.json()) as { count: number; epoch: number }),
    );
    assert.deepEqual(statsAfter.map((s) => [s.count, s.epoch]), statsBefore.map((s) => [s.count, s.epoch]), 'nothing changed');
    const stored = await inject('GET', '/v1/documents/vault.md?namespace=b', keys['tenant-b']);
    assert.equal(stored.body.text, SECRET_B);
  });

  it('stops accepting a key revoked with `ragway keys revoke` within a second, and accepts a new one as soon', async () => {
    const created = await run(process.execPath, [CLI, 'keys', 'create', '--name', 'temp', '--scopes', 'read', '--namespaces', 'a', '--file', keysFile]);
    const key = created.stdout.trim();
    assert.match(key, /^rgw_[0-9a-f]+_/);
    assert.ok(!(await import('node:fs')).readFileSync(keysFile, 'utf8').includes(key), 'the file holds no key in plain text');
    const accepted = await waitForStatus(() => inject('POST', '/v1/search', key, { query: 'balloon', namespace: 'a' }), 200);
    assert.ok(accepted < 1_000, `accepted after ${accepted} ms`);

    const listed = await run(process.execPath, [CLI, 'keys', 'list', '--file', keysFile]);
    assert.match(listed.stdout, /temp\s+scopes=read\s+namespaces=a/);
    assert.ok(!listed.stdout.includes('sha256:'));

    const revoked = await run(process.execPath, [CLI, 'keys', 'revoke', 'temp', '--file', keysFile]);
    assert.match(revoked.stderr, /"event":"key.revoked"/);
    const refused = await waitForStatus(() => inject('POST', '/v1/search', key, { query: 'balloon', namespace: 'a' }), 401);
    assert.ok(refused < 1_000, `still accepted ${refused} ms after revoke`);
  });
});

/** Milliseconds until `attempt` answers `status` (fails after 5 s). */
async function waitForStatus(attempt: () => Promise<{ status: number }>, status: number): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < 5_000) {
    if ((await attempt()).status === status) return performance.now() - start;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`never answered ${status}`);
}
