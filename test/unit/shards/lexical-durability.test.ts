// The lexical index is changed by the same writes as the vectors, so it survives what they
// survive: a snapshot and reopen, a crash (WAL replay without a snapshot), deletes and
// re-ingests, a peer's export, and it keeps namespaces apart.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IndexStore } from '../../../shards/index-store.js';
import { encodeVector, type Chunk, type SearchRequest } from '../../../shards/protocol.js';
import { randomUnitVectors } from '../../helpers/random.js';
import { DIM, freshDir } from './store-fixtures.js';

const TEXTS = [
  'Vitamin D deficiency is associated with bone fractures',
  'Running shoes reduce knee injuries in marathon runners',
  'The stock market fell sharply after the announcement',
  'Fractured bones heal faster with adequate vitamin intake',
];

function chunks(namespace = 'default'): Chunk[] {
  return randomUnitVectors(TEXTS.length, DIM, 5).map((vector, i) => ({
    id: `c${i}`,
    document_id: `d${i}`,
    namespace,
    text: TEXTS[i] as string,
    metadata: { i },
    vector: encodeVector(vector),
  }));
}

function lexical(text: string, namespace = 'default'): SearchRequest {
  return { queries: [{ mode: 'lexical', text, k: 10, namespace }] };
}

function ids(store: IndexStore, text: string, namespace = 'default'): string[] {
  return (store.search(lexical(text, namespace)).results[0]?.hits ?? []).map((hit) => hit.id);
}

const options = (dataDir: string) => ({ dataDir, dim: DIM, space: 'cosine' as const, autoSaveMs: 0 });

describe('lexical index durability', () => {
  it('analyzes text: stems, drops stopwords, ranks by BM25', () => {
    const store = IndexStore.open(options(freshDir()));
    store.upsert({ chunks: chunks() });
    // "fractures" / "Fractured" stem alike; "the" is a stopword and matches nothing on its own.
    assert.deepEqual(ids(store, 'fracture vitamin').sort(), ['c0', 'c3']);
    assert.deepEqual(ids(store, 'the'), []);
    assert.deepEqual(ids(store, 'marathon')[0], 'c1');
    store.close();
  });

  it('survives a snapshot and reopen with the same scores', () => {
    const dataDir = freshDir();
    const store = IndexStore.open(options(dataDir));
    store.upsert({ chunks: chunks() });
    const before = store.search(lexical('vitamin bones')).results;
    store.close();
    const reopened = IndexStore.open(options(dataDir));
    assert.deepEqual(reopened.search(lexical('vitamin bones')).results, before);
    reopened.close();
  });

  it('is rebuilt by WAL replay after a crash (no snapshot)', async () => {
    const dataDir = freshDir();
    const store = IndexStore.open(options(dataDir));
    store.upsert({ chunks: chunks() });
    store.delete({ namespace: 'default', document_ids: ['d3'] });
    await store.durable();
    const before = store.search(lexical('vitamin bones')).results;
    // No close(): the next open sees only the log, as after kill -9.
    const recovered = IndexStore.open(options(dataDir));
    assert.deepEqual(recovered.search(lexical('vitamin bones')).results, before);
    assert.deepEqual(ids(recovered, 'fracture'), ['c0']);
    recovered.close();
    store.close();
  });

  it('forgets deleted and replaced text, and its statistics follow', () => {
    const store = IndexStore.open(options(freshDir()));
    store.upsert({ chunks: chunks() });
    store.delete({ namespace: 'default', document_ids: ['d0'] });
    assert.deepEqual(ids(store, 'vitamin'), ['c3']);
    const [first] = chunks();
    store.upsert({ chunks: [{ ...(first as Chunk), id: 'c3', document_id: 'd3', text: 'completely different words' }], replace_documents: true });
    assert.deepEqual(ids(store, 'vitamin'), []);
    assert.deepEqual(ids(store, 'different'), ['c3']);
    const stats = store.search({ queries: [{ mode: 'lexical', text: 'vitamin', k: 1, namespace: 'default', stats_only: true }] }).results[0]?.term_stats;
    assert.deepEqual(stats, { doc_count: 3, total_length: stats?.total_length, df: { vitamin: 0 } });
    store.close();
  });

  it('keeps namespaces apart, in statistics too', () => {
    const store = IndexStore.open(options(freshDir()));
    store.upsert({ chunks: chunks('a') });
    store.upsert({ chunks: chunks('b').slice(0, 1) });
    assert.deepEqual(ids(store, 'marathon', 'b'), []);
    assert.deepEqual(ids(store, 'marathon', 'a'), ['c1']);
    const stats = (ns: string) => store.search({ queries: [{ mode: 'lexical', text: 'vitamin', k: 1, namespace: ns, stats_only: true }] }).results[0]?.term_stats;
    assert.equal(stats('a')?.doc_count, 4);
    assert.equal(stats('b')?.doc_count, 1);
    store.close();
  });

  it('comes along with a peer export (catch-up)', () => {
    const source = IndexStore.open(options(freshDir()));
    source.upsert({ chunks: chunks() });
    const target = IndexStore.open(options(freshDir()));
    for (const line of source.exportLines()) {
      const parsed = JSON.parse(line) as { type: string };
      if (parsed.type === 'document') target.importDocument(parsed as never);
    }
    target.completeImport(source.walSeq);
    assert.deepEqual(target.search(lexical('vitamin bones')).results, source.search(lexical('vitamin bones')).results);
    source.close();
    target.close();
  });

  it('refuses a lexical query without text and a vector query without a vector', () => {
    const store = IndexStore.open(options(freshDir()));
    assert.throws(() => store.search({ queries: [{ mode: 'lexical', k: 1, namespace: 'default' }] }), /needs a text/);
    assert.throws(() => store.search({ queries: [{ k: 1, namespace: 'default' }] }), /needs a vector/);
    store.close();
  });
});
