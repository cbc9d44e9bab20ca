import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SingleFlight } from '../../../../gateway/cache/single-flight.js';
import { isRagwayError } from '../../../../core/errors.js';
import { deferred, type Deferred } from '../../../helpers/deferred.js';


/** A compute that waits for the test to release it and records the signal it was given. */
function gatedCompute<T>(gate: Deferred<T>): { compute: (signal: AbortSignal) => Promise<T>; calls: AbortSignal[] } {
  const calls: AbortSignal[] = [];
  return {
    calls,
    compute: (signal) => {
      calls.push(signal);
      return gate.promise;
    },
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function assertAbortError(err: unknown, code: string): true {
  assert.ok(isRagwayError(err), `expected a RagwayError, got ${String(err)}`);
  assert.equal(err.code, code);
  return true;
}

describe('SingleFlight', () => {
  it('runs one computation for 50 concurrent callers; only the leader is not shared', async () => {
    const flight = new SingleFlight<string>();
    const gate = deferred<string>();
    const { compute, calls } = gatedCompute(gate);
    const results = Array.from({ length: 50 }, () => flight.run('q', compute));
    await tick();
    assert.equal(calls.length, 1);
    assert.equal(flight.inFlight, 1);
    gate.resolve('answer');
    const settled = await Promise.all(results);
    assert.equal(calls.length, 1);
    assert.ok(settled.every((r) => r.value === 'answer'));
    assert.deepEqual(
      settled.map((r) => r.shared),
      [false, ...new Array<boolean>(49).fill(true)],
    );
    assert.equal(flight.inFlight, 0);
  });

  it('keeps different keys apart', async () => {
    const flight = new SingleFlight<string>();
    let runs = 0;
    const compute = async (): Promise<string> => `v${++runs}`;
    const [a, b] = await Promise.all([flight.run('a', compute), flight.run('b', compute)]);
    assert.equal(runs, 2);
    assert.notEqual(a.value, b.value);
    assert.equal(a.shared || b.shared, false);
  });

  it('shares the error: every waiter gets the same error object', async () => {
    const flight = new SingleFlight<string>();
    const gate = deferred<string>();
    const { compute } = gatedCompute(gate);
    const results = Array.from({ length: 5 }, () => flight.run('q', compute));
    const boom = new Error('shard down');
    gate.reject(boom);
    for (const result of results) await assert.rejects(result, (err) => err === boom);
    assert.equal(flight.inFlight, 0);
  });

  it('a compute that throws synchronously rejects instead of throwing from run()', async () => {
    const flight = new SingleFlight<string>();
    const boom = new Error('sync');
    const promise = flight.run('q', () => {
      throw boom;
    });
    await assert.rejects(promise, (err) => err === boom);
  });

  it('the leader aborting does not cancel the work followers wait for', async () => {
    const flight = new SingleFlight<string>();
    const gate = deferred<string>();
    const { compute, calls } = gatedCompute(gate);
    const leader = new AbortController();
    const leaderResult = flight.run('q', compute, leader.signal);
    const followers = [flight.run('q', compute), flight.run('q', compute, new AbortController().signal)];
    await tick();
    leader.abort();
    // Rejected at once, before the computation has finished.
    await assert.rejects(leaderResult, (err) => assertAbortError(err, 'RAGWAY_ERR_CLIENT_CLOSED'));
    assert.equal(calls[0]?.aborted, false);
    gate.resolve('answer');
    for (const result of await Promise.all(followers)) assert.deepEqual(result, { value: 'answer', shared: true });
  });

  it('a follower aborting is rejected at once; the others still get the value', async () => {
    const flight = new SingleFlight<number>();
    const gate = deferred<number>();
    const { compute, calls } = gatedCompute(gate);
    const leader = flight.run('q', compute);
    const quitter = new AbortController();
    const follower = flight.run('q', compute, quitter.signal);
    quitter.abort(new DOMException('too slow', 'TimeoutError'));
    await assert.rejects(follower, (err) => assertAbortError(err, 'RAGWAY_ERR_DEADLINE_EXCEEDED'));
    await tick();
    assert.equal(calls[0]?.aborted, false);
    gate.resolve(42);
    assert.deepEqual(await leader, { value: 42, shared: false });
  });

  it('aborts the computation when every waiter has aborted, with the last reason', async () => {
    const flight = new SingleFlight<string>();
    const { compute, calls } = gatedCompute(deferred<string>());
    const controllers = Array.from({ length: 3 }, () => new AbortController());
    const results = controllers.map((c) => flight.run('q', compute, c.signal));
    await tick();
    const computeSignal = calls[0];
    assert.ok(computeSignal);
    let abortedAt = -1;
    computeSignal.addEventListener('abort', () => {
      abortedAt = controllers.filter((c) => c.signal.aborted).length;
    });
    controllers[0]?.abort();
    controllers[1]?.abort();
    assert.equal(computeSignal.aborted, false);
    controllers[2]?.abort(new DOMException('deadline', 'TimeoutError'));
    assert.equal(computeSignal.aborted, true);
    assert.equal(abortedAt, 3);
    assertAbortError(computeSignal.reason, 'RAGWAY_ERR_DEADLINE_EXCEEDED');
    for (const result of results) await assert.rejects(result, (err) => isRagwayError(err));
    assert.equal(flight.inFlight, 0);
  });

  it('a caller arriving after everyone abandoned the key starts a fresh computation', async () => {
    const flight = new SingleFlight<string>();
    const first = deferred<string>();
    const leader = new AbortController();
    const abandoned = flight.run('q', () => first.promise, leader.signal);
    leader.abort();
    await assert.rejects(abandoned);
    let secondRan = false;
    const fresh = await flight.run('q', async () => {
      secondRan = true;
      return 'fresh';
    });
    assert.equal(secondRan, true);
    assert.deepEqual(fresh, { value: 'fresh', shared: false });
    // The abandoned computation finishing late must not disturb anything.
    first.resolve('late');
    await tick();
    assert.equal(flight.inFlight, 0);
  });

  it('an already-aborted signal is rejected without computing or joining', async () => {
    const flight = new SingleFlight<string>();
    let runs = 0;
    const aborted = AbortSignal.abort();
    await assert.rejects(
      flight.run(
        'q',
        async () => {
          runs += 1;
          return 'x';
        },
        aborted,
      ),
      (err) => assertAbortError(err, 'RAGWAY_ERR_CLIENT_CLOSED'),
    );
    assert.equal(runs, 0);
    assert.equal(flight.inFlight, 0);
  });

  it('a call after settle computes again (no caching here), even from a continuation', async () => {
    const flight = new SingleFlight<number>();
    let runs = 0;
    const compute = async (): Promise<number> => ++runs;
    const again = await flight.run('q', compute).then(() => flight.run('q', compute));
    assert.deepEqual(again, { value: 2, shared: false });
    assert.equal(runs, 2);
    // After an error too.
    const failing = flight.run('q', () => Promise.reject(new Error('x')));
    await assert.rejects(failing);
    assert.deepEqual(await flight.run('q', compute), { value: 3, shared: false });
  });

  it('removes its abort listeners once answered', async () => {
    const flight = new SingleFlight<string>();
    const controller = new AbortController();
    let added = 0;
    let removed = 0;
    const signal = controller.signal;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((...args: Parameters<AbortSignal['addEventListener']>) => {
      added += 1;
      add(...args);
    }) as AbortSignal['addEventListener'];
    signal.removeEventListener = ((...args: Parameters<AbortSignal['removeEventListener']>) => {
      removed += 1;
      remove(...args);
    }) as AbortSignal['removeEventListener'];
    for (let i = 0; i < 10; i += 1) await flight.run(`k${i}`, async () => 'v', signal);
    assert.equal(added, 10);
    assert.equal(removed, 10);
    // Aborting later touches no finished flight.
    controller.abort();
    assert.equal(flight.inFlight, 0);
  });

  it('counts in-flight keys', async () => {
    const flight = new SingleFlight<string>();
    const gateA = deferred<string>();
    const gateB = deferred<string>();
    const a = flight.run('a', () => gateA.promise);
    const a2 = flight.run('a', () => gateA.promise);
    const b = flight.run('b', () => gateB.promise);
    assert.equal(flight.inFlight, 2);
    gateA.resolve('A');
    await Promise.all([a, a2]);
    assert.equal(flight.inFlight, 1);
    gateB.resolve('B');
    await b;
    assert.equal(flight.inFlight, 0);
  });
});
