// FailoverGenerator over real UpstreamGenerators and two scripted upstream servers: which
// failures move on to the next upstream (transient, before the first event) and which reach
// the caller as they are.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, afterEach, before, describe, it } from 'node:test';
import { FailoverGenerator } from '../../../../gateway/providers/failover.js';
import { isTransientUpstreamError } from '../../../../gateway/providers/upstream-errors.js';
import { UpstreamGenerator } from '../../../../gateway/providers/upstream-generator.js';
import type { GenerationEvent, GenerationRequest } from '../../../../gateway/providers/provider.js';
import { freePort } from '../../../../cli/free-port.js';
import { drain } from '../../../helpers/generation.js';
import { startScriptedUpstream, type ScriptedUpstream } from '../../../fixtures/scripted-upstream.js';

const REQUEST: GenerationRequest = {
  model: 'grounded',
  messages: [{ role: 'user', content: 'What is lava?' }],
  question: 'What is lava?',
  sources: [],
};

function text(events: GenerationEvent[]): string {
  return events.map((e) => (e.type === 'delta' ? e.text : '')).join('');
}

describe('FailoverGenerator', () => {
  let primary: ScriptedUpstream;
  let secondary: ScriptedUpstream;
  const members: UpstreamGenerator[] = [];
  const member = (url: string, firstTokenTimeoutMs = 500): UpstreamGenerator => {
    const generator = new UpstreamGenerator({ id: 'grounded', upstreamModel: 'm', url, connectTimeoutMs: 500, firstTokenTimeoutMs, idleTimeoutMs: 500 });
    members.push(generator);
    return generator;
  };
  const group = (...generators: UpstreamGenerator[]): FailoverGenerator => new FailoverGenerator(generators);

  before(async () => {
    primary = await startScriptedUpstream({ tokens: ['from', ' primary'] });
    secondary = await startScriptedUpstream({ tokens: ['from', ' secondary'] });
  });
  afterEach(async () => {
    await Promise.all(members.splice(0).map((m) => m.close()));
    primary.resetScript({ tokens: ['from', ' primary'] });
    secondary.resetScript({ tokens: ['from', ' secondary'] });
  });
  after(async () => {
    await Promise.all([primary.close(), secondary.close()]);
  });

  it('takes its id and owner from the first member', () => {
    const failover = group(member(primary.url), member(secondary.url));
    assert.equal(failover.id, 'grounded');
    assert.equal(failover.ownedBy, 'openai-compatible');
  });

  it('serves from the first upstream when it is healthy', async () => {
    const before = secondary.requests.length;
    const { events, error } = await drain(group(member(primary.url), member(secondary.url)).stream(REQUEST, new AbortController().signal));
    assert.equal(error, undefined);
    assert.equal(text(events), 'from primary');
    assert.equal(secondary.requests.length, before);
  });

  it('first upstream answers 500 → the second serves', async () => {
    primary.setScript({ status: 500 });
    const { events, error } = await drain(group(member(primary.url), member(secondary.url)).stream(REQUEST, new AbortController().signal));
    assert.equal(error, undefined);
    assert.equal(text(events), 'from secondary');
    assert.deepEqual(events.at(-1)?.type, 'done');
  });

  it('first upstream refuses the connection → the second serves', async () => {
    const { events, error } = await drain(group(member(`http://127.0.0.1:${await freePort()}`), member(secondary.url)).stream(REQUEST, new AbortController().signal));
    assert.equal(error, undefined);
    assert.equal(text(events), 'from secondary');
  });

  it('first upstream sends no token in time → it is aborted and the second serves', async () => {
    primary.setScript({ firstTokenDelayMs: 2_000 });
    const started = performance.now();
    const { events, error } = await drain(group(member(primary.url, 150), member(secondary.url)).stream(REQUEST, new AbortController().signal));
    assert.equal(error, undefined);
    assert.equal(text(events), 'from secondary');
    await primary.waitForAbort(500, started);
  });

  it('all fail → UPSTREAM_UNAVAILABLE naming every upstream and why', async () => {
    primary.setScript({ status: 503, errorBody: { error: { message: 'model is loading' } } });
    const refused = `http://127.0.0.1:${await freePort()}`;
    const { events, error } = await drain(group(member(primary.url), member(refused)).stream(REQUEST, new AbortController().signal));
    assert.deepEqual(events, []);
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE');
    assert.match(error?.message ?? '', /^all 2 upstreams failed: /);
    assert.ok(error?.message.includes(`${primary.url}: answered 503: model is loading`), error?.message);
    assert.ok(error?.message.includes(`${refused}: did not answer: `), error?.message);
    assert.match(error?.message ?? '', /ECONNREFUSED/);
    assert.ok(isTransientUpstreamError(error), 'a group failure is transient, so groups can nest');
  });

  it('all rate-limited → UPSTREAM_RATE_LIMITED with the smallest Retry-After', async () => {
    primary.setScript({ status: 429, retryAfter: 30 });
    secondary.setScript({ status: 429, retryAfter: 4 });
    const { error } = await drain(group(member(primary.url), member(secondary.url)).stream(REQUEST, new AbortController().signal));
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_RATE_LIMITED');
    assert.equal(error?.retryAfterSeconds, 4);
    assert.match(error?.message ?? '', /^all 2 upstreams failed: /);
  });

  it('a single upstream passes its own error on unchanged', async () => {
    primary.setScript({ status: 429, retryAfter: 9 });
    const { error } = await drain(group(member(primary.url)).stream(REQUEST, new AbortController().signal));
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_RATE_LIMITED');
    assert.equal(error?.retryAfterSeconds, 9);
    assert.ok(error?.message.startsWith(`upstream ${primary.url} `));
  });

  it('a non-transient 400 is thrown at once, without trying the next upstream', async () => {
    primary.setScript({ status: 400, errorBody: { error: { message: 'context too long' } } });
    const before = secondary.requests.length;
    const { error } = await drain(group(member(primary.url), member(secondary.url)).stream(REQUEST, new AbortController().signal));
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_REJECTED');
    assert.match(error?.message ?? '', /context too long/);
    assert.equal(secondary.requests.length, before);
  });

  it('a failure after the first delta propagates; no failover', async () => {
    primary.setScript({ tokens: ['half', ' an', ' answer'], dropAfter: 1 });
    const before = secondary.requests.length;
    const { events, error } = await drain(group(member(primary.url), member(secondary.url)).stream(REQUEST, new AbortController().signal));
    assert.equal(text(events), 'half');
    assert.equal(error?.code, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE');
    assert.match(error?.message ?? '', /broke the stream after 1 deltas/);
    assert.equal(secondary.requests.length, before);
  });

  it('breaking out early closes the serving upstream connection', async () => {
    primary.setScript({ status: 500 });
    secondary.setScript({ tokens: Array.from({ length: 40 }, (_, i) => `t${i}`), delayMs: 20 });
    let brokeAt = 0;
    for await (const event of group(member(primary.url), member(secondary.url)).stream(REQUEST, new AbortController().signal)) {
      if (event.type === 'delta') {
        brokeAt = performance.now();
        break;
      }
    }
    const closeMs = await secondary.waitForAbort(500, brokeAt);
    assert.ok(closeMs < 100, `${closeMs} ms`);
  });

  it("the caller's abort during failover stops it with CLIENT_CLOSED", async () => {
    primary.setScript({ firstTokenDelayMs: 2_000 });
    const controller = new AbortController();
    const before = secondary.requests.length;
    setTimeout(() => controller.abort(), 50);
    const { error } = await drain(group(member(primary.url), member(secondary.url)).stream(REQUEST, controller.signal));
    assert.equal(error?.code, 'RAGWAY_ERR_CLIENT_CLOSED');
    assert.equal(secondary.requests.length, before);
  });
});
