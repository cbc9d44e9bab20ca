import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { IndexStore } from '../../../shards/index-store.js';
import type { SearchRequest } from '../../../shards/protocol.js';
import { randomUnitVectors } from '../../helpers/random.js';
import { DIM, assertRagwayError, freshDir, hitIds, makeChunks, openStore, query } from './store-fixtures.js';

describe('IndexStore persistence', () => {
  it('round-trips everything through save and open', () => {
    const dataDir = freshDir();
    const options = { dataDir, dim: DIM, space: 'cosine' as const, autoSaveMs: 0, initialCapacity: 64, bruteForceThreshold: 100 };
    const store = IndexStore.open(options);
    const vectors = randomUnitVectors(600, DIM, 18);
    store.upsert({ chunks: makeChunks(vectors) });
    store.upsert({ chunks: makeChunks(randomUnitVectors(50, DIM, 19), { namespace: 'small', prefix: 's' }) });
    store.delete({ namespace: 'default', document_ids: ['doc3', 'doc10'] });
    const requests: SearchRequest[] = randomUnitVectors(20, DIM, 20).flatMap((q) => [
      query(q, 10),
      query(q, 10, { filter: { parity: 'odd' } }),
      query(q, 10, { namespace: 'small' }),
    ]);
    const before = requests.map((r) => store.search(r).results);
    const statsBefore = store.stats();
    const documentBefore = store.getDocument('default', 'doc7');
    store.close();

    const reopened = IndexStore.open(options);
    assert.deepEqual(
      requests.map((r) => reopened.search(r).results),
      before,
    );
    assert.deepEqual({ ...reopened.stats(), rss_bytes: 0 }, { ...statsBefore, rss_bytes: 0 });
    assert.deepEqual(reopened.getDocument('default', 'doc7'), documentBefore);

    // The free list survived: new chunks reuse the eight deleted labels.
    reopened.upsert({ chunks: makeChunks(randomUnitVectors(8, DIM, 21), { prefix: 'r' }) });
    assert.equal(reopened.stats().index_elements, statsBefore.index_elements);
    reopened.close();
  });

  it('keeps insertion order of documents and chunks across a reopen', () => {
    const dataDir = freshDir();
    const options = { dataDir, dim: DIM, space: 'cosine' as const, autoSaveMs: 0 };
    const store = IndexStore.open(options);
    const vectors = randomUnitVectors(6, DIM, 22);
    const chunks = makeChunks(vectors, { perDocument: 6 }).reverse();
    store.upsert({ chunks });
    store.close();
    const reopened = IndexStore.open(options);
    assert.deepEqual(reopened.getDocument('default', 'doc0')?.chunks.map((c) => c.id), ['c5', 'c4', 'c3', 'c2', 'c1', 'c0']);
  });

  it('reopens an empty snapshot with its capacity intact', () => {
    const dataDir = freshDir();
    const options = { dataDir, dim: DIM, space: 'l2' as const, autoSaveMs: 0, initialCapacity: 32 };
    const store = IndexStore.open(options);
    store.save();
    const reopened = IndexStore.open(options);
    assert.equal(reopened.stats().capacity, 32);
    assert.equal(reopened.search(query(new Float32Array(DIM), 5)).results[0]?.namespace_found, false);
    const vectors = randomUnitVectors(3, DIM, 29);
    reopened.upsert({ chunks: makeChunks(vectors) });
    assert.equal(hitIds(reopened, query(vectors[1] as Float32Array, 1))[0], 'c1');
  });

  it('writes a CURRENT pointer and keeps only the live snapshot', () => {
    const dataDir = freshDir();
    const store = IndexStore.open({ dataDir, dim: DIM, space: 'cosine', autoSaveMs: 0 });
    store.upsert({ chunks: makeChunks(randomUnitVectors(3, DIM, 23)) });
    store.save();
    store.upsert({ chunks: makeChunks(randomUnitVectors(3, DIM, 24), { prefix: 'x' }) });
    store.save();
    const current = readFileSync(join(dataDir, 'CURRENT'), 'utf8').trim();
    assert.equal(current, 'snapshot-000000000002');
    assert.deepEqual(readdirSync(dataDir).sort(), ['CURRENT', current, 'wal']);
    assert.deepEqual(readdirSync(join(dataDir, current)).sort(), ['chunks.jsonl', 'floors.jsonl', 'index.hnsw', 'manifest.json', 'vectors.f32']);
  });

  it('ignores and cleans up the leftovers of an interrupted save', () => {
    const dataDir = freshDir();
    const options = { dataDir, dim: DIM, space: 'cosine' as const, autoSaveMs: 0 };
    const store = IndexStore.open(options);
    store.upsert({ chunks: makeChunks(randomUnitVectors(3, DIM, 25)) });
    store.close();
    // A save that died while writing its temporary directory.
    mkdirSync(join(dataDir, '.tmp-snapshot-000000000002'));
    writeFileSync(join(dataDir, '.tmp-snapshot-000000000002', 'index.hnsw'), 'torn');
    const reopened = IndexStore.open(options);
    assert.equal(reopened.stats().count, 3);
    assert.ok(!existsSync(join(dataDir, '.tmp-snapshot-000000000002')));
  });

  it('snapshots shortly after a write, without close()', async () => {
    const dataDir = freshDir();
    const store = IndexStore.open({ dataDir, dim: DIM, space: 'cosine', autoSaveMs: 20 });
    store.upsert({ chunks: makeChunks(randomUnitVectors(5, DIM, 26)) });
    assert.ok(!existsSync(join(dataDir, 'CURRENT')));
    await sleep(150);
    assert.ok(existsSync(join(dataDir, 'CURRENT')), 'a timed snapshot was written');
    const copy = IndexStore.open({ dataDir, dim: DIM, space: 'cosine', autoSaveMs: 0 });
    assert.equal(copy.stats().count, 5);
    store.close();
  });

  it('refuses to open a data dir built with another dimension or space', () => {
    const dataDir = freshDir();
    const store = IndexStore.open({ dataDir, dim: DIM, space: 'cosine', autoSaveMs: 0 });
    store.upsert({ chunks: makeChunks(randomUnitVectors(2, DIM, 27)) });
    store.close();
    assert.throws(() => IndexStore.open({ dataDir, dim: DIM * 2, space: 'cosine' }), /16-dimensional cosine index/);
    assert.throws(() => IndexStore.open({ dataDir, dim: DIM, space: 'l2' }), /space l2/);
  });

  it('refuses writes after close', () => {
    const store = openStore();
    store.close();
    assertRagwayError(() => store.upsert({ chunks: makeChunks(randomUnitVectors(1, DIM, 28)) }), 'RAGWAY_ERR_NOT_READY', null);
  });
});
