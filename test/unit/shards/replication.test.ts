// Versions, tombstones, the write-ahead log under IndexStore, the change feed and the
// export: the store-level half of "replicas converge and survive crashes".
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isRagwayError } from '../../../core/errors.js';
import { IndexStore, type IndexStoreOptions } from '../../../shards/index-store.js';
import {
  encodeVector,
  type Chunk,
  type DeleteRequest,
  type ExportDocument,
  type ExportLine,
  type SearchRequest,
  type UpsertRequest,
} from '../../../shards/protocol.js';
import { freshDir, openStore as openTestStore } from '../../helpers/index-store.js';
import { mulberry32, randomUnitVectors } from '../../helpers/random.js';

const DIM = 8;
/** Exact search (no HNSW approximation), so stores built in different orders must answer alike. */
function openStore(overrides: Partial<IndexStoreOptions> = {}): IndexStore {
  return openTestStore({ dim: DIM, bruteForceThreshold: 1_000_000, ...overrides });
}

type Write = { op: 'upsert'; request: UpsertRequest } | { op: 'delete'; request: DeleteRequest };

function apply(store: IndexStore, write: Write): void {
  if (write.op === 'upsert') store.upsert(write.request);
  else store.delete(write.request);
}

/**
 * A random history over a few documents in two namespaces: partial upserts, replaces,
 * deletes, and a chunk that moves between documents. Versions are unique per write.
 */
function history(seed: number, writes: number): Write[] {
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const vectors = randomUnitVectors(writes * 3, DIM, seed);
  let vectorIndex = 0;
  const out: Write[] = [];
  for (let w = 0; w < writes; w++) {
    const version = 1_000 + w * 13;
    const namespace = pick(['default', 'other']);
    const roll = random();
    if (roll < 0.2) {
      const ids = [pick(['a', 'b', 'c', 'd'])];
      if (random() < 0.3) ids.push(pick(['a', 'b', 'c', 'd', 'never-written']));
      out.push({ op: 'delete', request: { namespace, document_ids: ids, version } });
      continue;
    }
    const documentId = pick(['a', 'b', 'c', 'd']);
    const count = 1 + Math.floor(random() * 3);
    const ids = new Set<string>();
    for (let i = 0; i < count; i++) ids.add(random() < 0.15 ? 'mover' : `${documentId}-${Math.floor(random() * 4)}`);
    const chunks: Chunk[] = [...ids].map((id) => ({
      id,
      document_id: documentId,
      namespace,
      text: `${id} written at ${version}`,
      metadata: { version, documentId },
      vector: encodeVector(vectors[vectorIndex++] as Float32Array),
    }));
    out.push({ op: 'upsert', request: { chunks, version, ...(roll < 0.5 ? { replace_documents: true } : {}) } });
  }
  return out;
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const random = mulberry32(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

function parseExport(store: IndexStore): ExportLine[] {
  return [...store.exportLines()].map((line) => JSON.parse(line) as ExportLine);
}

/** Documents (live and tombstoned) with versions, order-independent. */
function contents(store: IndexStore): ExportDocument[] {
  return parseExport(store)
    .filter((line): line is ExportDocument => line.type === 'document')
    .map((doc) => ({ ...doc, chunks: [...doc.chunks].sort((a, b) => a.id.localeCompare(b.id)) }))
    .sort((a, b) => `${a.namespace}/${a.document_id}`.localeCompare(`${b.namespace}/${b.document_id}`));
}

const queries: SearchRequest = {
  queries: randomUnitVectors(6, DIM, 99).flatMap((q) =>
    ['default', 'other'].map((namespace) => ({ vector: encodeVector(q), k: 10, namespace })),
  ),
};

function observable(store: IndexStore): unknown {
  const { count, documents, namespaces } = store.stats();
  return { count, documents, namespaces, search: store.search(queries).results, contents: contents(store) };
}

describe('versioned writes', () => {
  it('converge whatever the order, and applying them twice changes nothing', () => {
    for (const seed of [1, 2, 3]) {
      const writes = history(seed, 80);
      const inOrder = openStore();
      for (const write of writes) apply(inOrder, write);
      const twiceShuffled = openStore();
      for (const write of shuffled([...writes, ...writes], seed + 100)) apply(twiceShuffled, write);
      const reversed = openStore();
      for (const write of [...writes].reverse()) apply(reversed, write);
      const expected = observable(inOrder);
      assert.ok(inOrder.stats().count > 0, 'the history leaves something to compare');
      assert.deepEqual(observable(twiceShuffled), expected, `seed ${seed}: shuffled and duplicated`);
      assert.deepEqual(observable(reversed), expected, `seed ${seed}: reversed`);

      const { epoch, wal_seq: walSeq } = inOrder.stats();
      for (const write of writes) apply(inOrder, write);
      assert.deepEqual({ epoch: inOrder.stats().epoch, wal_seq: inOrder.stats().wal_seq }, { epoch, wal_seq: walSeq }, 'replays are no-ops');
      for (const store of [inOrder, twiceShuffled, reversed]) store.close();
    }
  });

  it('keeps a tombstone that blocks an older upsert arriving late', () => {
    const store = openStore();
    const [v1, v2] = randomUnitVectors(2, DIM, 5) as [Float32Array, Float32Array];
    const chunk = (id: string, vector: Float32Array): Chunk => ({ id, document_id: 'doc', namespace: 'default', text: id, vector: encodeVector(vector) });
    store.upsert({ chunks: [chunk('c0', v1)], version: 10 });
    assert.deepEqual(store.delete({ namespace: 'default', document_ids: ['doc'], version: 20 }), { documents_deleted: 1, chunks_deleted: 1, epoch: 2 });
    assert.deepEqual(store.upsert({ chunks: [chunk('c1', v2)], version: 15 }), { upserted: 0, removed: 0, epoch: 2 });
    assert.equal(store.getDocument('default', 'doc'), undefined);
    assert.equal(store.stats().count, 0);
    const tombstone = contents(store)[0];
    assert.deepEqual(tombstone, { type: 'document', namespace: 'default', document_id: 'doc', version: 20, tombstone: true, chunks: [] });
    assert.equal(store.upsert({ chunks: [chunk('c1', v2)], version: 25 }).upserted, 1);
    assert.deepEqual(store.getDocument('default', 'doc')?.chunks.map((c) => c.id), ['c1']);
    store.close();
  });

  it('keeps the tombstone across a snapshot and a reopen', () => {
    const dataDir = freshDir();
    const store = openStore({ dataDir });
    store.delete({ namespace: 'default', document_ids: ['gone'], version: 50 });
    store.close();
    const reopened = openStore({ dataDir });
    const [vector] = randomUnitVectors(1, DIM, 6) as [Float32Array];
    const late = { id: 'x', document_id: 'gone', namespace: 'default', text: 'x', vector: encodeVector(vector) };
    assert.equal(reopened.upsert({ chunks: [late], version: 40 }).upserted, 0);
    reopened.close();
  });

  it('prunes tombstones older than the retention at snapshot time', async () => {
    const store = openStore({ tombstoneRetentionMs: 5 });
    store.delete({ namespace: 'default', document_ids: ['old', 'recent'], version: 10 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    store.delete({ namespace: 'default', document_ids: ['recent'], version: 11 });
    store.save();
    assert.deepEqual(
      contents(store).map((doc) => doc.document_id),
      ['recent'],
    );
    store.close();
  });

  it('gives unversioned writes a version above everything held', () => {
    const store = openStore();
    const [v1, v2] = randomUnitVectors(2, DIM, 7) as [Float32Array, Float32Array];
    const far = Date.now() * 1024 * 2;
    store.upsert({ chunks: [{ id: 'c', document_id: 'd', namespace: 'default', text: 'versioned', vector: encodeVector(v1) }], version: far });
    store.upsert({ chunks: [{ id: 'c', document_id: 'd', namespace: 'default', text: 'unversioned', vector: encodeVector(v2) }] });
    assert.equal(store.getDocument('default', 'd')?.chunks[0]?.text, 'unversioned');
    const [document] = contents(store);
    assert.ok((document?.chunks[0]?.version ?? 0) > far);
    store.close();
  });
});

describe('IndexStore durability', () => {
  it('recovers acknowledged writes from the log without a snapshot (a crash)', async () => {
    const dataDir = freshDir();
    const store = openStore({ dataDir });
    const writes = history(11, 60);
    for (const write of writes) apply(store, write);
    await store.durable();
    assert.ok(!existsSync(join(dataDir, 'CURRENT')), 'no snapshot was taken');
    // The store is abandoned, not closed: what is on disk is what a kill -9 leaves.
    const recovered = openStore({ dataDir });
    assert.deepEqual(observable(recovered), observable(store));
    assert.equal(recovered.walSeq, store.walSeq);
    assert.equal(recovered.currentEpoch, store.currentEpoch);
    recovered.close();
  });

  it('replays only the log after the snapshot and trims the log', async () => {
    const dataDir = freshDir();
    const store = openStore({ dataDir, wal: { retainRecords: 0, segmentBytes: 512 } });
    const writes = history(12, 60);
    for (const write of writes.slice(0, 40)) apply(store, write);
    // Retention runs at snapshot time and removes only records already on disk.
    await store.durable();
    store.save();
    const floorAfterSave = store.walStats().floor;
    assert.equal(floorAfterSave, store.walSeq, 'with no retention the snapshot replaces the whole log');
    for (const write of writes.slice(40)) apply(store, write);
    await store.durable();
    const recovered = openStore({ dataDir });
    assert.deepEqual(observable(recovered), observable(store));
    assert.equal(recovered.walSeq, store.walSeq);
    assert.equal((await recovered.changesSince(0, 10)).snapshot_required, true);
    recovered.close();
  });

  it('opens a data dir written before versions existed (snapshot format 1)', () => {
    const dataDir = freshDir();
    const store = openStore({ dataDir });
    const vectors = randomUnitVectors(3, DIM, 13);
    store.upsert({ chunks: vectors.map((v, i) => ({ id: `c${i}`, document_id: 'doc', namespace: 'default', text: `old ${i}`, vector: encodeVector(v) })) });
    store.close();
    // Rewrite the snapshot as the previous release wrote it, with no log beside it.
    const current = readFileSync(join(dataDir, 'CURRENT'), 'utf8').trim();
    const directory = join(dataDir, current);
    const manifest = JSON.parse(readFileSync(join(directory, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    delete manifest['wal_seq'];
    delete manifest['max_version'];
    writeFileSync(join(directory, 'manifest.json'), JSON.stringify({ ...manifest, format: 1 }));
    const lines = readFileSync(join(directory, 'chunks.jsonl'), 'utf8').trim().split('\n');
    writeFileSync(join(directory, 'chunks.jsonl'), `${lines.map((line) => JSON.stringify((JSON.parse(line) as unknown[]).slice(0, 6))).join('\n')}\n`);
    rmSync(join(directory, 'floors.jsonl'));
    rmSync(join(dataDir, 'wal'), { recursive: true });

    const old = openStore({ dataDir });
    assert.equal(old.stats().count, 3);
    assert.equal(old.walSeq, 0);
    assert.deepEqual(contents(old)[0]?.chunks.map((c) => c.version), [0, 0, 0]);
    // Any versioned write is newer than the versionless data.
    old.upsert({ chunks: [{ id: 'c1', document_id: 'doc', namespace: 'default', text: 'new', vector: encodeVector(vectors[1] as Float32Array) }], version: 1 });
    assert.equal(old.getDocument('default', 'doc')?.chunks.find((c) => c.id === 'c1')?.text, 'new');
    old.close();
  });

  it('refuses writes once closed, and closes idempotently', () => {
    const store = openStore();
    store.close();
    store.close();
    assert.throws(
      () => store.delete({ namespace: 'default', document_ids: ['x'] }),
      (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_NOT_READY',
    );
  });
});

describe('change feed and export', () => {
  it('feeds changes that bring another replica to the same state', async () => {
    const source = openStore();
    const writes = history(21, 70);
    for (const write of writes) apply(source, write);
    await source.durable();
    const replica = openStore();
    // The replica took the first half itself (as from the gateway), then catches up.
    for (const write of writes.slice(0, 35)) apply(replica, write);
    let since = replica.walSeq;
    for (;;) {
      const page = await source.changesSince(since, 7);
      assert.equal(page.snapshot_required, false);
      assert.equal(page.high_water, source.walSeq);
      for (const change of page.changes) {
        if (change.op === 'upsert') replica.upsert(change.upsert as UpsertRequest);
        else replica.delete(change.delete as DeleteRequest);
        since = change.seq;
      }
      if (page.changes.length === 0) break;
    }
    assert.deepEqual(observable(replica), observable(source));
    source.close();
    replica.close();
  });

  it('copies a replica through its export, merging with what the importer holds', async () => {
    const source = openStore();
    const writes = history(31, 70);
    for (const write of writes) apply(source, write);
    const header = parseExport(source)[0];
    assert.equal(header?.type, 'header');
    const lines = parseExport(source);
    const end = lines.at(-1);
    assert.deepEqual(end, { type: 'end', documents: lines.length - 2, chunks: source.stats().count });

    const importer = openStore();
    // Some of the same history, out of order: the merge must end where the source is.
    for (const write of shuffled(writes, 5).slice(0, 30)) apply(importer, write);
    for (const line of lines) if (line.type === 'document') importer.importDocument(line);
    importer.completeImport(source.walSeq);
    assert.deepEqual(observable(importer), observable(source));
    assert.equal(importer.walSeq, Math.max(source.walSeq, 30));
    assert.equal((await importer.changesSince(0, 10)).snapshot_required, true, 'the feed does not claim the imported history');
    // The import is durable without any log record of it.
    const dataDir = importer.dataDir;
    importer.close();
    const reopened = openStore({ dataDir });
    assert.deepEqual(observable(reopened), observable(source));
    reopened.close();
    source.close();
  });
});

describe('IndexStore search budget', () => {
  it('stops a search whose deadline passed or whose caller left', () => {
    const store = openStore();
    store.upsert({ chunks: randomUnitVectors(3, DIM, 41).map((v, i) => ({ id: `c${i}`, document_id: 'd', namespace: 'default', text: '', vector: encodeVector(v) })) });
    assert.throws(
      () => store.search(queries, { deadline: Date.now() - 1 }),
      (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_DEADLINE_EXCEEDED',
    );
    const controller = new AbortController();
    controller.abort();
    assert.throws(
      () => store.search(queries, { signal: controller.signal }),
      (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_CLIENT_CLOSED',
    );
    assert.equal(store.search(queries, { deadline: Date.now() + 60_000 }).results.length, queries.queries.length);
    store.close();
  });
});
