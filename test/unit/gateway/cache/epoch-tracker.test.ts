import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EpochTracker, UNKNOWN_EPOCH } from '../../../../gateway/cache/epoch-tracker.js';
import { deferred, type Deferred } from '../../../helpers/deferred.js';


async function until(condition: () => boolean, timeoutMs = 1000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(2);
  }
}


/** A poll the test answers by hand, one call at a time. */
function manualPoll(): {
  poll: (signal: AbortSignal) => Promise<readonly (number | undefined)[]>;
  calls: { signal: AbortSignal; answer: Deferred<readonly (number | undefined)[]> }[];
  concurrent: () => number;
  maxConcurrent: () => number;
} {
  const calls: { signal: AbortSignal; answer: Deferred<readonly (number | undefined)[]> }[] = [];
  let running = 0;
  let max = 0;
  return {
    calls,
    concurrent: () => running,
    maxConcurrent: () => max,
    poll: async (signal) => {
      running += 1;
      max = Math.max(max, running);
      const answer = deferred<readonly (number | undefined)[]>();
      // A well-behaved poll: gives up when its signal aborts.
      signal.addEventListener('abort', () => answer.reject(signal.reason), { once: true });
      calls.push({ signal, answer });
      try {
        return await answer.promise;
      } finally {
        running -= 1;
      }
    },
  };
}

describe('EpochTracker', () => {
  it('starts unknown, and unknown is never current', () => {
    const tracker = new EpochTracker(3);
    assert.deepEqual(tracker.current(), [UNKNOWN_EPOCH, UNKNOWN_EPOCH, UNKNOWN_EPOCH]);
    assert.equal(tracker.isCurrent([-1, -1, -1]), false);
    tracker.observe([0, 0, undefined]);
    assert.equal(tracker.isCurrent([0, 0, -1]), false);
    tracker.observe([undefined, undefined, 4]);
    assert.equal(tracker.isCurrent([0, 0, 4]), true);
  });

  it('observe records the epochs of the shards a response touched', () => {
    const tracker = new EpochTracker(3);
    tracker.observe([5, 7, 9]); // a search answered by every shard
    tracker.observe([undefined, 8, undefined]); // a write ack from shard 1
    assert.deepEqual(tracker.current(), [5, 8, 9]);
    assert.equal(tracker.isCurrent([5, 8, 9]), true);
    assert.equal(tracker.isCurrent([5, 7, 9]), false);
  });

  it('takes the reported value from a response, lower included (a shard restarted with less)', () => {
    const tracker = new EpochTracker(2);
    tracker.observe([10, 3]);
    tracker.observe([4, 3]);
    assert.deepEqual(tracker.current(), [4, 3]);
    assert.equal(tracker.isCurrent([10, 3]), false);
  });

  it('isCurrent needs the same length and every shard equal', () => {
    const tracker = new EpochTracker(2);
    tracker.observe([1, 2]);
    const cases: [number[], boolean][] = [
      [[1, 2], true],
      [[1, 3], false],
      [[2, 2], false],
      [[1], false],
      [[1, 2, 0], false],
      [[], false],
    ];
    for (const [epochs, expected] of cases) assert.equal(tracker.isCurrent(epochs), expected, JSON.stringify(epochs));
  });

  it('ignores entries past shardCount, negative and non-integer epochs', () => {
    const tracker = new EpochTracker(2);
    tracker.observe([1, 2, 3]);
    tracker.observe([Number.NaN, -1]);
    tracker.observe([1.5, undefined]);
    assert.deepEqual(tracker.current(), [1, 2]);
  });

  it('current() is a copy', () => {
    const tracker = new EpochTracker(1);
    tracker.observe([1]);
    const seen = tracker.current() as number[];
    seen[0] = 99;
    assert.deepEqual(tracker.current(), [1]);
  });

  it('rejects a bad shard count and bad intervals', () => {
    assert.throws(() => new EpochTracker(0), RangeError);
    assert.throws(() => new EpochTracker(1.5), RangeError);
    assert.throws(() => new EpochTracker(1, { pollIntervalMs: 0 }), RangeError);
    assert.throws(() => new EpochTracker(1, { pollTimeoutMs: -5 }), RangeError);
  });

  describe('polling', () => {
    it('a poll is authoritative: differing values, lower included, replace the view', async () => {
      const tracker = new EpochTracker(3, { poll: async () => [2, 9, undefined] });
      tracker.observe([5, 5, 5]);
      assert.equal(await tracker.pollNow(), true);
      // undefined: that shard could not be asked, keep what we had.
      assert.deepEqual(tracker.current(), [2, 9, 5]);
    });

    it('a failed poll keeps the last view and is reported', async () => {
      const errors: unknown[] = [];
      const boom = new Error('stats failed');
      const tracker = new EpochTracker(2, {
        poll: async () => {
          throw boom;
        },
        onPollError: (err) => errors.push(err),
      });
      tracker.observe([1, 1]);
      assert.equal(await tracker.pollNow(), false);
      assert.deepEqual(tracker.current(), [1, 1]);
      assert.deepEqual(errors, [boom]);
    });

    it('a poll with the wrong number of shards counts as failed', async () => {
      const errors: unknown[] = [];
      const tracker = new EpochTracker(2, { poll: async () => [1], onPollError: (err) => errors.push(err) });
      assert.equal(await tracker.pollNow(), false);
      assert.deepEqual(tracker.current(), [-1, -1]);
      assert.ok(errors[0] instanceof RangeError);
    });

    it('a shard observed while the poll was out keeps the newer observation', async () => {
      const manual = manualPoll();
      const tracker = new EpochTracker(2, { poll: manual.poll });
      tracker.observe([4, 4]);
      const polled = tracker.pollNow();
      await until(() => manual.calls.length === 1);
      tracker.observe([5, undefined]); // a write ack overtakes the poll
      manual.calls[0]?.answer.resolve([4, 6]);
      assert.equal(await polled, true);
      assert.deepEqual(tracker.current(), [5, 6]);
    });

    it('a poll that outlives its timeout is abandoned, its signal aborted, and reported', async () => {
      const errors: unknown[] = [];
      let seen: AbortSignal | undefined;
      const tracker = new EpochTracker(1, {
        pollTimeoutMs: 20,
        // Ignores its signal on purpose: the tracker must not wait for it anyway.
        poll: (signal) => {
          seen = signal;
          return new Promise(() => undefined);
        },
        onPollError: (err) => errors.push(err),
      });
      // The tracker's timers are unref'd and this poll holds no socket: keep the test process up.
      const keepAlive = setTimeout(() => undefined, 1000);
      assert.equal(await tracker.pollNow(), false);
      clearTimeout(keepAlive);
      assert.equal(seen?.aborted, true);
      assert.equal((errors[0] as { code?: string }).code, 'RAGWAY_ERR_DEADLINE_EXCEEDED');
    });

    it('pollNow does not overlap a poll in progress and honours its signal', async () => {
      const manual = manualPoll();
      const errors: unknown[] = [];
      const tracker = new EpochTracker(1, { poll: manual.poll, onPollError: (err) => errors.push(err) });
      const first = tracker.pollNow();
      assert.equal(await tracker.pollNow(), false);
      assert.equal(manual.calls.length, 1);
      manual.calls[0]?.answer.resolve([3]);
      assert.equal(await first, true);

      const controller = new AbortController();
      const second = tracker.pollNow(controller.signal);
      controller.abort();
      assert.equal(await second, false);
      assert.equal(manual.calls[1]?.signal.aborted, true);
      assert.deepEqual(errors, [], 'an abort asked for is not a poll failure');
      assert.deepEqual(tracker.current(), [3]);
    });

    it('start() polls at once and then periodically; stop() ends it and aborts the poll out', async () => {
      let polls = 0;
      let epoch = 0;
      const tracker = new EpochTracker(2, {
        pollIntervalMs: 10,
        poll: async () => {
          polls += 1;
          epoch += 1;
          return [epoch, epoch];
        },
      });
      tracker.start();
      tracker.start(); // twice is once
      assert.equal(tracker.running, true);
      assert.equal(polls, 1, 'the first poll is immediate');
      await until(() => polls >= 4);
      tracker.stop();
      tracker.stop();
      assert.equal(tracker.running, false);
      const after = polls;
      await sleep(40);
      assert.equal(polls, after);
      assert.equal(tracker.current()[0], epoch);
    });

    it('never overlaps polls; a slow poll makes ticks skip', async () => {
      const manual = manualPoll();
      const tracker = new EpochTracker(1, { poll: manual.poll, pollIntervalMs: 5, pollTimeoutMs: 10_000 });
      tracker.start();
      await sleep(40); // ~8 ticks while the first poll hangs
      assert.equal(manual.calls.length, 1);
      manual.calls[0]?.answer.resolve([1]);
      await until(() => manual.calls.length === 2);
      manual.calls[1]?.answer.resolve([2]);
      await until(() => tracker.current()[0] === 2);
      tracker.stop();
      assert.equal(manual.maxConcurrent(), 1);
      await until(() => manual.concurrent() === 0);
    });

    it('a failed poll is retried on the next tick', async () => {
      let polls = 0;
      const tracker = new EpochTracker(1, {
        pollIntervalMs: 5,
        poll: async () => {
          polls += 1;
          if (polls === 1) throw new Error('first fails');
          return [7];
        },
      });
      tracker.start();
      await until(() => tracker.current()[0] === 7);
      tracker.stop();
      assert.ok(polls >= 2);
    });

    it('a lower epoch in a response triggers a poll right away (was it a restart or a late answer?)', async () => {
      const manual = manualPoll();
      const tracker = new EpochTracker(1, { poll: manual.poll, pollIntervalMs: 60_000 });
      tracker.start();
      await until(() => manual.calls.length === 1);
      manual.calls[0]?.answer.resolve([5]);
      await until(() => tracker.current()[0] === 5);

      tracker.observe([6]); // higher: nothing to check
      await sleep(5);
      assert.equal(manual.calls.length, 1);

      tracker.observe([4]); // an old search answering after the write ack of 6
      assert.deepEqual(tracker.current(), [4]);
      await until(() => manual.calls.length === 2);
      manual.calls[1]?.answer.resolve([6]);
      await until(() => tracker.current()[0] === 6);
      tracker.stop();
    });

    it('a lower epoch seen while a poll is out polls again after it', async () => {
      const manual = manualPoll();
      const tracker = new EpochTracker(1, { poll: manual.poll, pollIntervalMs: 60_000 });
      tracker.observe([5]);
      tracker.start();
      await until(() => manual.calls.length === 1);
      tracker.observe([3]);
      manual.calls[0]?.answer.resolve([5]); // asked before the observation: not applied
      await until(() => manual.calls.length === 2);
      assert.deepEqual(tracker.current(), [3]);
      manual.calls[1]?.answer.resolve([5]);
      await until(() => tracker.current()[0] === 5);
      tracker.stop();
    });

    it('without a poll function start() is a no-op', async () => {
      const tracker = new EpochTracker(1);
      tracker.start();
      assert.equal(tracker.running, false);
      assert.equal(await tracker.pollNow(), false);
    });
  });
});
