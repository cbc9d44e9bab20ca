// Durability benchmark: what the write-ahead log costs and what group commit wins back.
//   1. The log alone: 64 writers appending upsert-sized records (one 100-d chunk), group
//      commit vs one write+fsync per record.
//   2. A shard over HTTP: 64 clients each upserting one chunk per request (the ack waits for
//      the fsync), group commit vs fsync per write.
//   3. Snapshot and restart of a 100k-vector shard (20k with --quick): snapshot time and
//      size, open from the snapshot, and open by replaying the log alone (no snapshot).
// Everything runs in this one process on this machine's disk; the HTTP load generator
// shares the CPU with the shard it measures.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Pool } from 'undici';
import { IndexStore } from '../../shards/index-store.js';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, encodeVector, type Chunk } from '../../shards/protocol.js';
import { startShardServer } from '../../shards/server.js';
import { WriteAheadLog } from '../../shards/wal.js';
import { closedLoop, postJson, type LoadResult } from './load-generator.js';
import { du } from './wal-disk.js';

const DIM = 100;
const CLIENTS = 64;

export interface AppendRun {
  appendsPerSecond: number;
  fsyncs: number;
  appends: number;
  /** Appends per fsync. */
  meanBatch: number;
  p50Ms: number;
  p99Ms: number;
}

export interface UpsertRun {
  upsertsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  fsyncs: number;
}

export interface RecoveryRun {
  vectors: number;
  dim: number;
  buildSeconds: number;
  snapshotMs: number;
  snapshotBytes: number;
  openFromSnapshotMs: number;
  walRecords: number;
  walBytes: number;
  replayMs: number;
}

export interface WalReport {
  clients: number;
  recordBytes: number;
  groupCommit: AppendRun;
  perWrite: AppendRun;
  upserts: { groupCommit: UpsertRun; perWrite: UpsertRun };
  recovery: RecoveryRun;
}

/** Seeded (xorshift32) vectors in [-1, 1): the same workload on every run. */
function randomVectors(count: number, dim: number, seed: number): Float32Array[] {
  let state = seed >>> 0 || 1;
  const next = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 31 - 1;
  };
  return Array.from({ length: count }, () => Float32Array.from({ length: dim }, next));
}

function chunk(i: number, vector: Float32Array): Chunk {
  return { id: `c${i}`, document_id: `doc${i}`, namespace: 'default', text: `benchmark chunk number ${i}`, metadata: { i }, vector: encodeVector(vector) };
}

async function appendRun(dir: string, groupCommit: boolean, durationMs: number, vector: Float32Array): Promise<AppendRun> {
  const wal = WriteAheadLog.open({ dir, groupCommit });
  let seq = 0;
  const result = await closedLoop({
    concurrency: CLIENTS,
    durationMs,
    send: async () => {
      seq += 1;
      await wal.append({ seq, op: 'upsert', request: { chunks: [chunk(seq, vector)], version: seq } });
    },
  });
  const { appends, fsyncs } = wal.stats();
  await wal.close();
  return {
    appendsPerSecond: result.requestsPerSecond,
    appends,
    fsyncs,
    meanBatch: appends / Math.max(1, fsyncs),
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
  };
}

async function upsertRun(dataDir: string, groupCommit: boolean, durationMs: number, vectors: Float32Array[]): Promise<UpsertRun> {
  const server = await startShardServer({ port: 0, dataDir, dim: DIM, space: 'cosine', snapshotIntervalMs: 0, snapshotEveryWrites: 0, wal: { groupCommit } });
  const pool = new Pool(server.url, { connections: CLIENTS });
  let next = 0;
  try {
    const result: LoadResult = await closedLoop({
      concurrency: CLIENTS,
      durationMs,
      warmupMs: Math.min(500, durationMs / 4),
      send: async () => {
        const i = next++;
        const response = await postJson(pool, '/v1/upsert', { chunks: [chunk(i, vectors[i % vectors.length] as Float32Array)] }, { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) });
        await response.body.text();
        return response.statusCode === 200;
      },
    });
    return {
      upsertsPerSecond: result.requestsPerSecond,
      p50Ms: result.p50Ms,
      p99Ms: result.p99Ms,
      errors: result.errors,
      fsyncs: server.store.walStats().fsyncs,
    };
  } finally {
    await pool.close();
    await server.close({ graceMs: 1000 });
  }
}

async function recoveryRun(dataDir: string, count: number, log: (line: string) => void): Promise<RecoveryRun> {
  // One chunk per logged write: the worst case for replay (most records per vector).
  const vectors = randomVectors(count, DIM, 17);
  const options = { dataDir, dim: DIM, space: 'cosine' as const, snapshotIntervalMs: 0, snapshotEveryWrites: 0, initialCapacity: count };
  const buildStarted = performance.now();
  const store = IndexStore.open(options);
  for (let i = 0; i < count; i++) {
    store.upsert({ chunks: [chunk(i, vectors[i] as Float32Array)] });
    if (i % 1000 === 999) await store.durable();
  }
  await store.durable();
  const buildSeconds = (performance.now() - buildStarted) / 1000;
  log(`wal: built ${count} vectors in ${buildSeconds.toFixed(1)} s`);
  const walRecords = store.walSeq;
  const walBytes = await du(join(dataDir, 'wal'));

  // The store is abandoned without a snapshot: this open is the crash-recovery path.
  const replayStarted = performance.now();
  const replayed = IndexStore.open(options);
  const replayMs = performance.now() - replayStarted;
  if (replayed.stats().count !== count) throw new Error(`replay restored ${replayed.stats().count} of ${count} vectors`);
  log(`wal: replayed ${walRecords} records in ${replayMs.toFixed(0)} ms`);

  const snapshotStarted = performance.now();
  replayed.save();
  const snapshotMs = performance.now() - snapshotStarted;
  const snapshotBytes = (await du(dataDir)) - (await du(join(dataDir, 'wal')));
  replayed.close();
  store.close();

  const openStarted = performance.now();
  const reopened = IndexStore.open(options);
  const openFromSnapshotMs = performance.now() - openStarted;
  if (reopened.stats().count !== count) throw new Error(`the snapshot restored ${reopened.stats().count} of ${count} vectors`);
  reopened.close();
  return { vectors: count, dim: DIM, buildSeconds, snapshotMs, snapshotBytes, openFromSnapshotMs, walRecords, walBytes, replayMs };
}

export async function benchWal(options: { quick: boolean; workDir: string; log: (line: string) => void }): Promise<WalReport> {
  const { quick, log } = options;
  const root = join(options.workDir, 'wal-bench');
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const durationMs = quick ? 1_500 : 5_000;
  const vectors = randomVectors(1000, DIM, 5);
  const vector = vectors[0] as Float32Array;
  const recordBytes = Buffer.byteLength(JSON.stringify({ seq: 1, op: 'upsert', request: { chunks: [chunk(1, vector)], version: 1 } })) + 8;
  try {
    log(`wal: ${CLIENTS} writers appending ${recordBytes}-byte records, group commit vs fsync per write`);
    const groupCommit = await appendRun(join(root, 'append-group'), true, durationMs, vector);
    const perWrite = await appendRun(join(root, 'append-single'), false, durationMs, vector);
    log(`wal: ${CLIENTS} HTTP clients upserting one chunk each`);
    const upserts = {
      groupCommit: await upsertRun(join(root, 'upsert-group'), true, durationMs, vectors),
      perWrite: await upsertRun(join(root, 'upsert-single'), false, durationMs, vectors),
    };
    const recovery = await recoveryRun(join(root, 'recovery'), quick ? 20_000 : 100_000, log);
    return { clients: CLIENTS, recordBytes, groupCommit, perWrite, upserts, recovery };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

export function renderWal(report: WalReport): string {
  const f = (n: number, d = 0): string => n.toFixed(d);
  const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  const { groupCommit: g, perWrite: p, upserts, recovery: r } = report;
  return [
    '## Durability: write-ahead log',
    '',
    `${report.clients} concurrent writers; every acknowledgement waits for fdatasync.`,
    '',
    '| | appends/s | fsyncs | appends per fsync | p50 ms | p99 ms |',
    '|---|---:|---:|---:|---:|---:|',
    `| log, group commit | ${f(g.appendsPerSecond)} | ${g.fsyncs} | ${f(g.meanBatch, 1)} | ${f(g.p50Ms, 2)} | ${f(g.p99Ms, 2)} |`,
    `| log, fsync per write | ${f(p.appendsPerSecond)} | ${p.fsyncs} | ${f(p.meanBatch, 1)} | ${f(p.p50Ms, 2)} | ${f(p.p99Ms, 2)} |`,
    '',
    '| Shard over HTTP (1 chunk per upsert) | upserts/s | p50 ms | p99 ms | fsyncs |',
    '|---|---:|---:|---:|---:|',
    `| group commit | ${f(upserts.groupCommit.upsertsPerSecond)} | ${f(upserts.groupCommit.p50Ms, 2)} | ${f(upserts.groupCommit.p99Ms, 2)} | ${upserts.groupCommit.fsyncs} |`,
    `| fsync per write | ${f(upserts.perWrite.upsertsPerSecond)} | ${f(upserts.perWrite.p50Ms, 2)} | ${f(upserts.perWrite.p99Ms, 2)} | ${upserts.perWrite.fsyncs} |`,
    '',
    `Group commit: **${f(g.appendsPerSecond / Math.max(1, p.appendsPerSecond), 1)}x** the log's append rate, ` +
      `**${f(upserts.groupCommit.upsertsPerSecond / Math.max(1, upserts.perWrite.upsertsPerSecond), 1)}x** the shard's upsert rate.`,
    '',
    `Recovery of ${r.vectors} ${r.dim}-d vectors (one chunk per logged write): snapshot ${f(r.snapshotMs)} ms (${mib(r.snapshotBytes)}), ` +
      `open from the snapshot ${f(r.openFromSnapshotMs)} ms; with no snapshot, replaying ${r.walRecords} log records (${mib(r.walBytes)}) ` +
      `takes ${f(r.replayMs)} ms (building the index is most of it).`,
    '',
  ].join('\n');
}
