// Shared by the IndexStore unit tests: fresh stores in a temp dir, chunk batches and
// exact ground truth to compare searches against.
import assert from 'node:assert/strict';
import { isRagwayError } from '../../../core/errors.js';
import type { IndexStore } from '../../../shards/index-store.js';
import { encodeVector, type Chunk, type SearchRequest, type ShardQuery } from '../../../shards/protocol.js';
export { STORE_DIM as DIM, freshDir, openStore } from '../../helpers/index-store.js';

export function makeChunks(vectors: Float32Array[], options: { namespace?: string; perDocument?: number; prefix?: string } = {}): Chunk[] {
  const { namespace = 'default', perDocument = 4, prefix = 'c' } = options;
  return vectors.map((vector, i) => ({
    id: `${prefix}${i}`,
    document_id: `doc${Math.floor(i / perDocument)}`,
    namespace,
    text: `text of ${prefix}${i}`,
    metadata: { i, lang: i % 100 === 7 ? 'de' : 'en', parity: i % 2 === 0 ? 'even' : 'odd' },
    vector: encodeVector(vector),
  }));
}

export function query(vector: Float32Array, k: number, extra: Partial<ShardQuery> = {}): SearchRequest {
  return { queries: [{ vector: encodeVector(vector), k, namespace: 'default', ...extra }] };
}

export function hitIds(store: IndexStore, request: SearchRequest, index = 0): string[] {
  return (store.search(request).results[index]?.hits ?? []).map((h) => h.id);
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let d = 0; d < a.length; d++) {
    dot += (a[d] as number) * (b[d] as number);
    na += (a[d] as number) ** 2;
    nb += (b[d] as number) ** 2;
  }
  return dot / Math.sqrt(na * nb);
}

/** Ground truth: ids of the k chunks most similar to q among those passing `keep`. */
export function exactTopK(vectors: Float32Array[], q: Float32Array, k: number, keep: (i: number) => boolean, prefix = 'c'): string[] {
  return vectors
    .map((v, i) => ({ i, s: cosine(v, q) }))
    .filter(({ i }) => keep(i))
    .sort((a, b) => b.s - a.s)
    .slice(0, k)
    .map(({ i }) => `${prefix}${i}`);
}

export function assertRagwayError(fn: () => unknown, code: string, param: string | null): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isRagwayError(err), `expected a RagwayError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.param, param);
    return true;
  });
}

