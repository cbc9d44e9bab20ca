// The spans of shard calls, from the real tracer (spans kept in memory instead of exported):
// one CLIENT span per call to a replica, whose context is what the replica is sent, marked
// `ragway.hedge` no / yes / won, and ending as ok, error or cancelled (the loser of a hedge).
// Replicas are in-process stores behind knobs (delays, failures), as in the replica-set tests.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { mulberry32 } from '../../../helpers/random.js';
import { after, describe, it } from 'node:test';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Tracing } from '../../../../core/tracing.js';
import { SpanShardTrace } from '../../../../gateway/tracing/shard-trace.js';
import type { ReplicaSet, ReplicaSetOptions } from '../../../../retriever/replica-set.js';
import { query, refused, replicaSetOf } from '../../retriever/replica-fixtures.js';

describe('shard call spans', () => {
  const dirs: string[] = [];
  const sets: ReplicaSet[] = [];
  const tracings: Tracing[] = [];

  const replicas = (options: ReplicaSetOptions) => replicaSetOf(2, options, { dirs, sets });

  function tracer(): { tracing: Tracing; exporter: InMemorySpanExporter; finished: () => Promise<ReadableSpan[]> } {
    const exporter = new InMemorySpanExporter();
    const tracing = new Tracing({ serviceName: 'test', url: 'http://127.0.0.1:1/v1/traces', exporter });
    tracings.push(tracing);
    return { tracing, exporter, finished: async () => (await tracing.flush(), exporter.getFinishedSpans()) };
  }

  after(async () => {
    for (const tracing of tracings) await tracing.shutdown();
    for (const set of sets) await set.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('hedged searches: the hedge that answers is "won", the call it beat is "cancelled", each replica got its own span context', async () => {
    const { set, replicas: [a, b] } = await replicas({ hedge: { percentile: 0.95, minDelayMs: 5 } });
    assert.ok(a && b);
    for (let i = 0; i < 20; i++) await set.search(query(i));
    for (const [index, replica] of [a, b].entries()) {
      const random = mulberry32(100 + index);
      replica.delay = () => (random() < 0.1 ? 150 : 0);
    }
    const { tracing, finished } = tracer();
    const parent = tracing.start('search shards', undefined);
    const trace = new SpanShardTrace(parent);
    for (let i = 0; i < 150; i++) await set.search(query(i), undefined, { trace });
    parent.end();
    const spans = (await finished()).filter((span) => span.name === 'shard search');

    const { hedges, hedgesWon } = set.counters;
    assert.ok(hedges >= 3, `hedges ${hedges}`);
    const hedge = (value: string) => spans.filter((span) => span.attributes['ragway.hedge'] === value);
    assert.equal(hedge('yes').length + hedge('won').length, hedges);
    assert.equal(hedge('won').length, hedgesWon);
    assert.ok(hedge('won').every((span) => span.attributes['ragway.shard.result'] === 'ok'));
    // Every hedge leaves exactly one of its two calls cancelled.
    assert.equal(spans.filter((span) => span.attributes['ragway.shard.result'] === 'cancelled').length, hedges);
    assert.equal(spans.length, 150 + hedges);
    for (const span of spans) {
      assert.equal(span.parentSpanContext?.spanId, parent.spanId);
      assert.equal(span.spanContext().traceId, parent.traceId);
      assert.equal(span.attributes['ragway.shard'], 0);
      assert.ok(['mem://replica-0', 'mem://replica-1'].includes(span.attributes['ragway.replica'] as string));
    }
    // What the replicas were sent is each call's own span, never the parent's.
    const sent = [...a.traceparents, ...b.traceparents].filter((value) => value !== undefined);
    assert.deepEqual(new Set(sent), new Set(spans.map((span) => `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`)));
  });

  it('a failed call is an error span naming the code; a call without a trace sends no traceparent', async () => {
    const { set, replicas: [a, b] } = await replicas({ hedge: { enabled: false }, ejection: { failures: 100 } });
    assert.ok(a && b);
    a.failure = refused(a);
    b.failure = refused(b);
    const { tracing, finished } = tracer();
    const parent = tracing.start('search shards', undefined);
    await assert.rejects(set.search(query(0), undefined, { trace: new SpanShardTrace(parent) }));
    b.failure = undefined;
    a.failure = undefined;
    const before = a.traceparents.length + b.traceparents.length;
    await set.search(query(1));
    assert.deepEqual([...a.traceparents, ...b.traceparents].slice(before), [undefined]);
    parent.end();
    const spans = (await finished()).filter((span) => span.name === 'shard search');
    assert.equal(spans.length, 2, 'one call per replica, both failed');
    for (const span of spans) {
      assert.equal(span.attributes['ragway.shard.result'], 'error');
      assert.equal(span.status.code, 2);
      assert.equal(span.attributes['error.type'], 'RAGWAY_ERR_SHARD_UNAVAILABLE');
    }
  });
});
