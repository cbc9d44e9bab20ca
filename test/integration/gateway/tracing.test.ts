// Tracing across processes: a gateway and two real shard processes with tracing on export to a
// real OTLP/HTTP receiver started here; one /v1/query must come out as one trace holding the
// gateway's stage spans and each shard process's server spans, parent links intact, with the
// W3C context handed on to the LLM upstream (a scripted OpenAI-compatible server). A client's
// own traceparent is continued; with tracing off nothing is exported and no traceparent leaves.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig, type Config } from '../../../gateway/config.js';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { startRerankServer, type RerankServer } from '../../fixtures/rerank-server.js';
import { startScriptedUpstream, type ScriptedUpstream } from '../../fixtures/scripted-upstream.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';
import { listenOnLoopback } from '../../helpers/listen.js';
import { startOtlpCollector, type CollectedSpan, type OtlpCollector } from '../../helpers/otlp-collector.js';

const MODEL = 'scripted-llm';
const SERVER = 2;
const CLIENT = 3;
const QUERY = { query: 'How do cache entries expire?', model: MODEL, rerank: {} };

describe('tracing across the gateway and the shard processes', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let collector: OtlpCollector;
  let shards: TestShards;
  let backend: OnnxEmbeddingBackend;
  let upstream: ScriptedUpstream;
  let reranker: RerankServer;
  let base: Partial<Config>;

  before(async () => {
    dir = await tempDir('tracing');
    collector = await startOtlpCollector();
    backend = await loadDefaultBackend();
    shards = await startShards(2, dir.path, backend.dimensions, {
      // A short export delay: the shards' spans arrive while the test waits, not at their exit.
      env: { RAGWAY_TRACING: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: '100' },
    });
    upstream = await startScriptedUpstream({ tokens: ['Entries expire', ' after their ttl', ' [1].'] });
    reranker = await startRerankServer();
    base = {
      shards: shards.spec,
      llmUrl: `${upstream.url}/v1`,
      llmModel: MODEL,
      rerankUrl: reranker.url,
      rerankFormat: 'tei',
      rerankModel: 'overlap',
    };
    const app = await buildApp(loadConfig({}, { ...base, logLevel: 'silent' }), { embeddingBackend: backend, defaultMetrics: false });
    await app.documents.ingest('default', [
      { id: 'cache.md', text: 'Set a time to live on cache entries with the ttl option. Expired entries are evicted automatically when ttlAutopurge is on.' },
      { id: 'trains.md', text: 'The train departs from the central station every morning. Tickets are sold at the counter.' },
      { id: 'bread.md', text: 'Bread rises when the yeast has time to work. Bake it in a hot oven.' },
    ]);
    await app.close();
  });

  after(async () => {
    await reranker?.close();
    await upstream?.close();
    await shards?.stop();
    await collector?.close();
    await backend?.close();
    await dir?.remove();
  });

  /** One gateway for one request: closing it is what exports its spans (the plugin's onClose flush). */
  async function queryOnce(settings: Partial<Config>, headers: Record<string, string> = {}): Promise<{ logs: Record<string, unknown>[] }> {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter((line) => line !== ''));
        done();
      },
    });
    const app = await buildApp(loadConfig({}, { ...base, ...settings }), {
      embeddingBackend: backend,
      defaultMetrics: false,
      logger: { level: 'info', stream },
    });
    try {
      const url = await listenOnLoopback(app);
      const response = await request(`${url}/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(QUERY),
      });
      const body = (await response.body.json()) as { answer?: string; rerank?: { applied: boolean } };
      assert.equal(response.statusCode, 200, JSON.stringify(body));
      assert.equal(body.answer, 'Entries expire after their ttl [1].');
      assert.equal(body.rerank?.applied, true);
    } finally {
      await app.close();
    }
    return { logs: lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
  }

  const fromGateway = (span: CollectedSpan): boolean => span.resource['service.name'] === 'ragway-gateway';
  const fromShard = (span: CollectedSpan): boolean => span.resource['service.name'] === 'ragway-shard';
  const shardPids = (): number[] => shards.processes.map((shard) => shard.pid as number);

  /** Waits until both shard processes have exported spans of `traceId`, then returns the trace. */
  async function traceOf(traceId: string): Promise<CollectedSpan[]> {
    await collector.waitFor((spans) => {
      const pids = new Set(spans.filter((span) => span.traceId === traceId && fromShard(span)).map((span) => span.resource['process.pid']));
      return shardPids().every((pid) => pids.has(pid));
    }, 10_000);
    // A moment for any straggler of the same export round.
    await sleep(300);
    return collector.spans.filter((span) => span.traceId === traceId);
  }

  it('one /v1/query is one trace: the gateway stage spans and each shard process, parents consistent', async () => {
    const mark = collector.spans.length;
    const { logs } = await queryOnce({ tracing: 'otlp', otlpEndpoint: collector.url });
    const root = collector.spans.slice(mark).find((span) => fromGateway(span) && span.name === 'POST /v1/query');
    assert.ok(root, 'the gateway exported the request span when it closed');
    const spans = await traceOf(root.traceId);

    // Exactly one trace: everything this gateway and the shards exported since the mark is in it.
    const exported = collector.spans.slice(mark);
    assert.deepEqual([...new Set(exported.map((span) => span.traceId))], [root.traceId]);
    assert.equal(root.kind, SERVER);
    assert.equal(root.parentSpanId, '');
    assert.equal(root.attributes['http.response.status_code'], 200);
    assert.equal(root.resource['process.pid'], process.pid);

    const gateway = spans.filter(fromGateway);
    const names = new Set(gateway.map((span) => span.name));
    for (const stage of ['retrieve', 'cache lookup', 'embed', 'search shards', 'shard search', 'rerank', 'generate']) {
      assert.ok(names.has(stage), `a "${stage}" span (got ${[...names].join(', ')})`);
    }

    // Parent links: one root, every other span's parent is in the trace.
    const ids = new Map(spans.map((span) => [span.spanId, span]));
    assert.equal(ids.size, spans.length, 'span ids are unique');
    for (const span of spans) {
      if (span === root) continue;
      assert.ok(ids.has(span.parentSpanId), `${span.name} (${span.resource['service.name']}) has its parent in the trace`);
    }
    const parentName = (span: CollectedSpan): string | undefined => ids.get(span.parentSpanId)?.name;
    for (const name of ['retrieve', 'generate']) assert.equal(parentName(gateway.find((span) => span.name === name) as CollectedSpan), 'POST /v1/query');
    for (const name of ['embed', 'search shards', 'rerank']) assert.equal(parentName(gateway.find((span) => span.name === name) as CollectedSpan), 'retrieve');

    // Each shard call: a client span under the scatter, saying which shard, which replica, and whether it hedged.
    const calls = gateway.filter((span) => span.name === 'shard search');
    assert.ok(calls.length >= 2);
    for (const call of calls) {
      assert.equal(call.kind, CLIENT);
      assert.equal(parentName(call), 'search shards');
      const shard = call.attributes['ragway.shard'] as number;
      assert.equal(call.attributes['ragway.replica'], shards.urls[shard]);
      assert.ok(['no', 'yes', 'won'].includes(call.attributes['ragway.hedge'] as string));
      assert.equal(call.attributes['ragway.shard.result'], 'ok');
    }
    assert.deepEqual(new Set(calls.map((call) => call.attributes['ragway.shard'])), new Set([0, 1]));

    // Each shard process: server spans that are children of the call the gateway made to it.
    const onShards = spans.filter(fromShard);
    assert.deepEqual(new Set(onShards.map((span) => span.resource['process.pid'])), new Set(shardPids()));
    for (const span of onShards) {
      assert.equal(span.kind, SERVER);
      assert.equal(span.name, 'POST /v1/search');
      const call = ids.get(span.parentSpanId) as CollectedSpan;
      assert.equal(call.name, 'shard search');
      const shard = call.attributes['ragway.shard'] as number;
      assert.equal(span.resource['process.pid'], shards.processes[shard]?.pid, 'the span came from the process the call went to');
      assert.equal(span.attributes['server.port'], Number(new URL(shards.urls[shard] as string).port));
    }

    // The LLM upstream was handed the generate span's context.
    const generate = gateway.find((span) => span.name === 'generate') as CollectedSpan;
    assert.equal(upstream.requests.at(-1)?.headers['traceparent'], `00-${root.traceId}-${generate.spanId}-01`);

    // Every log line of the request carries its reqId and the trace id.
    const requestLines = logs.filter((line) => line['reqId'] !== undefined);
    assert.ok(requestLines.some((line) => line['msg'] === 'incoming request'));
    assert.ok(requestLines.some((line) => line['msg'] === 'request completed'));
    for (const line of requestLines) assert.equal(line['trace_id'], root.traceId, JSON.stringify(line));
  });

  it("continues a client's traceparent: same trace id in the gateway, the shards and upstream", async () => {
    const traceId = randomBytes(16).toString('hex');
    const parentId = randomBytes(8).toString('hex');
    const mark = collector.spans.length;
    await queryOnce({ tracing: 'otlp', otlpEndpoint: collector.url }, { traceparent: `00-${traceId}-${parentId}-01`, tracestate: 'vendor=opaque' });
    const root = collector.spans.slice(mark).find((span) => fromGateway(span) && span.name === 'POST /v1/query');
    assert.ok(root);
    assert.equal(root.traceId, traceId);
    assert.equal(root.parentSpanId, parentId);
    const spans = await traceOf(traceId);
    assert.ok(spans.some((span) => fromShard(span) && span.kind === SERVER));
    const sent = String(upstream.requests.at(-1)?.headers['traceparent']);
    assert.match(sent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    assert.equal(upstream.requests.at(-1)?.headers['tracestate'], 'vendor=opaque');
  });

  it('with tracing off nothing is exported and no traceparent reaches the shards or upstream', async () => {
    // The shards still trace every call that carries a traceparent: any that arrived would be exported.
    await sleep(300);
    const spans = collector.spans.length;
    const posts = collector.posts;
    // Even a client's own traceparent is not passed on: off means no tracing work at all.
    await queryOnce({ tracing: 'off', otlpEndpoint: collector.url }, { traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` });
    assert.equal(upstream.requests.at(-1)?.headers['traceparent'], undefined);
    await sleep(1_000);
    assert.equal(collector.spans.length, spans);
    assert.equal(collector.posts, posts);
  });

  it('a shard that is down: its call is an error span, and the partial answer is logged with the reqId and trace id', async () => {
    const dead = shards.processes[1];
    assert.ok(dead);
    dead.kill('SIGKILL');
    await sleep(200);
    const mark = collector.spans.length;
    const { logs } = await queryOnce({ tracing: 'otlp', otlpEndpoint: collector.url });
    const root = collector.spans.slice(mark).find((span) => fromGateway(span) && span.name === 'POST /v1/query');
    assert.ok(root);
    const calls = collector.spans.slice(mark).filter((span) => span.traceId === root.traceId && span.name === 'shard search');
    const failed = calls.filter((span) => span.attributes['ragway.shard'] === 1);
    assert.ok(failed.length > 0 && failed.every((span) => span.attributes['ragway.shard.result'] === 'error' && span.status === 2));
    assert.ok(calls.some((span) => span.attributes['ragway.shard'] === 0 && span.attributes['ragway.shard.result'] === 'ok'));
    const partial = logs.find((line) => String(line['msg']).startsWith('answered without 1 of 2 shards'));
    assert.ok(partial, 'the partial answer is logged');
    assert.equal(partial['trace_id'], root.traceId);
    assert.equal(typeof partial['reqId'], 'string');
    assert.equal(partial['level'], 40);
  });

  it('the pass-through chat proxy (retrieval off) sends the upstream its generate span', async () => {
    const app = await buildApp(loadConfig({}, { ...base, logLevel: 'silent', tracing: 'otlp', otlpEndpoint: collector.url }), {
      embeddingBackend: backend,
      defaultMetrics: false,
    });
    const mark = collector.spans.length;
    try {
      const url = await listenOnLoopback(app);
      const response = await request(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true, rag: { enabled: false } }),
      });
      assert.equal(response.statusCode, 200);
      assert.match(await response.body.text(), /data: \[DONE\]/);
    } finally {
      await app.close();
    }
    const spans = collector.spans.slice(mark);
    const root = spans.find((span) => span.name === 'POST /v1/chat/completions');
    const generate = spans.find((span) => span.name === 'generate');
    assert.ok(root && generate);
    assert.equal(generate.parentSpanId, root.spanId);
    assert.equal(generate.attributes['ragway.proxied'], true);
    assert.equal(upstream.requests.at(-1)?.headers['traceparent'], `00-${root.traceId}-${generate.spanId}-01`);
  });
});
