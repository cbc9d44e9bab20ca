// Anti-entropy between running replicas, all real: one shard × 2 replica processes behind a
// gateway. Replica B's fault injection drops every write it is sent, so it misses new
// documents, replacements and deletes while it stays up and ready; the gateway's writes
// still succeed through A. Once the faults are off, B pulls what it misses in the background
// — no restart — and both hold identical document sets and versions (tombstones included)
// within a stated bound; with nothing different, a round is one digest request. The
// progress is visible in the gateway's /v1/cluster and /metrics.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { freePort } from '../../../cli/free-port.js';
import { ServiceProcess } from '../../../cli/service-process.js';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import type { AntiEntropyStats, ExportDocument } from '../../../shards/protocol.js';
import { loadDefaultBackend } from '../../helpers/cluster.js';
import { assertSameContents, ShardHttp, tempRoot } from './shard-http.js';
import { listenOnLoopback } from '../../helpers/listen.js';

const INTERVAL_MS = 300;
/** The bound this test states: converged within this long after the faults stop (many rounds at INTERVAL_MS). */
const CONVERGE_WITHIN_MS = 15_000;
const TOPICS = ['cache ttl expiry', 'train tickets', 'pasta sauce', 'volcano lava', 'guitar chords', 'tax returns', 'hiking', 'coffee'];

describe('anti-entropy between running replicas (real processes)', () => {
  const http = new ShardHttp();
  let root: Awaited<ReturnType<typeof tempRoot>>;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;
  let base: string;
  let urls: [string, string];
  let replicas: ServiceProcess[];

  const antiEntropy = async (url: string): Promise<AntiEntropyStats> => {
    const stats = await http.stats(url);
    assert.ok(stats.anti_entropy, 'a replica with peers reports its anti-entropy');
    return stats.anti_entropy;
  };
  const docs = (from: number, to: number, version: string) =>
    Array.from({ length: to - from }, (_, i) => {
      const n = from + i;
      const topic = TOPICS[n % TOPICS.length] as string;
      return { id: `doc-${n}`, text: `${topic} (${version}): note ${n} about ${topic}. A second sentence on ${topic} for another chunk.` };
    });

  before(async () => {
    root = await tempRoot('anti-entropy');
    backend = await loadDefaultBackend();
    urls = [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
    replicas = urls.map(
      (url, i) =>
        new ServiceProcess({
          label: `replica-${i}`,
          host: '127.0.0.1',
          port: Number(new URL(url).port),
          args: [
            '--data', join(root.path, `r${i}`),
            '--dim', '100',
            '--peers', urls[1 - i] as string,
            '--catch-up-timeout-ms', '2000',
            '--anti-entropy-interval-ms', String(INTERVAL_MS),
          ],
          env: { RAGWAY_FAULTS: '1' },
          restart: false,
        }),
    );
    await Promise.all(replicas.map((replica) => replica.start()));
    await Promise.all(urls.map((url) => http.waitReady(url)));
    app = await buildApp(loadConfig({}, { shards: urls.join(','), logLevel: 'silent' }), { embeddingBackend: backend, defaultMetrics: false });
    base = await listenOnLoopback(app);
  });

  after(async () => {
    await app?.close();
    await Promise.all(replicas.map((replica) => replica.stop()));
    await backend?.close();
    await http.close();
    await root?.remove();
  });

  it('a replica that missed writes while up converges with its peer, deletes included, without a restart', async () => {
    const [a, b] = urls;
    await app.documents.ingest('default', docs(0, 40, 'v1'));
    await app.documents.ingest('other', docs(0, 10, 'v1'));
    assertSameContents(await http.contents(b), await http.contents(a), 'both replicas took the first writes');
    const pids = replicas.map((replica) => replica.pid);
    const repairedBefore = (await antiEntropy(b)).documents_repaired;

    // B stays up (and ready) but loses every write it is sent.
    await http.call(b, 'POST', '/v1/faults', { drop_probability: 1, routes: ['upsert', 'delete'] });
    await app.documents.ingest('default', docs(40, 100, 'v1')); // 60 new documents
    await app.documents.ingest('default', docs(0, 10, 'v2')); // 10 replaced (new versions, new text)
    for (let n = 10; n < 20; n++) assert.ok((await app.documents.delete('default', `doc-${n}`)) > 0); // 10 deleted
    await app.documents.ingest('other', docs(10, 15, 'v1')); // 5 new in a second namespace
    const missed = 60 + 10 + 10 + 5;
    assert.equal((await http.call(b, 'GET', '/readyz')).status, 200, 'B stayed up and ready throughout');
    const expected = await http.contents(a);
    // B may already be pulling (the digest routes are not faulted, and a slow machine gives it
    // rounds meanwhile); that it missed every one of these writes is shown below by its
    // repair count: a write B applied itself is never repaired.
    assert.ok(expected.filter((doc) => doc.tombstone === true).length >= 10, 'A keeps the deletes as tombstones');

    // B's faults end; anti-entropy is the only way back (its writes are not re-sent).
    await http.call(b, 'POST', '/v1/faults', {});
    const started = Date.now();
    let contents: ExportDocument[] = [];
    for (;;) {
      contents = await http.contents(b);
      if (JSON.stringify(contents) === JSON.stringify(expected)) break;
      if (Date.now() - started > CONVERGE_WITHIN_MS) break;
      await sleep(50);
    }
    const convergedMs = Date.now() - started;
    assertSameContents(contents, expected, `B converged within ${CONVERGE_WITHIN_MS} ms`);
    assertSameContents(await http.contents(a), expected, 'A is unchanged by what B held');
    assert.deepEqual(replicas.map((replica) => replica.pid), pids, 'no replica was restarted');
    const stats = await antiEntropy(b);
    assert.equal(stats.documents_repaired - repairedBefore, missed, 'B pulled exactly the documents it missed');
    assert.equal((await antiEntropy(a)).documents_repaired, 0, 'A had nothing to pull from B');
    process.stdout.write(`# anti-entropy: ${missed} missed documents converged in ${convergedMs} ms (interval ${INTERVAL_MS} ms)\n`);
  });

  it('costs one digest request per round when nothing differs', async () => {
    for (const url of urls) {
      const first = await antiEntropy(url);
      let latest = first;
      const until = Date.now() + CONVERGE_WITHIN_MS;
      while (latest.rounds < first.rounds + 2 && Date.now() < until) {
        await sleep(INTERVAL_MS);
        latest = await antiEntropy(url);
      }
      assert.ok(latest.rounds >= first.rounds + 2, 'rounds keep running');
      assert.equal(latest.last_requests, 1);
      assert.equal(latest.last_differences, 0);
      assert.equal(latest.last_error, null);
    }
  });

  it('shows last sync and repairs in /v1/cluster and /metrics', async () => {
    const cluster = (await (await request(`${base}/v1/cluster`)).body.json()) as {
      shards: { replicas: { url: string; anti_entropy: AntiEntropyStats | null }[] }[];
    };
    const views = cluster.shards[0]?.replicas ?? [];
    assert.equal(views.length, 2);
    for (const view of views) {
      assert.ok(view.anti_entropy !== null && view.anti_entropy.last_sync_at_ms !== null, JSON.stringify(view));
      assert.equal(view.anti_entropy.last_error, null);
    }
    const repaired = views.find((view) => view.url === urls[1])?.anti_entropy?.documents_repaired ?? 0;
    assert.ok(repaired >= 85);
    const metrics = await (await request(`${base}/metrics`)).body.text();
    assert.match(metrics, new RegExp(`ragway_replica_anti_entropy_documents_repaired\\{shard="0",replica="${urls[1]}"\\} ${repaired}`));
    assert.match(metrics, /ragway_replica_anti_entropy_last_sync_age_seconds\{shard="0",replica="[^"]+"\} [\d.]+/);
  });
});
