import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IndexStore } from '../../../shards/index-store.js';
import { encodeVector, type Chunk, type SearchRequest } from '../../../shards/protocol.js';
import { mulberry32, randomUnitVectors } from '../../helpers/random.js';
import { DIM, assertRagwayError, exactTopK, freshDir, hitIds, makeChunks, openStore, query } from './store-fixtures.js';

describe('IndexStore', () => {
  it('upserts and finds each vector as its own nearest neighbour', () => {
    const store = openStore();
    const vectors = randomUnitVectors(50, DIM, 1);
    const response = store.upsert({ chunks: makeChunks(vectors) });
    assert.deepEqual(response, { upserted: 50, removed: 0, epoch: 1 });

    const result = store.search(query(vectors[3] as Float32Array, 5));
    assert.equal(result.epoch, 1);
    assert.equal(typeof result.took_ms, 'number');
    const first = result.results[0];
    assert.ok(first?.namespace_found);
    assert.equal(first.hits.length, 5);
    const top = first.hits[0];
    assert.equal(top?.id, 'c3');
    assert.equal(top?.document_id, 'doc0');
    assert.equal(top?.text, 'text of c3');
    assert.deepEqual(top?.metadata, { i: 3, lang: 'en', parity: 'odd' });
    assert.ok(Math.abs((top?.score ?? 0) - 1) < 1e-5);
    const scores = first.hits.map((h) => h.score);
    assert.deepEqual(scores, [...scores].sort((a, b) => b - a));
  });

  it('omits text and metadata when asked to', () => {
    const store = openStore();
    const vectors = randomUnitVectors(5, DIM, 2);
    store.upsert({ chunks: makeChunks(vectors) });
    const hit = store.search({ ...query(vectors[0] as Float32Array, 1), include_text: false, include_metadata: false })
      .results[0]?.hits[0];
    assert.deepEqual(Object.keys(hit ?? {}).sort(), ['document_id', 'id', 'score']);
  });

  it('answers a batch of queries, each with its own k and namespace', () => {
    const store = openStore();
    const vectors = randomUnitVectors(20, DIM, 3);
    store.upsert({ chunks: makeChunks(vectors) });
    const response = store.search({
      queries: [
        { vector: encodeVector(vectors[0] as Float32Array), k: 1, namespace: 'default' },
        { vector: encodeVector(vectors[1] as Float32Array), k: 3, namespace: 'default' },
        { vector: encodeVector(vectors[2] as Float32Array), k: 3, namespace: 'elsewhere' },
      ],
    });
    assert.deepEqual(
      response.results.map((r) => [r.namespace_found, r.hits.length, r.hits[0]?.id]),
      [
        [true, 1, 'c0'],
        [true, 3, 'c1'],
        [false, 0, undefined],
      ],
    );
  });

  it('updates an existing chunk in place, keeping its label', () => {
    const store = openStore();
    const vectors = randomUnitVectors(10, DIM, 4);
    store.upsert({ chunks: makeChunks(vectors) });
    const before = store.stats();
    const [replacement] = randomUnitVectors(1, DIM, 99);
    const chunk = { ...(makeChunks(vectors)[2] as Chunk), text: 'new text', metadata: { v: 2 }, vector: encodeVector(replacement as Float32Array) };
    assert.deepEqual(store.upsert({ chunks: [chunk] }), { upserted: 1, removed: 0, epoch: 2 });

    const after = store.stats();
    assert.equal(after.count, 10);
    assert.equal(after.index_elements, before.index_elements);
    const top = store.search(query(replacement as Float32Array, 1)).results[0]?.hits[0];
    assert.equal(top?.id, 'c2');
    assert.equal(top?.text, 'new text');
    assert.deepEqual(top?.metadata, { v: 2 });
    assert.ok(Math.abs((top?.score ?? 0) - 1) < 1e-5);
  });

  it('moves a chunk to another document when its document_id changes', () => {
    const store = openStore();
    const vectors = randomUnitVectors(4, DIM, 5);
    store.upsert({ chunks: makeChunks(vectors, { perDocument: 2 }) });
    const moved = { ...(makeChunks(vectors, { perDocument: 2 })[0] as Chunk), document_id: 'doc1' };
    store.upsert({ chunks: [moved] });
    assert.deepEqual(store.getDocument('default', 'doc0')?.chunks.map((c) => c.id), ['c1']);
    assert.deepEqual(store.getDocument('default', 'doc1')?.chunks.map((c) => c.id), ['c2', 'c3', 'c0']);
    assert.equal(store.stats().documents, 2);
  });

  it('deletes documents and reuses their labels', () => {
    const store = openStore();
    const vectors = randomUnitVectors(12, DIM, 6);
    store.upsert({ chunks: makeChunks(vectors) }); // doc0..doc2, four chunks each
    const response = store.delete({ namespace: 'default', document_ids: ['doc1', 'missing', 'doc1'] });
    assert.deepEqual(response, { documents_deleted: 1, chunks_deleted: 4, epoch: 2 });
    assert.equal(store.getDocument('default', 'doc1'), undefined);
    assert.equal(store.stats().count, 8);
    assert.equal(store.stats().documents, 2);
    assert.equal(store.stats().index_elements, 12);
    const ids = hitIds(store, query(vectors[5] as Float32Array, 12));
    assert.equal(ids.length, 8);
    assert.ok(!ids.some((id) => ['c4', 'c5', 'c6', 'c7'].includes(id)));

    const fresh = randomUnitVectors(4, DIM, 7);
    store.upsert({ chunks: makeChunks(fresh, { prefix: 'n' }) });
    const stats = store.stats();
    assert.equal(stats.count, 12);
    assert.equal(stats.index_elements, 12, 'new chunks take the deleted labels, the index does not grow');
    assert.equal(hitIds(store, query(fresh[2] as Float32Array, 1))[0], 'n2');
  });

  it('does not bump the epoch for a delete that removes nothing', () => {
    const store = openStore();
    store.upsert({ chunks: makeChunks(randomUnitVectors(4, DIM, 8)) });
    assert.deepEqual(store.delete({ namespace: 'default', document_ids: ['nope'] }), {
      documents_deleted: 0,
      chunks_deleted: 0,
      epoch: 1,
    });
    assert.deepEqual(store.delete({ namespace: 'other', document_ids: ['doc0'] }).epoch, 1);
    assert.equal(store.delete({ namespace: 'default', document_ids: ['doc0'] }).epoch, 2);
    assert.equal(store.stats().epoch, 2);
  });

  it('replace_documents removes the chunks a re-ingested document no longer has', () => {
    const store = openStore();
    const vectors = randomUnitVectors(8, DIM, 9);
    store.upsert({ chunks: makeChunks(vectors) }); // doc0: c0..c3, doc1: c4..c7
    const shorter = makeChunks(vectors).slice(0, 2); // doc0: c0, c1
    assert.deepEqual(store.upsert({ chunks: shorter, replace_documents: true }), { upserted: 2, removed: 2, epoch: 2 });
    assert.deepEqual(store.getDocument('default', 'doc0')?.chunks.map((c) => c.id), ['c0', 'c1']);
    assert.equal(store.getDocument('default', 'doc1')?.chunks.length, 4, 'documents not named stay untouched');
    assert.equal(store.stats().count, 6);
  });

  it('grows past its initial capacity by doubling', () => {
    const store = openStore({ initialCapacity: 8 });
    const vectors = randomUnitVectors(100, DIM, 10);
    store.upsert({ chunks: makeChunks(vectors).slice(0, 5) });
    assert.equal(store.stats().capacity, 8);
    store.upsert({ chunks: makeChunks(vectors).slice(5) });
    const stats = store.stats();
    assert.equal(stats.capacity, 128);
    assert.equal(stats.count, 100);
    for (const i of [0, 42, 99]) assert.equal(hitIds(store, query(vectors[i] as Float32Array, 1))[0], `c${i}`);
  });

  it('returns what exists when k exceeds the chunk count, on both search paths', () => {
    for (const bruteForceThreshold of [0, 10_000]) {
      const store = openStore({ initialCapacity: 16, bruteForceThreshold });
      const vectors = randomUnitVectors(10, DIM, 11);
      store.upsert({ chunks: makeChunks(vectors) });
      store.delete({ namespace: 'default', document_ids: ['doc0'] });
      assert.equal(hitIds(store, query(vectors[9] as Float32Array, 10_000)).length, 6);
    }
  });

  describe('filtered search on a few thousand vectors', () => {
    const count = 3000;
    const vectors = randomUnitVectors(count, DIM, 12);
    const queries = randomUnitVectors(10, DIM, 13);
    const chunks = makeChunks(vectors);
    const isGerman = (i: number): boolean => i % 100 === 7; // 30 of 3000
    const isEven = (i: number): boolean => i % 2 === 0;

    it('is exact on the brute-force path', () => {
      const store = openStore({ bruteForceThreshold: 10_000 });
      store.upsert({ chunks });
      for (const q of queries) {
        assert.deepEqual(hitIds(store, query(q, 10, { filter: { lang: 'de' } })), exactTopK(vectors, q, 10, isGerman));
        assert.deepEqual(hitIds(store, query(q, 10, { filter: { parity: 'even' } })), exactTopK(vectors, q, 10, isEven));
        assert.deepEqual(hitIds(store, query(q, 10)), exactTopK(vectors, q, 10, () => true));
        assert.equal(hitIds(store, query(q, 50, { filter: { lang: 'de' } })).length, 30);
      }
    });

    it('returns k matching hits through the hnswlib filter path, even with a selective filter', () => {
      const store = openStore({ bruteForceThreshold: 0 });
      store.upsert({ chunks });
      let overlap = 0;
      for (const q of queries) {
        for (const [filter, keep] of [
          [{ lang: 'de' }, isGerman],
          [{ parity: 'even' }, isEven],
        ] as const) {
          const response = store.search(query(q, 10, { filter }));
          const hits = response.results[0]?.hits ?? [];
          assert.equal(hits.length, 10);
          for (const hit of hits) assert.ok(keep(Number(hit.id.slice(1))), `${hit.id} violates ${JSON.stringify(filter)}`);
          const truth = new Set(exactTopK(vectors, q, 10, keep));
          overlap += hits.filter((h) => truth.has(h.id)).length;
        }
      }
      assert.ok(overlap / (queries.length * 20) >= 0.8, `recall ${overlap / (queries.length * 20)}`);
    });

    it('keeps other namespaces out of graph searches', () => {
      const store = openStore({ bruteForceThreshold: 0 });
      store.upsert({ chunks });
      const others = randomUnitVectors(500, DIM, 14);
      store.upsert({ chunks: makeChunks(others, { namespace: 'other', prefix: 'o' }) });
      for (const q of queries.slice(0, 3)) {
        const defaultIds = hitIds(store, query(q, 20));
        assert.equal(defaultIds.length, 20);
        assert.ok(defaultIds.every((id) => id.startsWith('c')));
        const otherIds = hitIds(store, query(q, 20, { namespace: 'other' }));
        assert.equal(otherIds.length, 20);
        assert.ok(otherIds.every((id) => id.startsWith('o')));
      }
    });
  });

  it('isolates namespaces, even for equal chunk ids', () => {
    const store = openStore();
    const [a, b] = randomUnitVectors(2, DIM, 15) as [Float32Array, Float32Array];
    store.upsert({
      chunks: [
        { id: 'same', document_id: 'd', namespace: 'alpha', text: 'alpha', vector: encodeVector(a) },
        { id: 'same', document_id: 'd', namespace: 'beta', text: 'beta', vector: encodeVector(b) },
      ],
    });
    const alpha = store.search(query(b, 5, { namespace: 'alpha' })).results[0];
    assert.deepEqual(alpha?.hits.map((h) => h.text), ['alpha']);
    assert.deepEqual(store.stats().namespaces, { alpha: 1, beta: 1 });
    store.delete({ namespace: 'alpha', document_ids: ['d'] });
    assert.deepEqual(store.stats().namespaces, { beta: 1 });
    assert.equal(store.search(query(a, 5, { namespace: 'alpha' })).results[0]?.namespace_found, false);
    assert.equal(store.getDocument('beta', 'd')?.chunks[0]?.text, 'beta');
  });

  it('scores l2 as negative squared distance and ip as the inner product', () => {
    const a = new Float32Array(DIM).fill(0);
    a[0] = 2;
    const b = new Float32Array(DIM).fill(0);
    b[1] = 1;
    for (const bruteForceThreshold of [0, 10_000]) {
      const l2 = openStore({ space: 'l2', bruteForceThreshold });
      l2.upsert({ chunks: makeChunks([a, b]) });
      const l2Hits = l2.search(query(a, 2)).results[0]?.hits ?? [];
      assert.deepEqual(l2Hits.map((h) => [h.id, h.score]), [
        ['c0', -0],
        ['c1', -5],
      ]);
      const ip = openStore({ space: 'ip', bruteForceThreshold });
      ip.upsert({ chunks: makeChunks([a, b]) });
      const ipHits = ip.search(query(a, 2)).results[0]?.hits ?? [];
      assert.deepEqual(ipHits.map((h) => [h.id, Math.round(h.score * 1e6) / 1e6]), [
        ['c0', 4],
        ['c1', 0],
      ]);
    }
  });

  describe('validation', () => {
    const vectors = randomUnitVectors(3, DIM, 16);

    it('rejects a wrong-dimension vector before changing anything', () => {
      const store = openStore();
      const chunks = makeChunks(vectors);
      (chunks[2] as Chunk).vector = encodeVector(new Float32Array(DIM + 1));
      assertRagwayError(() => store.upsert({ chunks }), 'RAGWAY_ERR_INVALID_REQUEST', 'chunks[2].vector');
      assert.equal(store.stats().count, 0);
      assert.equal(store.stats().epoch, 0);
    });

    it('rejects NaN and Infinity', () => {
      const store = openStore();
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
        const vector = new Float32Array(DIM).fill(0.1);
        vector[5] = bad;
        const chunks = makeChunks([vectors[0] as Float32Array, vector]);
        assertRagwayError(() => store.upsert({ chunks }), 'RAGWAY_ERR_INVALID_REQUEST', 'chunks[1].vector');
      }
      assert.equal(store.stats().count, 0);
    });

    it('rejects a vector whose byte length is not a multiple of four', () => {
      const store = openStore();
      const chunks = makeChunks(vectors);
      (chunks[0] as Chunk).vector = Buffer.from([1, 2, 3]).toString('base64');
      assertRagwayError(() => store.upsert({ chunks }), 'RAGWAY_ERR_INVALID_REQUEST', 'chunks[0].vector');
    });

    it('rejects a chunk id repeated within one request', () => {
      const store = openStore();
      const chunks = makeChunks(vectors);
      (chunks[2] as Chunk).id = 'c0';
      assertRagwayError(() => store.upsert({ chunks }), 'RAGWAY_ERR_INVALID_REQUEST', 'chunks[2].id');
    });

    it('names the bad query vector and the bad filter operator', () => {
      const store = openStore();
      store.upsert({ chunks: makeChunks(vectors) });
      const good = encodeVector(vectors[0] as Float32Array);
      assertRagwayError(
        () =>
          store.search({
            queries: [
              { vector: good, k: 1, namespace: 'default' },
              { vector: encodeVector(new Float32Array(3)), k: 1, namespace: 'default' },
            ],
          }),
        'RAGWAY_ERR_INVALID_REQUEST',
        'queries[1].vector',
      );
      assertRagwayError(
        () =>
          store.search({
            queries: [
              { vector: good, k: 1, namespace: 'default' },
              { vector: good, k: 1, namespace: 'default', filter: { lang: { $regex: 'e' } } },
            ],
          }),
        'RAGWAY_ERR_INVALID_FILTER',
        'queries[1].filter.lang.$regex',
      );
    });
  });

  it('bumps the epoch on every write that changes something', () => {
    const store = openStore();
    const vectors = randomUnitVectors(8, DIM, 17);
    assert.equal(store.stats().epoch, 0);
    assert.equal(store.upsert({ chunks: makeChunks(vectors).slice(0, 4) }).epoch, 1);
    assert.equal(store.upsert({ chunks: makeChunks(vectors).slice(4) }).epoch, 2);
    assert.equal(store.delete({ namespace: 'default', document_ids: ['doc0'] }).epoch, 3);
    assert.equal(store.delete({ namespace: 'default', document_ids: ['doc0'] }).epoch, 3);
    assert.equal(store.search(query(vectors[0] as Float32Array, 1)).epoch, 3);
  });

  it('generates the same vectors for the same seed', () => {
    assert.deepEqual(randomUnitVectors(2, 4, 5), randomUnitVectors(2, 4, 5));
    assert.notDeepEqual(randomUnitVectors(1, 4, 5), randomUnitVectors(1, 4, 6));
    const random = mulberry32(1);
    const draws = Array.from({ length: 1000 }, random);
    assert.ok(draws.every((x) => x >= 0 && x < 1));
  });
});
