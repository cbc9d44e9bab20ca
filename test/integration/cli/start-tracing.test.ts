// `ragway start` with tracing on: the supervisor hands RAGWAY_TRACING and the OTEL_* settings to
// the shard processes it spawns, so one search is one trace from the gateway through both
// shards, exported to a real OTLP/HTTP receiver started here; a service name given for the
// gateway names the shards "<name>-shard".
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { tempDir } from '../../helpers/cluster.js';
import { startOtlpCollector, type OtlpCollector } from '../../helpers/otlp-collector.js';
import { spawnRagway, stop, type Spawned } from '../../helpers/ragway-process.js';

const CORPUS = fileURLToPath(new URL('../../../../test/fixtures/corpus', import.meta.url));

describe('ragway start with tracing on', () => {
  let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
  let collector: OtlpCollector | undefined;
  let spawned: Spawned | undefined;

  after(async () => {
    if (spawned !== undefined) await stop(spawned.child);
    await collector?.close();
    await dir?.remove();
  });

  it('one search is one trace through the gateway and both shard processes', async () => {
    dir = await tempDir('start-tracing');
    collector = await startOtlpCollector();
    spawned = spawnRagway(['--port', '0', '--shards', '2', '--data', dir.path, '--corpus', CORPUS], {
      RAGWAY_TRACING: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_SERVICE_NAME: 'rag-test',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
    const started = Date.now();
    let url: string | undefined;
    while (url === undefined) {
      url = /ragway ready on (http:\/\/\S+)/.exec(spawned.stdout())?.[1];
      if (spawned.child.exitCode !== null) assert.fail(`ragway start exited:\n${spawned.stderr()}`);
      if (Date.now() - started > 120_000) assert.fail(`not ready within 120 s:\n${spawned.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const response = await request(`${url}/v1/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: 'volcano eruption', k: 3 }) });
    assert.equal(response.statusCode, 200, await response.body.text());

    const spans = collector.spans;
    await collector.waitFor(() => {
      const root = spans.find((span) => span.name === 'POST /v1/search' && span.resource['service.name'] === 'rag-test');
      if (root === undefined) return false;
      const shardPids = new Set(
        spans.filter((span) => span.traceId === root.traceId && span.resource['service.name'] === 'rag-test-shard').map((span) => span.resource['process.pid']),
      );
      return shardPids.size === 2;
    }, 20_000);
    const root = spans.find((span) => span.name === 'POST /v1/search' && span.resource['service.name'] === 'rag-test');
    assert.ok(root);
    const trace = spans.filter((span) => span.traceId === root.traceId);
    const ids = new Set(trace.map((span) => span.spanId));
    for (const span of trace) if (span !== root) assert.ok(ids.has(span.parentSpanId), `${span.name} has its parent in the trace`);
    assert.ok(trace.filter((span) => span.resource['service.name'] === 'rag-test-shard').every((span) => span.resource['ragway.component'] === 'shard'));
  });
});
