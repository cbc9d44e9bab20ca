import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { isRagwayError } from '../../../../core/errors.js';
import { SharedGenerations } from '../../../../gateway/generation/shared-generation.js';
import type { GenerationEvent } from '../../../../gateway/providers/provider.js';

/** A source of `count` deltas, `gapMs` apart, that records how it was driven. */
function source(count: number, gapMs: number, log: { starts: number; pulled: number; aborted: boolean; fail?: number }) {
  return async function* (signal: AbortSignal): AsyncGenerator<GenerationEvent> {
    log.starts += 1;
    signal.addEventListener('abort', () => {
      log.aborted = true;
    });
    for (let i = 0; i < count; i += 1) {
      await sleep(gapMs, undefined, { signal });
      if (log.fail === i) throw new Error('upstream broke');
      log.pulled += 1;
      yield { type: 'delta', text: `t${i} ` };
    }
    yield { type: 'done', finishReason: 'stop' };
  };
}

async function collect(events: AsyncIterable<GenerationEvent>): Promise<string> {
  let text = '';
  for await (const event of events) text += event.type === 'delta' ? event.text : `<${event.finishReason}>`;
  return text;
}

describe('SharedGenerations', () => {
  it('runs one generation for concurrent subscribers, who all get every event', async () => {
    const shared = new SharedGenerations();
    const log = { starts: 0, pulled: 0, aborted: false };
    const streams = Array.from({ length: 10 }, () => shared.subscribe('k', source(5, 2, log)));
    assert.deepEqual(streams.map((s) => s.shared), [false, ...new Array(9).fill(true)]);
    const texts = await Promise.all(streams.map((s) => collect(s.events)));
    assert.equal(log.starts, 1);
    assert.ok(texts.every((t) => t === 't0 t1 t2 t3 t4 <stop>'));
    assert.equal(shared.inFlight, 0);
    assert.equal(streams[0]?.recorded.length, 6);
  });

  it('replays what a late follower missed', async () => {
    const shared = new SharedGenerations();
    const log = { starts: 0, pulled: 0, aborted: false };
    const leader = shared.subscribe('k', source(6, 5, log));
    const leaderText = collect(leader.events);
    await sleep(18);
    const follower = shared.subscribe('k', source(6, 5, log));
    assert.equal(follower.shared, true);
    assert.equal(await collect(follower.events), await leaderText);
    assert.equal(log.starts, 1);
  });

  it('keeps generating for followers when the leader leaves', async () => {
    const shared = new SharedGenerations();
    const log = { starts: 0, pulled: 0, aborted: false };
    const controller = new AbortController();
    const leader = shared.subscribe('k', source(5, 5, log), controller.signal);
    const follower = shared.subscribe('k', source(5, 5, log));
    const leaderDone = collect(leader.events);
    const followerDone = collect(follower.events);
    await sleep(8);
    controller.abort();
    await assert.rejects(leaderDone, (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_CLIENT_CLOSED');
    assert.equal(await followerDone, 't0 t1 t2 t3 t4 <stop>');
    assert.equal(log.aborted, false);
  });

  it('stops the generation when every subscriber has left, and starts afresh after', async () => {
    const shared = new SharedGenerations();
    const log = { starts: 0, pulled: 0, aborted: false };
    const controller = new AbortController();
    const only = shared.subscribe('k', source(50, 5, log), controller.signal);
    const done = collect(only.events);
    await sleep(12);
    controller.abort();
    await assert.rejects(done);
    await sleep(10);
    assert.equal(log.aborted, true);
    assert.equal(shared.inFlight, 0);
    const again = shared.subscribe('k', source(2, 1, log));
    assert.equal(again.shared, false);
    assert.equal(await collect(again.events), 't0 t1 <stop>');
  });

  it('gives every subscriber the same error', async () => {
    const shared = new SharedGenerations();
    const log = { starts: 0, pulled: 0, aborted: false, fail: 2 };
    const a = shared.subscribe('k', source(5, 2, log));
    const b = shared.subscribe('k', source(5, 2, log));
    await assert.rejects(collect(a.events), /upstream broke/);
    await assert.rejects(collect(b.events), /upstream broke/);
  });

  it('pulls from the source only as fast as the fastest reader', async () => {
    const shared = new SharedGenerations();
    const log = { starts: 0, pulled: 0, aborted: false };
    const stream = shared.subscribe('k', source(100, 0, log));
    const iterator = stream.events[Symbol.asyncIterator]();
    await iterator.next();
    await sleep(30);
    assert.ok(log.pulled <= 2, `pulled ${log.pulled} events ahead of a paused reader`);
    await iterator.return?.();
  });
});
