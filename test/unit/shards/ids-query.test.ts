// The "ids" query mode: a shard returns the chunks it holds among those named, in the order
// named, inside the query's namespace only, and still under the query's filter.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SearchRequest } from '../../../shards/protocol.js';
import { randomUnitVectors } from '../../helpers/random.js';
import { DIM, assertRagwayError, makeChunks, openStore } from './store-fixtures.js';

function fetch(ids: string[], extra: Partial<SearchRequest['queries'][number]> = {}, include: Partial<SearchRequest> = {}): SearchRequest {
  return { queries: [{ mode: 'ids', ids, k: Math.max(1, ids.length), namespace: 'default', ...extra }], ...include };
}

describe('ids queries', () => {
  it('returns the named chunks in the order asked, with text and metadata, once each', () => {
    const store = openStore();
    store.upsert({ chunks: makeChunks(randomUnitVectors(12, DIM, 3)) });
    const result = store.search(fetch(['c7', 'c2', 'missing', 'c7', 'c11'])).results[0];
    assert.deepEqual(
      result?.hits.map((hit) => hit.id),
      ['c7', 'c2', 'c11'],
    );
    assert.equal(result?.namespace_found, true);
    const seven = result?.hits[0];
    assert.equal(seven?.text, 'text of c7');
    assert.deepEqual(seven?.metadata, { i: 7, lang: 'de', parity: 'odd' });
    assert.equal(seven?.document_id, 'doc1');
    assert.equal(seven?.score, 0);
    store.close();
  });

  it('honours include_text and include_metadata', () => {
    const store = openStore();
    store.upsert({ chunks: makeChunks(randomUnitVectors(4, DIM, 3)) });
    const [hit] = store.search(fetch(['c1'], {}, { include_text: false, include_metadata: false })).results[0]?.hits ?? [];
    assert.deepEqual(hit, { id: 'c1', document_id: 'doc0', score: 0 });
    store.close();
  });

  it('never reaches into another namespace, and applies the filter', () => {
    const store = openStore();
    store.upsert({ chunks: makeChunks(randomUnitVectors(6, DIM, 3), { namespace: 'a', prefix: 'a' }) });
    store.upsert({ chunks: makeChunks(randomUnitVectors(6, DIM, 4), { namespace: 'b', prefix: 'b' }) });
    const asA = store.search(fetch(['a1', 'b1', 'b2'], { namespace: 'a' })).results[0];
    assert.deepEqual(asA?.hits.map((hit) => hit.id), ['a1']);
    const absent = store.search(fetch(['a1'], { namespace: 'nowhere' })).results[0];
    assert.deepEqual(absent, { hits: [], namespace_found: false });
    const even = store.search(fetch(['a0', 'a1', 'a2', 'a3'], { namespace: 'a', filter: { parity: 'even' } })).results[0];
    assert.deepEqual(even?.hits.map((hit) => hit.id), ['a0', 'a2']);
    store.close();
  });

  it('refuses an ids query without ids', () => {
    const store = openStore();
    assertRagwayError(() => store.search({ queries: [{ mode: 'ids', k: 1, namespace: 'default' }] }), 'RAGWAY_ERR_INVALID_REQUEST', 'queries[0].ids');
    store.close();
  });
});
