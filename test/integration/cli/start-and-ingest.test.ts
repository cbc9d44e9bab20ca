// The main job as a newcomer runs it: `ragway start` spawns real shard processes, ingests
// the sample corpus on an empty data dir, answers the README's curl, stops cleanly on
// SIGTERM, and restarts on the same data without re-ingesting. `ragway ingest` then feeds
// a folder and a .jsonl file through HTTP.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { packageRoot } from '../../../core/package-paths.js';
import { tempDir } from '../../helpers/cluster.js';
import { CLI, startRagway, stop, type Started } from '../../helpers/ragway-process.js';

async function postJson(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const response = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.statusCode, json: await response.body.json() };
}

describe('ragway start', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let running: Started | undefined;

  before(async () => {
    dir = await tempDir('start');
  });
  after(async () => {
    if (running) await stop(running.child);
    await dir.remove();
  });

  it('serves the sample corpus over 2 shard processes and finds lru-cache for the TTL question', async () => {
    running = await startRagway(dir.path);
    assert.match(running.stderr(), /ingesting the sample corpus/);
    const ready = await request(`${running.url}/readyz`);
    const readiness = (await ready.body.json()) as { shards: { ok: boolean; count: number }[] };
    assert.equal(ready.statusCode, 200);
    assert.equal(readiness.shards.length, 2);
    assert.ok(readiness.shards.every((shard) => shard.ok && shard.count > 100), 'both shards hold part of the corpus');

    const { status, json } = await postJson(`${running.url}/v1/search`, { query: 'how do I set a TTL on cache entries', k: 5 });
    assert.equal(status, 200);
    const documents = json.results.map((hit: { document_id: string }) => hit.document_id);
    assert.ok(documents.some((id: string) => id.startsWith('lru-cache/')), `top 5 were ${documents.join(', ')}`);
  });

  it('ingests a folder and a .jsonl file with `ragway ingest`', async () => {
    assert.ok(running);
    const fixtures = join(packageRoot(), 'test', 'fixtures', 'corpus');
    const ingest = spawn(process.execPath, [CLI, 'ingest', fixtures, '--url', running.url, '--namespace', 'fixtures'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    ingest.stderr?.on('data', (data: Buffer) => {
      output += data.toString();
    });
    const code = await new Promise((resolve) => ingest.once('exit', resolve));
    assert.equal(code, 0, output);
    assert.match(output, /2\/2 docs/);

    const volcano = await postJson(`${running.url}/v1/search`, { query: 'lava flows from an erupting volcano', k: 1, namespace: 'fixtures' });
    assert.equal(volcano.json.results[0].document_id, 'volcanoes.md');
    assert.equal(volcano.json.results[0].metadata.source, 'volcanoes.md');
    const garden = await request(`${running.url}/v1/documents/guides/gardening.txt?namespace=fixtures`);
    assert.equal(garden.statusCode, 200);

    const jsonl = spawn(process.execPath, [CLI, 'ingest', join(fixtures, 'notes.jsonl'), '--url', running.url, '--namespace', 'notes'], { stdio: 'ignore' });
    assert.equal(await new Promise((resolve) => jsonl.once('exit', resolve)), 0);
    const budget = await postJson(`${running.url}/v1/search`, { query: 'budget review in March', k: 1, namespace: 'notes', filter: { team: 'finance' } });
    assert.equal(budget.json.results[0].document_id, 'note-1');
  });

  it('stops every process on SIGTERM and keeps the data for the next start', async () => {
    assert.ok(running);
    const first = running;
    const before = (await postJson(`${first.url}/v1/search`, { query: 'how do I set a TTL on cache entries', k: 5 })).json.results;
    assert.equal(await stop(first.child), 0);
    running = undefined;
    assert.ok(existsSync(join(dir.path, 'shard-0', 'CURRENT')), 'shard 0 wrote a snapshot');
    await assert.rejects(request(`${first.url}/healthz`), 'the gateway no longer listens');

    running = await startRagway(dir.path);
    assert.doesNotMatch(running.stderr(), /ingesting/, 'a non-empty data dir is not re-ingested');
    const again = (await postJson(`${running.url}/v1/search`, { query: 'how do I set a TTL on cache entries', k: 5 })).json.results;
    assert.deepEqual(again, before);
  });
});
