// A rolling restart of 2 shards × 2 replicas (real `ragway shard` processes) behind the
// gateway, with reads running throughout: kill replica A, restart it on the same port, wait
// for its own /readyz, and at once kill B — the gateway may still have A ejected or catching
// up in its view, and must ask it anyway (panic routing) rather than answer 503. Five cycles
// in a row, alternating shards: not one search or document read may fail, and every
// acknowledged document is readable at the end.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { freePort } from '../../../cli/free-port.js';
import { ServiceProcess } from '../../../cli/service-process.js';
import { sleep } from '../../../core/sleep.js';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import { loadDefaultBackend, tempDir } from '../../helpers/cluster.js';
import { listenOnLoopback } from '../../helpers/listen.js';

const SHARDS = 2;
const DOCUMENTS = 350;
const CYCLES = 5;
const TOPICS = ['cache ttl expiry', 'train station tickets', 'pasta tomato sauce', 'volcano lava', 'guitar chords', 'tax returns', 'mountain hiking'];

/** SIGKILL, then wait until the process is gone so its port is free for the restart. */
async function crash(replica: ServiceProcess): Promise<void> {
  const pid = replica.pid;
  replica.kill('SIGKILL');
  for (let attempt = 0; pid !== undefined && attempt < 500; attempt += 1) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(10);
  }
}

/** The replica's own /readyz, as an operator's rolling restart waits for it. */
async function waitReady(url: string): Promise<void> {
  for (let attempt = 0; attempt < 1_000; attempt += 1) {
    try {
      const response = await request(`${url}/readyz`);
      await response.body.dump();
      if (response.statusCode === 200) return;
    } catch {
      // Not listening yet.
    }
    await sleep(20);
  }
  assert.fail(`${url} never became ready`);
}

describe('rolling restart of every shard, twice, with reads running', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;
  let base: string;
  const replicas: ServiceProcess[][] = [];
  const urls: string[][] = [];
  const ids = Array.from({ length: DOCUMENTS }, (_, i) => `doc-${i}`);

  before(async () => {
    dir = await tempDir('rolling-restart');
    backend = await loadDefaultBackend();
    for (let shard = 0; shard < SHARDS; shard += 1) {
      urls.push([`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`]);
      replicas.push(
        [0, 1].map(
          (replica) =>
            new ServiceProcess({
              label: `s${shard}r${replica}`,
              host: '127.0.0.1',
              port: Number(new URL(urls[shard]?.[replica] as string).port),
              args: ['--data', join(dir.path, `s${shard}r${replica}`), '--dim', '100', '--peers', urls[shard]?.[1 - replica] as string, '--catch-up-timeout-ms', '3000'],
              restart: false,
            }),
        ),
      );
    }
    await Promise.all(replicas.flat().map((replica) => replica.start()));
    await Promise.all(urls.flat().map(waitReady));
    // The gateway's own defaults for ejection and probing: what an operator runs.
    app = await buildApp(loadConfig({}, { shards: urls.map((set) => set.join(',')).join(';'), logLevel: 'silent' }), { embeddingBackend: backend, defaultMetrics: false });
    base = await listenOnLoopback(app);
    for (let start = 0; start < DOCUMENTS; start += 50) {
      const batch = ids.slice(start, start + 50).map((id, i) => ({ id, text: `${TOPICS[(start + i) % TOPICS.length]}: note ${start + i} about ${TOPICS[(start + i) % TOPICS.length]}.` }));
      const response = await request(`${base}/v1/documents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ documents: batch }) });
      assert.equal(response.statusCode, 200, await response.body.text());
      await response.body.dump();
    }
  });

  after(async () => {
    await app?.close();
    await Promise.all(replicas.flat().map((replica) => replica.stop()));
    await backend?.close();
    await dir?.remove();
  });

  /** One search (complete answers only) or one document read; a description of the failure, if any. */
  const probe = async (i: number): Promise<string | undefined> => {
    if (i % 2 === 0) {
      const response = await request(`${base}/v1/search`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: TOPICS[i % TOPICS.length], k: 5, cache: { mode: 'bypass' }, require_complete: true }),
      });
      const body = (await response.body.json()) as { coverage?: { partial: boolean } };
      return response.statusCode === 200 && body.coverage?.partial === false ? undefined : `search ${response.statusCode} ${JSON.stringify(body).slice(0, 300)}`;
    }
    const id = ids[(i * 7919) % DOCUMENTS] as string;
    const response = await request(`${base}/v1/documents/${id}`);
    const text = await response.body.text();
    return response.statusCode === 200 ? undefined : `GET ${id} ${response.statusCode} ${text.slice(0, 300)}`;
  };

  it('loses no read during 5 kill-restart-kill cycles, and every acknowledged document is readable after', async () => {
    const failures: string[] = [];
    let reads = 0;
    let running = true;
    const loop = async (worker: number): Promise<void> => {
      for (let i = worker; running; i += 2) {
        const failure = await probe(i).catch((err: unknown) => `request error: ${String(err)}`);
        reads += 1;
        if (failure !== undefined) failures.push(failure);
      }
    };
    const loops = Promise.all([0, 1].map(loop));
    try {
      for (let cycle = 0; cycle < CYCLES; cycle += 1) {
        const shard = cycle % SHARDS;
        const [a, b] = replicas[shard] as [ServiceProcess, ServiceProcess];
        const [aUrl, bUrl] = urls[shard] as [string, string];
        await crash(a);
        await sleep(100);
        await a.start();
        await waitReady(aUrl);
        await crash(b);
        // A is the only replica of this shard now, however the gateway last saw it.
        await sleep(100);
        await b.start();
        await waitReady(bUrl);
      }
    } finally {
      running = false;
      await loops;
    }
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${reads} reads failed`);
    assert.ok(reads > 100, `${reads} reads ran`);

    const missing: string[] = [];
    for (const id of ids) {
      const response = await request(`${base}/v1/documents/${id}`);
      await response.body.dump();
      if (response.statusCode !== 200) missing.push(`${id}: ${response.statusCode}`);
    }
    assert.deepEqual(missing, []);
  });
});
