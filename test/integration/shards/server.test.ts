import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { request } from 'undici';
import { IndexStore } from '../../../shards/index-store.js';
import {
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  encodeVector,
  type ChangesResponse,
  type Chunk,
  type ExportLine,
  type SearchResponse,
  type StatsResponse,
} from '../../../shards/protocol.js';
import { buildShardApp, startShardServer } from '../../../shards/server.js';
import { randomUnitVectors } from '../../helpers/random.js';

const DIM = 8;
const root = mkdtempSync(join(tmpdir(), 'ragway-shard-server-'));
after(() => rmSync(root, { recursive: true, force: true }));

const protocolHeaders = { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) };

function chunks(count: number, seed: number): Chunk[] {
  return randomUnitVectors(count, DIM, seed).map((vector, i) => ({
    id: `c${i}`,
    document_id: `doc${Math.floor(i / 2)}`,
    namespace: 'default',
    text: `chunk ${i}`,
    metadata: { i },
    vector: encodeVector(vector),
  }));
}

interface Envelope {
  error: { message: string; type: string; code: string; param: string | null };
}

describe('shard server routes (inject)', () => {
  let store: IndexStore;
  let app: FastifyInstance;
  const vectors = randomUnitVectors(10, DIM, 1);

  before(async () => {
    store = IndexStore.open({ dataDir: join(root, 'inject'), dim: DIM, space: 'cosine', autoSaveMs: 0 });
    app = buildShardApp(store, { bodyLimitBytes: 64 * 1024 });
    await app.ready();
    const upsert = await app.inject({ method: 'POST', url: '/v1/upsert', headers: protocolHeaders, payload: { chunks: chunks(10, 1) } });
    assert.equal(upsert.statusCode, 200, upsert.body);
  });
  after(async () => {
    await app.close();
    store.close();
  });

  async function send(options: InjectOptions) {
    const response = await app.inject({ ...options, headers: { ...protocolHeaders, ...options.headers } });
    assert.equal(response.headers[PROTOCOL_HEADER], String(PROTOCOL_VERSION), 'every response names the protocol');
    return response;
  }

  async function expectError(options: InjectOptions, status: number, code: string, param: string | null): Promise<Envelope> {
    const response = await send(options);
    assert.equal(response.statusCode, status, response.body);
    const body = response.json<Envelope>();
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(body.error.code, code);
    assert.equal(body.error.param, param);
    assert.ok(body.error.message.length > 0);
    return body;
  }

  const search = (queries: unknown): InjectOptions => ({ method: 'POST', url: '/v1/search', payload: { queries } });

  it('searches', async () => {
    const response = await send(search([{ vector: encodeVector(vectors[4] as Float32Array), k: 3, namespace: 'default' }]));
    assert.equal(response.statusCode, 200);
    const body = response.json<SearchResponse>();
    assert.ok(body.epoch >= 1);
    assert.equal(body.results[0]?.hits.length, 3);
    assert.deepEqual({ ...body.results[0]?.hits[0], score: 1 }, { id: 'c4', document_id: 'doc2', score: 1, text: 'chunk 4', metadata: { i: 4 } });
  });

  it('serves documents and 404s missing ones with the envelope', async () => {
    const found = await send({ method: 'GET', url: '/v1/documents/default/doc1' });
    assert.equal(found.statusCode, 200);
    assert.deepEqual(found.json(), {
      document_id: 'doc1',
      namespace: 'default',
      chunks: [
        { id: 'c2', text: 'chunk 2', metadata: { i: 2 } },
        { id: 'c3', text: 'chunk 3', metadata: { i: 3 } },
      ],
    });
    const pathLike = 'docs/guide.md#setup?v=2';
    const [vector] = randomUnitVectors(1, DIM, 2) as [Float32Array];
    const chunk = { id: 'p0', document_id: pathLike, namespace: 'paths', text: 'p', vector: encodeVector(vector) };
    assert.equal((await send({ method: 'POST', url: '/v1/upsert', payload: { chunks: [chunk] } })).statusCode, 200);
    const encoded = await send({ method: 'GET', url: `/v1/documents/paths/${encodeURIComponent(pathLike)}` });
    assert.equal(encoded.statusCode, 200, 'document ids that look like paths round-trip percent-encoded');
    assert.equal(encoded.json<{ document_id: string }>().document_id, pathLike);

    const missing = await expectError({ method: 'GET', url: '/v1/documents/default/nope' }, 404, 'RAGWAY_ERR_NOT_FOUND', 'document_id');
    assert.equal(missing.error.type, 'not_found_error');
    await expectError({ method: 'GET', url: '/v1/documents/bad%20ns/doc1' }, 400, 'RAGWAY_ERR_INVALID_REQUEST', 'namespace');
  });

  it('reports stats and health', async () => {
    const stats = (await send({ method: 'GET', url: '/v1/stats' })).json<StatsResponse>();
    assert.equal(stats.namespaces['default'], 10);
    assert.equal(stats.dim, DIM);
    assert.equal(stats.protocol_version, PROTOCOL_VERSION);
    assert.ok(stats.rss_bytes > 0);
    for (const url of ['/healthz', '/readyz']) {
      const response = await app.inject({ method: 'GET', url });
      assert.equal(response.statusCode, 200, `${url} needs no protocol header`);
      assert.equal(response.headers[PROTOCOL_HEADER], String(PROTOCOL_VERSION));
    }
    assert.deepEqual((await app.inject({ method: 'GET', url: '/healthz' })).json(), { status: 'ok' });
  });

  it('feeds its changes, validating the query', async () => {
    const page = await send({ method: 'GET', url: '/v1/changes?since=0&limit=5' });
    assert.equal(page.statusCode, 200, page.body);
    const body = page.json<ChangesResponse>();
    assert.equal(body.snapshot_required, false);
    assert.equal(body.high_water, store.walSeq);
    assert.equal(body.changes[0]?.seq, 1);
    assert.equal(body.changes[0]?.op, 'upsert');
    assert.equal(body.changes[0]?.upsert?.chunks.length, 10);
    assert.equal(typeof body.changes[0]?.upsert?.version, 'number', 'a logged write carries the version it was applied with');
    await expectError({ method: 'GET', url: '/v1/changes?since=abc' }, 400, 'RAGWAY_ERR_INVALID_REQUEST', 'since');
    await expectError({ method: 'GET', url: '/v1/changes?since=0&limit=0' }, 400, 'RAGWAY_ERR_INVALID_REQUEST', 'limit');
    await expectError({ method: 'GET', url: '/v1/changes' }, 400, 'RAGWAY_ERR_INVALID_REQUEST', 'since');
  });

  it('exports every document as NDJSON framed by a header and an end line', async () => {
    const response = await send({ method: 'GET', url: '/v1/export' });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^application\/x-ndjson/);
    const lines = response.body.trim().split('\n').map((line) => JSON.parse(line) as ExportLine);
    const [header] = lines;
    assert.equal(header?.type, 'header');
    assert.deepEqual(header?.type === 'header' ? { dim: header.dim, space: header.space, high_water: header.high_water } : undefined, {
      dim: DIM,
      space: 'cosine',
      high_water: store.walSeq,
    });
    const stats = store.stats();
    assert.deepEqual(lines.at(-1), { type: 'end', documents: stats.documents, chunks: stats.count });
  });

  it('is not ready while catching up, and says so in stats', async () => {
    store.setState('catching-up');
    try {
      const ready = await app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(ready.statusCode, 503);
      assert.equal(ready.json<Envelope>().error.code, 'RAGWAY_ERR_NOT_READY');
      assert.equal((await send({ method: 'GET', url: '/v1/stats' })).json<StatsResponse>().state, 'catching-up');
      assert.equal((await send({ method: 'GET', url: '/v1/changes?since=0' })).statusCode, 200, 'still feeds peers what it holds');
    } finally {
      store.setState('ready');
    }
    assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  });

  it('has no fault injection unless asked for', async () => {
    await expectError({ method: 'GET', url: '/v1/faults' }, 404, 'RAGWAY_ERR_NOT_FOUND', null);
  });

  it('rejects a missing or different protocol version', async () => {
    const missing = await app.inject({ method: 'GET', url: '/v1/stats' });
    assert.equal(missing.statusCode, 400);
    assert.equal(missing.json<Envelope>().error.code, 'RAGWAY_ERR_PROTOCOL_MISMATCH');
    assert.equal(missing.headers[PROTOCOL_HEADER], String(PROTOCOL_VERSION));
    await expectError(
      { ...search([]), headers: { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION + 1) } },
      400,
      'RAGWAY_ERR_PROTOCOL_MISMATCH',
      PROTOCOL_HEADER,
    );
  });

  it('answers unknown routes with a 404 envelope', async () => {
    await expectError({ method: 'GET', url: '/v1/nothing' }, 404, 'RAGWAY_ERR_NOT_FOUND', null);
    const bare = await app.inject({ method: 'POST', url: '/v2/search' });
    assert.equal(bare.statusCode, 404);
  });

  it('turns schema violations into 400s that name the field', async () => {
    const vector = encodeVector(vectors[0] as Float32Array);
    await expectError(search([{ vector, k: 0, namespace: 'default' }]), 400, 'RAGWAY_ERR_INVALID_REQUEST', 'queries[0].k');
    await expectError(search([{ vector, k: 1 }]), 400, 'RAGWAY_ERR_INVALID_REQUEST', 'queries[0].namespace');
    await expectError(
      search([{ vector, k: 1, namespace: 'default', fitler: {} }]),
      400,
      'RAGWAY_ERR_INVALID_REQUEST',
      'queries[0].fitler',
    );
    await expectError(search([{ vector, k: '3', namespace: 'default' }]), 400, 'RAGWAY_ERR_INVALID_REQUEST', 'queries[0].k');
    await expectError(search([]), 400, 'RAGWAY_ERR_INVALID_REQUEST', 'queries');
    await expectError(
      { method: 'POST', url: '/v1/delete', payload: { namespace: 'default', document_ids: [] } },
      400,
      'RAGWAY_ERR_INVALID_REQUEST',
      'document_ids',
    );
  });

  it('passes store validation errors through with their params', async () => {
    const vector = encodeVector(vectors[0] as Float32Array);
    await expectError(
      search([{ vector: encodeVector(new Float32Array(DIM - 1)), k: 1, namespace: 'default' }]),
      400,
      'RAGWAY_ERR_INVALID_REQUEST',
      'queries[0].vector',
    );
    await expectError(
      search([{ vector, k: 1, namespace: 'default', filter: { lang: { $regex: 'e' } } }]),
      400,
      'RAGWAY_ERR_INVALID_FILTER',
      'queries[0].filter.lang.$regex',
    );
  });

  it('maps bad JSON, wrong media types and oversized bodies to the catalog', async () => {
    const json = { 'content-type': 'application/json' };
    await expectError({ method: 'POST', url: '/v1/search', headers: json, payload: '{"queries": [' }, 400, 'RAGWAY_ERR_INVALID_JSON', null);
    await expectError({ method: 'POST', url: '/v1/search', headers: json, payload: '' }, 400, 'RAGWAY_ERR_INVALID_JSON', null);
    await expectError(
      { method: 'POST', url: '/v1/search', headers: { 'content-type': 'text/plain' }, payload: 'hello' },
      415,
      'RAGWAY_ERR_UNSUPPORTED_MEDIA_TYPE',
      'content-type',
    );
    await expectError(
      { method: 'POST', url: '/v1/upsert', payload: { chunks: chunks(1000, 2) } },
      413,
      'RAGWAY_ERR_BODY_TOO_LARGE',
      null,
    );
  });
});

describe('shard server over a real socket', () => {
  it('upserts, searches and keeps its data across a restart', async () => {
    const dataDir = join(root, 'socket');
    const options = { port: 0, dataDir, dim: DIM, space: 'cosine' as const };
    const server = await startShardServer(options);
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(server.port > 0);
    const headers = { 'content-type': 'application/json', ...protocolHeaders };
    try {
      const upsert = await request(`${server.url}/v1/upsert`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ chunks: chunks(20, 3) }),
      });
      assert.equal(upsert.statusCode, 200);
      assert.equal(upsert.headers[PROTOCOL_HEADER], String(PROTOCOL_VERSION));
      assert.deepEqual(await upsert.body.json(), { upserted: 20, removed: 0, epoch: 1 });
    } finally {
      await server.close();
    }
    await server.close(); // idempotent

    const restarted = await startShardServer(options);
    try {
      const query = randomUnitVectors(20, DIM, 3)[7] as Float32Array;
      const response = await request(`${restarted.url}/v1/search`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ queries: [{ vector: encodeVector(query), k: 2, namespace: 'default' }], include_text: false }),
      });
      assert.equal(response.statusCode, 200);
      const body = (await response.body.json()) as SearchResponse;
      assert.equal(body.epoch, 1);
      assert.equal(body.results[0]?.hits[0]?.id, 'c7');
      assert.equal(body.results[0]?.hits[0]?.text, undefined);
      assert.equal(body.results[0]?.hits.length, 2);
    } finally {
      await restarted.close();
    }
  });
});
