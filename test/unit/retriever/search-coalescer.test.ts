import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isRagwayError } from '../../../core/errors.js';
import { InProcessShardClient } from '../../../retriever/in-process-shard-client.js';
import { Scatter } from '../../../retriever/scatter.js';
import { SearchCoalescer } from '../../../retriever/search-coalescer.js';
import { IndexStore } from '../../../shards/index-store.js';
import { RecordingShardClient } from '../../helpers/fake-shard-clients.js';
import { randomUnitVectors } from '../../helpers/random.js';

const DIM = 16;

describe('SearchCoalescer', () => {
  let dir: string;
  let stores: IndexStore[];
  let clients: RecordingShardClient[];
  let scatter: Scatter;
  const vectors = randomUnitVectors(400, DIM, 7);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ragway-coalescer-'));
    stores = [0, 1].map((i) => IndexStore.open({ dataDir: join(dir, `s${i}`), dim: DIM, space: 'cosine', autoSaveMs: 0 }));
    clients = stores.map((store, i) => new RecordingShardClient(new InProcessShardClient(store, { label: `shard-${i}` })));
    scatter = new Scatter(clients);
    await scatter.upsertChunks(
      vectors.map((vector, i) => ({ id: `c${i}`, document_id: `d${i}`, namespace: 'ns', text: `t${i}`, metadata: { even: i % 2 === 0 }, vector })),
    );
  });
  after(() => {
    for (const store of stores) store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const reset = (): void => {
    for (const client of clients) {
      client.requests.length = 0;
      client.scopes.length = 0;
    }
  };

  it('sends concurrent searches as one request per shard, with the same answers as one by one', async () => {
    const queries = vectors.slice(0, 20);
    const expected = await Promise.all(queries.map((vector) => scatter.search(vector, { k: 5, namespace: 'ns' })));
    reset();
    const coalescer = new SearchCoalescer(scatter);
    const results = await Promise.all(queries.map((vector) => coalescer.search(vector, { k: 5, namespace: 'ns' })));
    assert.deepEqual(clients.map((client) => client.requests), [[20], [20]]);
    assert.deepEqual(results.map((r) => r.hits), expected.map((r) => r.hits));
  });

  it('splits at maxBatch and keeps include settings apart', async () => {
    reset();
    const coalescer = new SearchCoalescer(scatter, { maxBatch: 8 });
    await Promise.all([
      ...vectors.slice(0, 10).map((v) => coalescer.search(v, { k: 3, namespace: 'ns' })),
      ...vectors.slice(10, 12).map((v) => coalescer.search(v, { k: 3, namespace: 'ns', includeText: false })),
    ]);
    assert.deepEqual([...(clients[0]?.requests ?? [])].sort((a, b) => a - b), [2, 2, 8]);
  });

  it('batches only queries of one namespace scope together and sends each batch with its scope', async () => {
    reset();
    const coalescer = new SearchCoalescer(scatter);
    const results = await Promise.allSettled([
      ...vectors.slice(0, 3).map((v) => coalescer.search(v, { k: 3, namespace: 'ns', namespaces: ['ns'] })),
      ...vectors.slice(3, 5).map((v) => coalescer.search(v, { k: 3, namespace: 'ns', namespaces: ['n*'] })),
      coalescer.search(vectors[5] as Float32Array, { k: 3, namespace: 'ns' }),
      // Asked in another key's scope: the shards refuse it, and only it.
      coalescer.search(vectors[6] as Float32Array, { k: 3, namespace: 'ns', namespaces: ['other'] }),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    const refused = results[6] as PromiseRejectedResult;
    assert.ok(isRagwayError(refused.reason) && refused.reason.code === 'RAGWAY_ERR_NAMESPACE_FORBIDDEN');
    const sent = (clients[0]?.requests ?? []).map((queries, i) => `${clients[0]?.scopes[i] ?? '(unscoped)'}:${queries}`).sort();
    assert.deepEqual(sent, ['(unscoped):1', 'n*:2', 'ns:3', 'other:1']);
  });

  it("retries query by query when one query's 4xx would fail the batch", async () => {
    const coalescer = new SearchCoalescer(scatter);
    const [good, bad] = await Promise.allSettled([
      coalescer.search(vectors[0] as Float32Array, { k: 3, namespace: 'ns', filter: { even: true } }),
      coalescer.search(vectors[1] as Float32Array, { k: 3, namespace: 'ns', filter: { even: { $regex: 'x' } } }),
    ]);
    assert.equal(good.status, 'fulfilled');
    assert.equal(bad.status, 'rejected');
    assert.ok(isRagwayError(bad.reason) && bad.reason.code === 'RAGWAY_ERR_INVALID_FILTER');
  });

  it('releases an aborted caller at once while the others get their answers', async () => {
    const coalescer = new SearchCoalescer(scatter);
    const controller = new AbortController();
    const gone = coalescer.search(vectors[2] as Float32Array, { k: 3, namespace: 'ns' }, controller.signal);
    const stays = coalescer.search(vectors[3] as Float32Array, { k: 3, namespace: 'ns' });
    controller.abort();
    await assert.rejects(gone, (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_CLIENT_CLOSED');
    assert.equal((await stays).hits.length, 3);
  });

  it('does not send anything for callers that all left before the flush', async () => {
    reset();
    const coalescer = new SearchCoalescer(scatter);
    const controller = new AbortController();
    const gone = coalescer.search(vectors[4] as Float32Array, { k: 3, namespace: 'ns' }, controller.signal);
    controller.abort();
    await assert.rejects(gone);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(clients[0]?.requests, []);
  });
});
