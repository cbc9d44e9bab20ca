// The one suite every ShardClient passes (docs/architecture.md §6.7): the in-process client over an
// IndexStore and the HTTP client over a real shard server must be indistinguishable to the
// code above them, errors included. Not a *.test.ts file: the runners import it.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { isRagwayError } from '../../../core/errors.js';
import type { ShardClient } from '../../../retriever/shard-client.js';
import { PROTOCOL_VERSION, encodeVector, type Chunk, type SearchRequest } from '../../../shards/protocol.js';
import { hasCode } from '../../helpers/errors.js';

/** The shard behind makeClient() must be empty, with this dimension and space. */
export const CONTRACT_DIM = 8;
export const CONTRACT_SPACE = 'cosine';

export interface ContractClient {
  client: ShardClient;
  cleanup(): Promise<void>;
}

const NS = 'contract';

function unit(values: number[]): Float32Array {
  const vector = new Float32Array(CONTRACT_DIM);
  values.forEach((value, i) => (vector[i] = value));
  let norm = 0;
  for (const value of vector) norm += value * value;
  norm = Math.sqrt(norm);
  return vector.map((value) => value / norm);
}

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] ?? 0) * (b[i] ?? 0);
  return sum;
}

// Three documents; "doc-b" has two chunks. Directions are chosen so every score is distinct.
const VECTORS = {
  a1: unit([1, 0, 0, 0, 0, 0, 0, 0]),
  b1: unit([0, 1, 0, 0, 0, 0, 0, 0]),
  b2: unit([0.6, 0.8, 0, 0, 0, 0, 0, 0]),
  c1: unit([0, 0, 1, 0.2, 0, 0, 0, 0]),
} as const;

function chunk(id: keyof typeof VECTORS, documentId: string, metadata: Record<string, unknown>, namespace = NS): Chunk {
  return { id, document_id: documentId, namespace, text: `text of ${id}`, metadata, vector: encodeVector(VECTORS[id]) };
}

const CORPUS: Chunk[] = [
  chunk('a1', 'doc-a', { lang: 'en', year: 2020 }),
  chunk('b1', 'doc-b', { lang: 'fr', year: 2021 }),
  chunk('b2', 'doc-b', { lang: 'en', year: 2022 }),
  chunk('c1', 'doc-c', { lang: 'de', year: 2023 }),
];

function searchRequest(vector: Float32Array, extra: Partial<SearchRequest['queries'][number]> = {}): SearchRequest {
  return { queries: [{ vector: encodeVector(vector), k: 10, namespace: NS, ...extra }] };
}

export function shardClientContract(name: string, makeClient: () => Promise<ContractClient>): void {
  describe(`ShardClient contract: ${name}`, () => {
    let made: ContractClient;
    let client: ShardClient;

    beforeEach(async () => {
      made = await makeClient();
      client = made.client;
    });

    afterEach(async () => {
      await made.client.close();
      await made.cleanup();
    });

    it('has a name for errors and metrics', () => {
      assert.equal(typeof client.name, 'string');
      assert.ok(client.name.length > 0);
    });

    it('upsert, then search finds the chunk with the cosine score', async () => {
      const upserted = await client.upsert({ chunks: CORPUS });
      assert.equal(upserted.upserted, CORPUS.length);
      assert.equal(upserted.removed, 0);

      const query = unit([0.9, 0.3, 0.1, 0, 0, 0, 0, 0]);
      const response = await client.search(searchRequest(query));
      assert.equal(response.epoch, upserted.epoch);
      assert.equal(typeof response.took_ms, 'number');
      assert.equal(response.results.length, 1);
      const result = response.results[0];
      assert.ok(result);
      assert.equal(result.namespace_found, true);

      const expected = (Object.keys(VECTORS) as (keyof typeof VECTORS)[])
        .map((id) => ({ id, score: dot(query, VECTORS[id]) }))
        .sort((x, y) => y.score - x.score);
      assert.deepEqual(
        result.hits.map((hit) => hit.id),
        expected.map((e) => e.id),
      );
      result.hits.forEach((hit, i) => assert.ok(Math.abs(hit.score - (expected[i]?.score ?? NaN)) < 1e-5, `${hit.id}: ${hit.score}`));
      const top = result.hits[0];
      assert.equal(top?.document_id, 'doc-a');
      assert.equal(top?.text, 'text of a1');
      assert.deepEqual(top?.metadata, { lang: 'en', year: 2020 });
    });

    it('answers a batch of queries in order, each with its own k', async () => {
      await client.upsert({ chunks: CORPUS });
      const response = await client.search({
        queries: [
          { vector: encodeVector(VECTORS.c1), k: 1, namespace: NS },
          { vector: encodeVector(VECTORS.b1), k: 2, namespace: NS },
          { vector: encodeVector(VECTORS.b1), k: 2, namespace: 'elsewhere' },
        ],
      });
      assert.equal(response.results.length, 3);
      assert.deepEqual(response.results[0]?.hits.map((h) => h.id), ['c1']);
      assert.deepEqual(response.results[1]?.hits.map((h) => h.id), ['b1', 'b2']);
      assert.ok(Math.abs((response.results[0]?.hits[0]?.score ?? 0) - 1) < 1e-5);
      assert.deepEqual(response.results[2], { hits: [], namespace_found: false });
    });

    it('leaves text and metadata out when asked to', async () => {
      await client.upsert({ chunks: CORPUS });
      const response = await client.search({ ...searchRequest(VECTORS.a1), include_text: false, include_metadata: false });
      const top = response.results[0]?.hits[0];
      assert.deepEqual(top && Object.keys(top).sort(), ['document_id', 'id', 'score']);
    });

    it('applies a metadata filter', async () => {
      await client.upsert({ chunks: CORPUS });
      const response = await client.search(searchRequest(VECTORS.a1, { filter: { lang: 'en', year: { $gte: 2021 } } }));
      assert.deepEqual(response.results[0]?.hits.map((h) => h.id), ['b2']);
    });

    it('updates a chunk in place: same id, new vector and text, count unchanged', async () => {
      await client.upsert({ chunks: CORPUS });
      const before = await client.stats();
      const moved = { ...chunk('c1', 'doc-c', { lang: 'de', year: 2024 }), text: 'rewritten', vector: encodeVector(VECTORS.a1) };
      const upserted = await client.upsert({ chunks: [moved] });
      assert.equal(upserted.upserted, 1);
      assert.ok(upserted.epoch > before.epoch, 'a write bumps the epoch');

      const after = await client.stats();
      assert.equal(after.count, before.count);
      const hits = (await client.search(searchRequest(VECTORS.a1, { k: 2 }))).results[0]?.hits ?? [];
      assert.deepEqual(hits.map((h) => h.id).sort(), ['a1', 'c1']);
      const c1 = hits.find((h) => h.id === 'c1');
      assert.ok(c1 && Math.abs(c1.score - 1) < 1e-5);
      assert.equal(c1.text, 'rewritten');
      assert.deepEqual(c1.metadata, { lang: 'de', year: 2024 });
    });

    it('replace_documents drops the chunks a re-ingested document no longer has', async () => {
      await client.upsert({ chunks: CORPUS });
      const result = await client.upsert({ chunks: [chunk('b1', 'doc-b', { lang: 'fr' })], replace_documents: true });
      assert.equal(result.removed, 1);
      const document = await client.getDocument(NS, 'doc-b');
      assert.deepEqual(document?.chunks.map((c) => c.id), ['b1']);
    });

    it('deletes whole documents', async () => {
      await client.upsert({ chunks: CORPUS });
      const deleted = await client.delete({ namespace: NS, document_ids: ['doc-b', 'doc-missing'] });
      assert.equal(deleted.documents_deleted, 1);
      assert.equal(deleted.chunks_deleted, 2);

      const hits = (await client.search(searchRequest(VECTORS.b1))).results[0]?.hits ?? [];
      assert.deepEqual(hits.map((h) => h.id).sort(), ['a1', 'c1']);
      assert.equal(await client.getDocument(NS, 'doc-b'), undefined);
      assert.equal((await client.stats()).count, 2);
    });

    it('getDocument returns the chunks of one document, or undefined', async () => {
      await client.upsert({ chunks: CORPUS });
      const document = await client.getDocument(NS, 'doc-b');
      assert.deepEqual(document, {
        document_id: 'doc-b',
        namespace: NS,
        chunks: [
          { id: 'b1', text: 'text of b1', metadata: { lang: 'fr', year: 2021 } },
          { id: 'b2', text: 'text of b2', metadata: { lang: 'en', year: 2022 } },
        ],
      });
      assert.equal(await client.getDocument(NS, 'doc-nope'), undefined);
      assert.equal(await client.getDocument('no-such-namespace', 'doc-b'), undefined);
    });

    it('serves a call scoped to its namespaces and refuses (403) one that reaches outside them', async () => {
      const other = chunk('c1', 'doc-other', {}, 'other');
      await client.upsert({ chunks: [...CORPUS, other] });
      const inScope = { namespaces: [NS] };
      const outOfScope = { namespaces: ['team-*', 'elsewhere'] };
      assert.equal((await client.search(searchRequest(VECTORS.a1), undefined, inScope)).results[0]?.hits[0]?.id, 'a1');
      assert.equal((await client.getDocument(NS, 'doc-a', undefined, { namespaces: ['cont*'] }))?.document_id, 'doc-a');
      const forbidden = hasCode('RAGWAY_ERR_NAMESPACE_FORBIDDEN');
      await assert.rejects(client.search(searchRequest(VECTORS.a1), undefined, outOfScope), forbidden);
      // One query outside the scope fails the whole batch: nothing of it is answered.
      await assert.rejects(
        client.search({ queries: [{ vector: encodeVector(VECTORS.a1), k: 3, namespace: NS }, { vector: encodeVector(VECTORS.c1), k: 3, namespace: 'other' }] }, undefined, inScope),
        forbidden,
      );
      await assert.rejects(client.getDocument('other', 'doc-other', undefined, inScope), forbidden);
      await assert.rejects(client.upsert({ chunks: [{ ...other, text: 'overwritten' }] }, undefined, inScope), forbidden);
      await assert.rejects(client.delete({ namespace: 'other', document_ids: ['doc-other'] }, undefined, inScope), forbidden);
      // Nothing outside the scope changed; the same calls unscoped (the cluster's own) are served.
      assert.equal((await client.getDocument('other', 'doc-other'))?.chunks[0]?.text, 'text of c1');
      assert.equal((await client.delete({ namespace: 'other', document_ids: ['doc-other'] })).documents_deleted, 1);
    });

    it('getDocument handles ids that need URL escaping', async () => {
      const id = 'docs/a b?c#d%e/ü';
      await client.upsert({ chunks: [{ ...chunk('a1', id, {}), id: 'x/y?z' }] });
      const document = await client.getDocument(NS, id);
      assert.equal(document?.document_id, id);
      assert.deepEqual(document?.chunks.map((c) => c.id), ['x/y?z']);
    });

    it('stats counts chunks, documents and namespaces', async () => {
      const empty = await client.stats();
      assert.equal(empty.protocol_version, PROTOCOL_VERSION);
      assert.equal(empty.dim, CONTRACT_DIM);
      assert.equal(empty.space, CONTRACT_SPACE);
      assert.equal(empty.count, 0);
      assert.equal(empty.documents, 0);
      assert.deepEqual(empty.namespaces, {});

      await client.upsert({ chunks: [...CORPUS, chunk('a1', 'doc-a', {}, 'other')] });
      const stats = await client.stats();
      assert.equal(stats.count, 5);
      assert.equal(stats.documents, 4);
      assert.deepEqual(stats.namespaces, { [NS]: 4, other: 1 });
      assert.ok(stats.epoch > empty.epoch);
    });

    it('an unknown filter operator is RAGWAY_ERR_INVALID_FILTER', async () => {
      await client.upsert({ chunks: CORPUS });
      await assert.rejects(client.search(searchRequest(VECTORS.a1, { filter: { lang: { $regex: '^e' } } })), (err) => {
        hasCode('RAGWAY_ERR_INVALID_FILTER')(err);
        assert.ok(isRagwayError(err) && err.statusCode === 400);
        return true;
      });
    });

    it('a vector of the wrong dimension is a 400, for search and upsert', async () => {
      await client.upsert({ chunks: CORPUS });
      const short = encodeVector(new Float32Array([1, 0, 0]));
      const check = (err: unknown): boolean => {
        assert.ok(isRagwayError(err), String(err));
        assert.equal(err.statusCode, 400);
        assert.match(err.message, /dimension/);
        return true;
      };
      await assert.rejects(client.search({ queries: [{ vector: short, k: 3, namespace: NS }] }), check);
      await assert.rejects(client.upsert({ chunks: [{ ...chunk('a1', 'doc-a', {}), vector: short }] }), check);
      assert.equal((await client.stats()).count, CORPUS.length, 'a rejected upsert changes nothing');
    });

    it('an already aborted signal is the caller abort, and does no work', async () => {
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(client.upsert({ chunks: CORPUS }, controller.signal), hasCode('RAGWAY_ERR_CLIENT_CLOSED'));
      await assert.rejects(client.search(searchRequest(VECTORS.a1), controller.signal), hasCode('RAGWAY_ERR_CLIENT_CLOSED'));
      const timedOut = AbortSignal.timeout(0);
      await new Promise((resolve) => setTimeout(resolve, 5));
      await assert.rejects(client.stats(timedOut), hasCode('RAGWAY_ERR_DEADLINE_EXCEEDED'));
      assert.equal((await client.stats()).count, 0);
    });
  });
}
