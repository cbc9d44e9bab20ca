// `ragway start` as an operator's tools see it. Readiness tells the truth: /readyz, polled
// from the moment the process is spawned, answers 503 with the ingest's progress until the
// first-run corpus is in, and the first search after its first 200 finds lru-cache for the
// TTL question. A stop during the ingest (SIGTERM to the whole process group, as Ctrl-C
// does) restarts nothing, exits cleanly within the grace period, and the next start
// resumes the ingest and ends with the same corpus as an uninterrupted run.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { freePort } from '../../../cli/free-port.js';
import { DONE_MARKER, PROGRESS_MARKER } from '../../../cli/first-run-ingest.js';
import { tempDir } from '../../helpers/cluster.js';
import { spawnRagway, startRagway, stop, type Spawned, type Started } from '../../helpers/ragway-process.js';

const TTL_QUERY = 'how do I set a TTL on cache entries';
/** RAGWAY_SHUTDOWN_GRACE_MS's default: the longest a stop may take. */
const GRACE_MS = 10_000;

interface Poll {
  status: number;
  body: any;
}

async function readyz(url: string): Promise<Poll | undefined> {
  try {
    const response = await request(`${url}/readyz`);
    return { status: response.statusCode, body: await response.body.json() };
  } catch {
    return undefined; // not listening yet: not ready either
  }
}

/** From /readyz, which asks every shard now (the /v1/cluster view may be a refresh old). */
async function corpusTotals(url: string): Promise<{ documents: number; chunks: number }> {
  const poll = await readyz(url);
  assert.equal(poll?.status, 200);
  return (poll.body.shards as { count: number; documents: number }[]).reduce(
    (sum, shard) => ({ documents: sum.documents + shard.documents, chunks: sum.chunks + shard.count }),
    { documents: 0, chunks: 0 },
  );
}

async function topDocuments(url: string): Promise<string[]> {
  const response = await request(`${url}/v1/search`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: TTL_QUERY, k: 5 }),
  });
  assert.equal(response.statusCode, 200);
  const json = (await response.body.json()) as { results: { document_id: string }[] };
  return json.results.map((hit) => hit.document_id);
}

function assertNotReadyEnvelope(poll: Poll): void {
  assert.equal(poll.status, 503);
  assert.equal(poll.body.error.code, 'RAGWAY_ERR_NOT_READY');
  assert.equal(typeof poll.body.error.message, 'string');
  assert.ok(Array.isArray(poll.body.waiting_for) && poll.body.waiting_for.length > 0, JSON.stringify(poll.body));
}

describe('ragway start lifecycle', () => {
  const dirs: Awaited<ReturnType<typeof tempDir>>[] = [];
  const children: Spawned[] = [];
  let restarted: Started | undefined;
  let full: { documents: number; chunks: number } | undefined;

  after(async () => {
    for (const spawned of children) if (spawned.child.exitCode === null) await stop(spawned.child);
    if (restarted) await stop(restarted.child);
    for (const dir of dirs) await dir.remove();
  });

  it('answers /readyz 503 with the ingest progress until the corpus is in; the first 200 finds lru-cache', async () => {
    const dir = await tempDir('start-ready');
    dirs.push(dir);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const spawned = spawnRagway(['--port', String(port), '--shards', '2', '--data', dir.path]);
    children.push(spawned);

    const polls: Poll[] = [];
    let firstReady: { totals: { documents: number; chunks: number }; top: string[] } | undefined;
    // Until the banner and a first 200 (either may come first), then a few more: ready stays ready.
    let after200 = 0;
    while (!/ragway ready on/.test(spawned.stdout()) || after200 < 5) {
      if (spawned.child.exitCode !== null) assert.fail(`ragway start exited:\n${spawned.stderr()}`);
      const poll = await readyz(url);
      if (poll !== undefined) {
        polls.push(poll);
        if (poll.status === 200 && firstReady === undefined) {
          // What a readiness-gated client does first: look at the data and search.
          firstReady = { totals: await corpusTotals(url), top: await topDocuments(url) };
        }
        if (firstReady !== undefined) after200 += 1;
      }
      await sleep(20);
    }

    const notReady = polls.filter((poll) => poll.status !== 200);
    assert.ok(notReady.length > 0, 'the ingest was observed from outside');
    for (const poll of notReady) assertNotReadyEnvelope(poll);
    const progress = notReady
      .map((poll) => poll.body.waiting_for.find((entry: { name: string }) => entry.name === 'first-run-ingest'))
      .filter((entry) => entry?.total !== undefined);
    assert.ok(progress.length > 0, 'the 503 body says how far the ingest is');
    assert.match(progress[0].detail, /^ingesting sample corpus: \d+\/\d+ documents$/);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].done >= progress[i - 1].done, 'progress never goes back');

    const firstOk = polls.findIndex((poll) => poll.status === 200);
    assert.ok(firstOk > 0 && firstReady !== undefined);
    assert.ok(polls.slice(firstOk).every((poll) => poll.status === 200), 'once ready, ready');
    assert.match(spawned.stderr(), /first-run ingest finished: \d+ documents/);

    // Every 200 came after the ingest: nothing was added to the shards after the first one.
    const final = await corpusTotals(url);
    assert.deepEqual(firstReady.totals, final);
    assert.ok(final.chunks > 1000, `${final.chunks} chunks`);
    const banner = /ragway ready on \S+ +\((\d+) chunks/.exec(spawned.stdout());
    assert.equal(Number(banner?.[1]), final.chunks, 'the banner agrees with readiness');
    assert.ok(firstReady.top.some((id) => id.startsWith('lru-cache/')), `top 5 were ${firstReady.top.join(', ')}`);
    full = final;

    process.kill(-(spawned.child.pid as number), 'SIGTERM');
    assert.equal((await spawned.exited).code, 0);
  });

  it('SIGTERM to the process group mid-ingest: no restarts, a clean exit in the grace period, and the next start completes the corpus', async () => {
    assert.ok(full, 'the first test measured an uninterrupted ingest');
    const dir = await tempDir('start-stop');
    dirs.push(dir);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const spawned = spawnRagway(['--port', String(port), '--shards', '2', '--data', dir.path]);
    children.push(spawned);

    // Wait until at least one batch is acknowledged and the ingest is still running.
    let progress: { done: number; total: number } | undefined;
    for (;;) {
      if (spawned.child.exitCode !== null) assert.fail(`ragway start exited:\n${spawned.stderr()}`);
      const poll = await readyz(url);
      assert.notEqual(poll?.status, 200, 'stopped before the ingest finished');
      progress = poll?.body.waiting_for?.find((entry: { name: string }) => entry.name === 'first-run-ingest');
      if (progress?.total !== undefined && progress.done > 0) break;
      await sleep(20);
    }
    assert.ok(progress.done < progress.total);

    const signalled = Date.now();
    process.kill(-(spawned.child.pid as number), 'SIGTERM');
    const exit = await spawned.exited;
    const stopMs = Date.now() - signalled;
    const stderr = spawned.stderr();
    assert.equal(exit.code, 0, stderr);
    assert.ok(stopMs < GRACE_MS, `stopped in ${stopMs} ms`);
    assert.doesNotMatch(stderr, /restarting|exited unexpectedly|failed to restart/);
    assert.doesNotMatch(stderr, /^ragway: (?!WARNING)/m, 'no error was printed');
    assert.doesNotMatch(stderr, /shutting down/, 'no stage failed because another was closing');
    const stopped = /stopped the first-run ingest at (\d+)\/(\d+) documents/.exec(stderr);
    assert.ok(stopped, stderr);
    assert.ok(Number(stopped[1]) >= progress.done && Number(stopped[1]) < Number(stopped[2]));
    assert.equal(existsSync(join(dir.path, DONE_MARKER)), false, 'a half corpus is not marked done');
    assert.equal(existsSync(join(dir.path, PROGRESS_MARKER)), true);

    restarted = await startRagway(dir.path);
    assert.match(restarted.stderr(), new RegExp(`resuming at ${stopped[1]}/${stopped[2]} documents`));
    assert.equal(existsSync(join(dir.path, DONE_MARKER)), true);
    assert.deepEqual(await corpusTotals(restarted.url), full, 'the same corpus as an uninterrupted ingest');
    assert.ok((await topDocuments(restarted.url)).some((id) => id.startsWith('lru-cache/')));
  });
});
