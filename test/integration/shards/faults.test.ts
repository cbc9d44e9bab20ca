// Fault injection (RAGWAY_FAULTS=1 only) and deadline handling on real `ragway shard` processes.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ServiceProcess } from '../../../cli/service-process.js';
import { DEADLINE_HEADER, encodeVector, type FaultSettings, type StatsResponse } from '../../../shards/protocol.js';
import { randomUnitVectors } from '../../helpers/random.js';
import { chunkFor, DIM, ShardHttp, shardProcess, tempRoot } from './shard-http.js';

interface Envelope {
  error: { code: string; message: string; param: string | null };
}

describe('fault injection and deadlines (real processes)', () => {
  const http = new ShardHttp();
  const [vector] = randomUnitVectors(1, DIM, 3) as [Float32Array];
  const search = { queries: [{ vector: encodeVector(vector), k: 1, namespace: 'default' }] };
  let root: { path: string; remove(): Promise<void> };
  let plain: ServiceProcess;
  let faulty: ServiceProcess;
  let plainUrl: string;
  let faultyUrl: string;

  before(async () => {
    root = await tempRoot('shard-faults');
    plain = shardProcess('plain', join(root.path, 'plain'));
    faulty = shardProcess('faulty', join(root.path, 'faulty'), [], { RAGWAY_FAULTS: '1' });
    [plainUrl, faultyUrl] = await Promise.all([plain.start(), faulty.start()]);
    for (const url of [plainUrl, faultyUrl]) {
      assert.equal((await http.call(url, 'POST', '/v1/upsert', { chunks: [chunkFor(0, vector)] })).status, 200);
    }
  });
  after(async () => {
    await Promise.all([plain.stop(), faulty.stop()]);
    await http.close();
    await root.remove();
  });

  it('has no fault route without RAGWAY_FAULTS=1', async () => {
    for (const method of ['GET', 'POST'] as const) {
      const reply = await http.call<Envelope>(plainUrl, method, '/v1/faults', method === 'POST' ? { fail_probability: 1 } : undefined);
      assert.equal(reply.status, 404);
      assert.equal(reply.body.error.code, 'RAGWAY_ERR_NOT_FOUND');
    }
    assert.equal((await http.call(plainUrl, 'POST', '/v1/search', search)).status, 200);
  });

  it('sets and reports fault settings, validated', async () => {
    assert.deepEqual((await http.call(faultyUrl, 'GET', '/v1/faults')).body, {});
    const settings: FaultSettings = { fail_probability: 0, delay_ms: 0, routes: ['search', 'upsert'] };
    assert.deepEqual((await http.call(faultyUrl, 'POST', '/v1/faults', settings)).body, settings);
    assert.deepEqual((await http.call(faultyUrl, 'GET', '/v1/faults')).body, settings);
    const bad = await http.call<Envelope>(faultyUrl, 'POST', '/v1/faults', { fail_probability: 2 });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.param, 'fail_probability');
    assert.equal((await http.call(faultyUrl, 'POST', '/v1/faults', {})).status, 200);
  });

  it('fails, drops and delays searches, never health probes', async () => {
    await http.call(faultyUrl, 'POST', '/v1/faults', { fail_probability: 1 });
    const failed = await http.call<Envelope>(faultyUrl, 'POST', '/v1/search', search);
    assert.equal(failed.status, 500);
    assert.deepEqual({ code: failed.body.error.code, message: failed.body.error.message }, { code: 'RAGWAY_ERR_INTERNAL', message: 'injected fault' });
    assert.equal(await http.ready(faultyUrl), 200);
    assert.equal((await http.call(faultyUrl, 'GET', '/healthz')).status, 200);
    const [other] = randomUnitVectors(1, DIM, 4) as [Float32Array];
    assert.equal((await http.call(faultyUrl, 'POST', '/v1/upsert', { chunks: [chunkFor(1, other)] })).status, 200, 'writes are not faulted by default');

    await http.call(faultyUrl, 'POST', '/v1/faults', { drop_probability: 1 });
    await assert.rejects(http.call(faultyUrl, 'POST', '/v1/search', search), 'the connection is dropped without a response');

    await http.call(faultyUrl, 'POST', '/v1/faults', { delay_ms: 300, delay_probability: 1 });
    const started = Date.now();
    assert.equal((await http.call(faultyUrl, 'POST', '/v1/search', search)).status, 200);
    assert.ok(Date.now() - started >= 290, 'delayed');
    await http.call(faultyUrl, 'POST', '/v1/faults', {});
  });

  it('answers 504 when the deadline already passed, and stops work the deadline outran', async () => {
    const spent = await http.call<Envelope>(plainUrl, 'POST', '/v1/search', search, { [DEADLINE_HEADER]: '0' });
    assert.equal(spent.status, 504);
    assert.equal(spent.body.error.code, 'RAGWAY_ERR_DEADLINE_EXCEEDED');
    assert.equal((await http.call(plainUrl, 'POST', '/v1/search', search, { [DEADLINE_HEADER]: '5000' })).status, 200);
    // A negative budget is a malformed header, not a spent one.
    for (const budget of ['soon', '-5']) {
      const bad = await http.call<Envelope>(plainUrl, 'POST', '/v1/search', search, { [DEADLINE_HEADER]: budget });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.param, DEADLINE_HEADER);
    }

    // A write whose budget is spent is not applied at all.
    const before = (await http.stats(plainUrl)).count;
    const [fresh] = randomUnitVectors(1, DIM, 5) as [Float32Array];
    const late = await http.call<Envelope>(plainUrl, 'POST', '/v1/upsert', { chunks: [chunkFor(99, fresh)] }, { [DEADLINE_HEADER]: '0' });
    assert.equal(late.status, 504);
    assert.equal((await http.stats(plainUrl)).count, before);

    // The search is delayed past its budget: the shard gives up instead of searching.
    await http.call(faultyUrl, 'POST', '/v1/faults', { delay_ms: 300, delay_probability: 1 });
    const queriesBefore = (await http.stats(faultyUrl)).search_queries;
    const outrun = await http.call<Envelope>(faultyUrl, 'POST', '/v1/search', search, { [DEADLINE_HEADER]: '100' });
    assert.equal(outrun.status, 504);
    assert.equal(outrun.body.error.code, 'RAGWAY_ERR_DEADLINE_EXCEEDED');
    assert.equal((await http.call<StatsResponse>(faultyUrl, 'GET', '/v1/stats')).body.search_queries, queriesBefore, 'nothing was searched');
    await http.call(faultyUrl, 'POST', '/v1/faults', {});
  });
});
