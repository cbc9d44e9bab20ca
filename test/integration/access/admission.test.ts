// Admission control over real HTTP: with the generation gate at its limit (one stream held
// open by a scripted upstream, no queue), the next chat request gets 503 + Retry-After in the
// catalog's envelope — answered ahead of Fastify for the exact path, and by the access
// plugin's check for a spelling the early lookup does not know — on a connection that stays
// usable; other route classes are served meanwhile; the refusals are counted in /metrics and
// are not logged as errors; once the stream ends the gate admits again.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Client } from 'undici';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import { listenOnLoopback } from '../../helpers/listen.js';
import { startLlmStack, type LlmStack } from '../../helpers/llm-stack.js';

const chat = (stream: boolean): string => JSON.stringify({ model: 'scripted', messages: [{ role: 'user', content: 'hi' }], stream, rag: { enabled: false } });

describe('admission control over HTTP', () => {
  let stack: LlmStack;
  let app: FastifyInstance;
  let base: string;
  const logLines: Record<string, unknown>[] = [];

  before(async () => {
    // One token, then the upstream holds the stream open: the slot stays taken until the client leaves.
    stack = await startLlmStack('admission', { script: { tokens: ['a', 'b'], delayMs: 1, firstTokenDelayMs: 0, stallAfter: 1 } });
    const logs = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logLines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const config = loadConfig(
      {},
      {
        shards: stack.shards.spec,
        llmUrl: `${stack.upstream.url}/v1`,
        llmModel: 'scripted',
        admitGenerationConcurrency: 1,
        admitQueueLength: 0,
        corsOrigins: 'https://app.example',
        logLevel: 'debug',
      },
    );
    app = await buildApp(config, { embeddingBackend: stack.backend, defaultMetrics: false, logger: { level: 'debug', stream: logs } });
    base = await listenOnLoopback(app);
  });

  after(async () => {
    await app?.close();
    await stack?.close();
  });

  it('refuses past the limit with 503, keeps the connection, counts the refusals and admits again when the slot frees', async () => {
    const holder = new Client(base);
    const held = await holder.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: chat(true) });
    assert.equal(held.statusCode, 200);
    // The first token arrived: the stream is running and holds the generation slot.
    const first = await held.body[Symbol.asyncIterator]().next();
    assert.equal(first.done, false);

    const client = new Client(base, { pipelining: 1 });
    let connections = 0;
    client.on('connect', () => {
      connections += 1;
    });
    const refusedAt = async (path: string): Promise<void> => {
      const response = await client.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: chat(false) });
      assert.equal(response.statusCode, 503, path);
      assert.equal(response.headers['retry-after'], '1');
      assert.match(String(response.headers['content-type']), /^application\/json/);
      const body = (await response.body.json()) as { error: { code: string; type: string; message: string; param: unknown } };
      assert.equal(body.error.code, 'RAGWAY_ERR_SATURATED');
      assert.equal(body.error.type, 'server_error');
      assert.equal(body.error.param, null);
      assert.match(body.error.message, /at its limit of 1 generation requests at once/);
      // Load shedding is no failure: nothing in the log to look up.
      assert.doesNotMatch(body.error.message, /server log/);
    };
    await refusedAt('/v1/chat/completions'); // ahead of Fastify
    await refusedAt('/v1/chat/completions?trace=1'); // ahead of Fastify, query string aside
    await refusedAt('/v1/chat/%63ompletions'); // the router decodes it; the access plugin refuses
    // A browser's request goes on to Fastify, where the origin policy applies: an allowed page
    // gets its 503 with the CORS headers it needs to read it…
    const fromPage = await client.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', origin: 'https://app.example' }, body: chat(false) });
    assert.equal(fromPage.statusCode, 503);
    assert.equal(fromPage.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(((await fromPage.body.json()) as { error: { code: string } }).error.code, 'RAGWAY_ERR_SATURATED');
    // …and a page of another origin its 403, not a 503.
    const fromElsewhere = await client.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', origin: 'https://evil.example' }, body: chat(false) });
    assert.equal(fromElsewhere.statusCode, 403);
    assert.equal(((await fromElsewhere.body.json()) as { error: { code: string } }).error.code, 'RAGWAY_ERR_ORIGIN_NOT_ALLOWED');
    // The same connection serves what has room: a search (another route class) and health.
    const search = await client.request({ method: 'POST', path: '/v1/search', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: 'anything', k: 1 }) });
    assert.ok(search.statusCode === 200 || search.statusCode === 404, `search answered ${search.statusCode}`);
    await search.body.dump();
    const health = await client.request({ method: 'GET', path: '/healthz' });
    assert.equal(health.statusCode, 200);
    await health.body.dump();
    assert.equal(connections, 1, 'every request went over one kept-alive connection');

    const metrics = await client.request({ method: 'GET', path: '/metrics' });
    const text = await metrics.body.text();
    assert.match(text, /ragway_admission_rejected_total\{class="generation"\} 4\b/);
    assert.match(text, /ragway_admission_limit\{class="generation"\} 1\b/);
    assert.match(text, /ragway_admission_active\{class="generation"\} 1\b/);
    assert.match(text, /ragway_admission_rejected_total\{class="search"\} 0\b/);
    // Refused ahead of Fastify, two never reached the HTTP metrics; the two Fastify routed did.
    assert.match(text, /ragway_http_request_duration_seconds_count\{method="POST",route="\/v1\/chat\/completions",status_code="503"\} 2\b/);
    const errorLines = logLines.filter((line) => (line['level'] as number) >= 50);
    assert.deepEqual(errorLines, [], 'refusals are not logged as errors');

    // The holder leaves: its slot frees and the next request is admitted.
    held.body.destroy();
    await holder.close();
    let admitted = 0;
    for (let attempt = 0; attempt < 50 && admitted === 0; attempt += 1) {
      const response = await client.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: chat(false) });
      await response.body.dump();
      if (response.statusCode === 200) admitted += 1;
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(admitted, 1, 'admitted once the held stream closed');
    await client.close();
  });
});
