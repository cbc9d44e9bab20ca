import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createError, isRagwayError } from '../../../core/errors.js';
import { ReplicaSet, type ReplicaSetOptions } from '../../../retriever/replica-set.js';
import { encodeVector, type SearchRequest } from '../../../shards/protocol.js';
import { IndexStore } from '../../../shards/index-store.js';
import { mulberry32 } from '../../helpers/random.js';
import { ControlledReplica, DIM, NS, chunks, hasCode, query, recordingObserver, refused, replicaSetOf, sleep, vectors } from './replica-fixtures.js';
import { CONTRACT_DIM, CONTRACT_SPACE, shardClientContract } from './shard-client-contract.js';

// A replica set is a ShardClient like any other: same answers, same errors (docs/architecture.md §6.7).
shardClientContract('ReplicaSet over two in-process replicas', async () => {
  const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'ragway-replica-contract-')));
  const stores = dirs.map((dataDir) => IndexStore.open({ dataDir, dim: CONTRACT_DIM, space: CONTRACT_SPACE, autoSaveMs: 0 }));
  const set = new ReplicaSet(stores.map((store, i) => new ControlledReplica(store, i)));
  return {
    client: set,
    cleanup: async () => {
      await set.close();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('ReplicaSet', () => {
  const dirs: string[] = [];
  const sets: ReplicaSet[] = [];

  /** `count` replicas of one shard, each its own store holding the same chunks. */
  const replicas = (count: number, options: ReplicaSetOptions = {}): Promise<{ set: ReplicaSet; replicas: ControlledReplica[] }> =>
    replicaSetOf(count, options, { dirs, sets });

  after(async () => {
    // Not store.close(): nothing needs to reach disk, the directories go away.
    for (const set of sets) await set.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('P2C sends most reads to the faster replica and spreads concurrent load', async () => {
    const { set, replicas: [fast, slow] } = await replicas(2, { hedge: { enabled: false } });
    assert.ok(fast && slow);
    slow.delay = () => 6;
    for (let i = 0; i < 60; i++) await set.search(query(i));
    assert.ok(fast.calls.search >= 55, `fast ${fast.calls.search}, slow ${slow.calls.search}`);

    // Same speed: in-flight counts keep a burst from landing on one replica.
    const { set: even, replicas: [x, y] } = await replicas(2, { hedge: { enabled: false } });
    assert.ok(x && y);
    x.delay = () => 10;
    y.delay = () => 10;
    await Promise.all(Array.from({ length: 40 }, (_, i) => even.search(query(i))));
    assert.ok(Math.abs(x.calls.search - y.calls.search) <= 4, `x ${x.calls.search}, y ${y.calls.search}`);
  });

  it('a transient failure moves to another replica; a 4xx returns at once', async () => {
    const observer = recordingObserver();
    const { set, replicas: [a, b] } = await replicas(2, { hedge: { enabled: false }, observer, ejection: { failures: 3, baseBackoffMs: 60_000 } });
    assert.ok(a && b);
    a.failure = refused(a);
    for (let i = 0; i < 20; i++) assert.equal((await set.search(query(i))).results[0]?.hits.length, 3);
    assert.ok(a.calls.search <= 3, `the failing replica was tried ${a.calls.search} times`);
    assert.deepEqual(observer.events, ['ejected:0:mem://replica-0']);
    assert.equal(set.counters.failovers, a.calls.search);
    assert.equal(set.view()[0]?.state, 'down');
    assert.equal((await set.getDocument(NS, 'd3'))?.chunks[0]?.id, 'c3');

    a.failure = undefined;
    const before = a.calls.search + b.calls.search;
    const bad: SearchRequest = { queries: [{ ...(query(0).queries[0] as SearchRequest['queries'][0]), filter: { n: { $near: 1 } } }] };
    await assert.rejects(set.search(bad), hasCode('RAGWAY_ERR_INVALID_FILTER'));
    assert.equal(a.calls.search + b.calls.search, before + 1, 'a 4xx is not retried on another replica');

    b.failure = () => createError('RAGWAY_ERR_SHARD_UNAVAILABLE', 'shard-0 (mem://replica-1) unavailable: HTTP 503');
    // The ejected replica answers again (its probe is a minute away): panic routing asks it
    // anyway once the replica in rotation fails, instead of answering 503.
    assert.equal((await set.search(query(1))).results[0]?.hits.length, 3);
    assert.equal(set.view()[0]?.state, 'ready');
    // When nothing answers, the 503 gives each replica's own reason.
    a.failure = refused(a);
    await assert.rejects(
      set.search(query(1)),
      hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /^shard-0: 2 of 2 replicas failed \(search\): (?=.*mem:\/\/replica-1 unavailable: HTTP 503)(?=.*mem:\/\/replica-0 unavailable: connect ECONNREFUSED)/),
    );
  });

  it('panic routing: with no replica in rotation, the others are rechecked best first and read from only when ready', async () => {
    const { set, replicas: [a, b] } = await replicas(2, { hedge: { enabled: false }, ejection: { failures: 1, baseBackoffMs: 60_000 } });
    assert.ok(a && b);
    // a is ejected; b is catching up (it answered its last contact, so it is rechecked first).
    a.failure = refused(a);
    b.state = 'catching-up';
    await set.refresh();
    assert.deepEqual(set.view().map((v) => v.state), ['down', 'catching-up']);
    await assert.rejects(
      set.search(query(0)),
      hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /^shard-0: 2 of 2 replicas failed \(search\): mem:\/\/replica-1: catching up \(not read from until ready\); mem:\/\/replica-0 unavailable: connect ECONNREFUSED$/),
    );
    assert.equal(a.calls.search + b.calls.search, 0, 'nothing is read from a replica that is not ready');

    // a is back, long before its next probe: the read finds it ready and is served by it.
    a.failure = undefined;
    const statsBefore = b.calls.stats;
    assert.equal((await set.getDocument(NS, 'd3'))?.chunks[0]?.id, 'c3');
    assert.equal(a.calls.getDocument, 1);
    assert.equal(b.calls.getDocument, 0, 'the catching-up replica is never read from');
    assert.ok(b.calls.stats > statsBefore, 'the catching-up replica was rechecked first');
    assert.deepEqual(set.view().map((v) => v.state), ['ready', 'catching-up']);

    // Concurrent reads in panic share one recheck per replica.
    a.failure = refused(a);
    await assert.rejects(set.search(query(0)), hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE'));
    assert.equal(set.view()[0]?.state, 'down');
    a.failure = undefined;
    const probes = a.calls.stats;
    await Promise.all(Array.from({ length: 10 }, (_, i) => set.search(query(i))));
    assert.equal(a.calls.stats - probes, 1);
  });

  it('a write every replica in rotation failed is tried on the ejected ones before it fails', async () => {
    const { set, replicas: [a, b] } = await replicas(2, { hedge: { enabled: false }, ejection: { failures: 1, baseBackoffMs: 60_000 } });
    assert.ok(a && b);
    a.failure = refused(a);
    await set.refresh();
    a.failure = undefined;
    b.failure = refused(b);
    const chunk = { id: 'p1', document_id: 'dp1', namespace: NS, text: 'p', vector: encodeVector(vectors[4] as Float32Array) };
    const ack = await set.upsert({ chunks: [chunk], version: 9 });
    assert.deepEqual(ack.replicas.map((r) => [r.url, r.ok]), [['mem://replica-0', true], ['mem://replica-1', false]]);
    assert.ok(a.store.getDocument(NS, 'dp1'));
  });

  it('a body too deeply nested to serialise is a 400 from the HTTP client, and ejects no replica', async () => {
    const observer = recordingObserver();
    // Nothing listens on port 9 (discard): serialising fails before any connection is tried.
    const set = ReplicaSet.fromUrls(['http://127.0.0.1:9', 'http://127.0.0.1:9/b'], { observer, ejection: { failures: 1 } });
    sets.push(set);
    let deep: unknown = 1;
    for (let i = 0; i < 10_000; i++) deep = [deep];
    const chunk = { id: 'x', document_id: 'dx', namespace: NS, text: 'x', metadata: { a: deep }, vector: encodeVector(vectors[0] as Float32Array) };
    for (let i = 0; i < 3; i++) {
      await assert.rejects(set.upsert({ chunks: [chunk] }), hasCode('RAGWAY_ERR_INVALID_REQUEST', /could not be serialised for the shard \(Maximum call stack size exceeded\)/));
      await assert.rejects(set.search({ queries: [{ ...(query(0).queries[0] as SearchRequest['queries'][0]), filter: { a: deep } }] }), hasCode('RAGWAY_ERR_INVALID_REQUEST'));
    }
    assert.deepEqual(observer.events, []);
    assert.deepEqual(set.view().map((v) => v.consecutive_failures), [0, 0]);
  });

  it('a local exception (not a replica failure) is a 500 that never counts against a replica', async () => {
    const observer = recordingObserver();
    const { set, replicas: [a, b] } = await replicas(2, { hedge: { enabled: false }, observer, ejection: { failures: 1 } });
    assert.ok(a && b);
    // What serialising a 10,000-deep body does in the gateway, before any byte is sent.
    const overflow = (): unknown => new RangeError('Maximum call stack size exceeded');
    a.failure = overflow;
    b.failure = overflow;
    for (let i = 0; i < 5; i++) {
      await assert.rejects(set.search(query(i)), hasCode('RAGWAY_ERR_INTERNAL', /^shard-0: search failed in the gateway before any replica answered: Maximum call stack size exceeded$/));
    }
    assert.equal(a.calls.search + b.calls.search, 5, 'not retried on the other replica');
    const write = await set.upsert({ chunks: [{ id: 'l1', document_id: 'dl1', namespace: NS, text: 'l', vector: encodeVector(vectors[5] as Float32Array) }] }).catch((err: unknown) => err);
    assert.ok(hasCode('RAGWAY_ERR_INTERNAL')(write));
    assert.deepEqual(observer.events, [], 'no replica ejected');
    assert.deepEqual(set.view().map((v) => [v.state, v.consecutive_failures]), [['ready', 0], ['ready', 0]]);
    // And a bad request (4xx) returns at once without counting either.
    a.failure = undefined;
    b.failure = undefined;
    const bad: SearchRequest = { queries: [{ ...(query(0).queries[0] as SearchRequest['queries'][0]), filter: { n: { $near: 1 } } }] };
    for (let i = 0; i < 3; i++) await assert.rejects(set.search(bad), hasCode('RAGWAY_ERR_INVALID_FILTER'));
    assert.deepEqual(observer.events, []);
  });

  it('ejects after N failures, probes back with backoff, and reads again once ready', async () => {
    const observer = recordingObserver();
    const { set, replicas: [a, b] } = await replicas(2, {
      hedge: { enabled: false },
      observer,
      ejection: { failures: 2, baseBackoffMs: 20, maxBackoffMs: 40 },
    });
    assert.ok(a && b);
    a.failure = refused(a);
    for (let i = 0; i < 10; i++) await set.search(query(i));
    assert.deepEqual(observer.events, ['ejected:0:mem://replica-0']);
    const probesWhileDown = a.calls.stats;
    await sleep(120);
    assert.ok(a.calls.stats > probesWhileDown, 'the ejected replica is probed');
    assert.ok(a.calls.stats - probesWhileDown <= 6, `probes back off: ${a.calls.stats - probesWhileDown} in 120 ms`);
    assert.equal(set.view()[0]?.state, 'down');

    // It comes back but is still catching up: writes resume, reads wait.
    a.failure = undefined;
    a.state = 'catching-up';
    await sleep(80);
    assert.deepEqual(observer.events, ['ejected:0:mem://replica-0', 'restored:0:mem://replica-0']);
    assert.equal(set.view()[0]?.state, 'catching-up');
    const readsBefore = a.calls.search;
    for (let i = 0; i < 10; i++) await set.search(query(i));
    assert.equal(a.calls.search, readsBefore, 'no reads from a catching-up replica');
    const ack = await set.upsert({ chunks: [{ id: 'x', document_id: 'dx', namespace: NS, text: 'x', vector: encodeVector(vectors[0] as Float32Array) }] });
    assert.deepEqual(ack.replicas.map((r) => r.ok), [true, true]);

    a.state = 'ready';
    await sleep(80);
    assert.equal(set.view()[0]?.state, 'ready');
    b.delay = () => 5;
    for (let i = 0; i < 20; i++) await set.search(query(i));
    assert.ok(a.calls.search > readsBefore, 'the restored replica serves reads again');
  });

  it('the periodic refresh notices a catching-up replica nobody reads from', async () => {
    const { set, replicas: [a, b] } = await replicas(2, { hedge: { enabled: false }, probeIntervalMs: 20 });
    assert.ok(a && b);
    set.start();
    a.state = 'catching-up';
    await sleep(60);
    assert.deepEqual(set.view().map((v) => v.state), ['catching-up', 'ready']);
    const view = set.view()[1];
    assert.equal(view?.chunks, chunks.length);
    assert.ok(view !== undefined && view.epoch !== null && view.stats_age_ms !== null && view.stats_age_ms < 100);
    set.stop();
  });

  it('hedges a slow call to another replica: the hedge wins and the slow call is aborted', async (t) => {
    const observer = recordingObserver();
    const { set, replicas: [a, b] } = await replicas(2, { observer, hedge: { percentile: 0.95, minDelayMs: 5 } });
    assert.ok(a && b);
    // Warm-up: the percentile is trusted after 20 samples; until then nothing is hedged.
    for (let i = 0; i < 20; i++) await set.search(query(i));
    assert.equal(set.counters.hedges, 0);
    // Tail latency: 1 call in 20 on either replica stalls for 150 ms (a GC pause, a cold page).
    for (const [index, replica] of [a, b].entries()) {
      const random = mulberry32(100 + index);
      replica.delay = () => (random() < 0.05 ? 150 : 0);
    }
    const latencies: number[] = [];
    for (let i = 0; i < 300; i++) {
      const started = performance.now();
      await set.search(query(i));
      latencies.push(performance.now() - started);
    }
    const { hedges, hedgesWon, searches } = set.counters;
    const slow = latencies.filter((ms) => ms > 100).length;
    const delay = set.hedgeDelayMs;
    t.diagnostic(`hedge delay ${delay?.toFixed(2)} ms; ${hedges} hedges (${hedgesWon} won) over ${searches} searches; ${slow} searches over 100 ms`);
    assert.equal(delay, 5, 'fast shards hedge at the floor');
    assert.ok(hedges >= 5, `hedges ${hedges}`);
    assert.ok(hedgesWon >= hedges - 2, `won ${hedgesWon} of ${hedges}`);
    // Every hedge ends with exactly one of its two calls aborted.
    assert.equal(a.aborted + b.aborted, hedges);
    // Only a search whose hedge stalls too still waits (about 1 in 400).
    assert.ok(slow <= 2, `${slow} searches still waited for a stalled replica`);
    assert.equal(observer.events.filter((e) => e === 'hedge:0').length, hedges);
    assert.equal(observer.events.filter((e) => e === 'won:0').length, hedgesWon);
  });

  it('the hedge budget caps extra calls at maxExtraFraction', async (t) => {
    const { set, replicas: [a, b] } = await replicas(2, { hedge: { percentile: 0.5, minDelayMs: 1, maxExtraFraction: 0.1 } });
    assert.ok(a && b);
    for (const [index, replica] of [a, b].entries()) {
      const random = mulberry32(200 + index);
      replica.delay = () => 2 + Math.floor(random() * 10);
    }
    const total = 300;
    for (let start = 0; start < total; start += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, i) => set.search(query(start + i))));
    }
    const { hedges, searches } = set.counters;
    // The upsert that loaded the replicas is not a search call.
    const calls = a.calls.search + b.calls.search;
    const fraction = (calls - searches) / searches;
    t.diagnostic(`p50 hedging at ${set.hedgeDelayMs?.toFixed(1)} ms: ${hedges} hedges over ${searches} searches = ${(fraction * 100).toFixed(1)} % extra shard calls`);
    assert.equal(searches, total);
    assert.equal(calls, searches + hedges);
    // Half the calls outlive a p50 hedge delay; the bucket lets through at most 10 %.
    assert.ok(fraction <= 0.1, `extra calls ${fraction}`);
    assert.ok(fraction >= 0.07, `the budget should be used when needed: ${fraction}`);
  });

  it('writes go to every replica with acks, and fail clearly when none accepts', async () => {
    const { set, replicas: [a, b] } = await replicas(2);
    assert.ok(a && b);
    const chunk = { id: 'w1', document_id: 'dw1', namespace: NS, text: 'w', vector: encodeVector(vectors[9] as Float32Array) };
    const both = await set.upsert({ chunks: [chunk], version: 7 });
    assert.deepEqual(both.replicas, [
      { url: 'mem://replica-0', ok: true },
      { url: 'mem://replica-1', ok: true },
    ]);
    assert.equal(both.upserted, 1);
    assert.ok(a.store.getDocument(NS, 'dw1') && b.store.getDocument(NS, 'dw1'));
    assert.deepEqual([a.versions.at(-1), b.versions.at(-1)], [7, 7]);

    b.failure = () => new Error('disk on fire');
    const one = await set.upsert({ chunks: [{ ...chunk, id: 'w2' }] });
    assert.deepEqual(one.replicas.map((r) => r.ok), [true, false]);
    assert.match(one.replicas[1]?.error ?? '', /mem:\/\/replica-1: disk on fire/);

    a.failure = refused(a);
    await assert.rejects(
      set.delete({ namespace: NS, document_ids: ['dw1'] }),
      hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /^shard-0: 2 of 2 replicas failed \(delete\): mem:\/\/replica-0 unavailable: connect ECONNREFUSED; mem:\/\/replica-1: disk on fire$/),
    );
    a.failure = undefined;
    b.failure = undefined;
    // A request every replica rejects is the caller's mistake, not an outage.
    await assert.rejects(
      set.upsert({ chunks: [{ ...chunk, vector: encodeVector(new Float32Array(3)) }] }),
      (err: unknown) => isRagwayError(err) && err.statusCode === 400,
    );
  });

  it('a deadline ends the read at the deadline, with every call aborted', async () => {
    const { set, replicas: [a, b] } = await replicas(2);
    assert.ok(a && b);
    a.delay = () => 500;
    b.delay = () => 500;
    const started = performance.now();
    const deadline = Date.now() + 50;
    await assert.rejects(set.search(query(0), undefined, { deadline }), hasCode('RAGWAY_ERR_DEADLINE_EXCEEDED', /^shard-0: no replica answered search before the deadline/));
    const waited = performance.now() - started;
    assert.ok(waited >= 45 && waited < 120, `waited ${waited} ms for a 50 ms budget`);
    assert.equal(a.aborted + b.aborted, a.calls.search + b.calls.search);
    assert.ok([...a.deadlines, ...b.deadlines].every((d) => d === deadline), 'the deadline travels to the replica');
  });
});
