// k6 cannot be installed here, so its scripts are checked the next best way: each parses
// as an ES module, imports only k6's documented modules, and — loaded with stand-ins for
// those modules (loadtest/k6-node/stand-ins.ts, which behave like k6 where a script can
// tell) — exports options whose scenarios use real k6 executors, name exported functions,
// and carry thresholds (so a breach makes `k6 run` exit non-zero). Each script's functions
// are then run against a server that answers well and against one that answers 502 with
// an empty body. The README must give the command for every script.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { packageRoot } from '../../../core/package-paths.js';
import { createRecorder, loadK6Script } from '../../../loadtest/k6-node/stand-ins.js';
import type { K6Recorder, K6Reply, K6Request, LoadedScript } from '../../../loadtest/k6-node/stand-ins.js';
import { evaluateThresholds } from '../../../loadtest/k6-node/thresholds.js';

const K6_DIR = join(packageRoot(), 'loadtest', 'k6');
const ALLOWED_IMPORTS = new Set(['k6', 'k6/http', 'k6/metrics', 'k6/data', 'k6/encoding', 'k6/crypto', 'k6/execution', './lib.js']);
const EXECUTORS = new Set([
  'shared-iterations',
  'per-vu-iterations',
  'constant-vus',
  'ramping-vus',
  'constant-arrival-rate',
  'ramping-arrival-rate',
  'externally-controlled',
]);

const scripts = readdirSync(K6_DIR).filter((name) => name.endsWith('.js') && name !== 'lib.js').sort();

function importsOf(source: string): string[] {
  return [...source.matchAll(/^\s*import\s[^'"]*['"]([^'"]+)['"]/gm)].map((match) => match[1] as string);
}

const timings = { waiting: 2, duration: 3 };
const badGateway = (): K6Reply => ({ status: 502, body: null, headers: {}, timings });

function sse(frames: { event?: string; data: unknown }[]): string {
  return frames.map((f) => `${f.event ? `event: ${f.event}\n` : ''}data: ${typeof f.data === 'string' ? f.data : JSON.stringify(f.data)}\n\n`).join('');
}

/** Replies shaped like ragway's, per endpoint: what a healthy server sends these scripts. */
function healthy(request: K6Request): K6Reply {
  const body = JSON.parse(request.body ?? '{}') as Record<string, unknown>;
  const path = new URL(request.url).pathname;
  const json = (value: unknown): K6Reply => ({ status: 200, body: JSON.stringify(value), headers: { 'content-type': 'application/json', 'x-ragway-cache': 'miss' }, timings });
  const stream = (text: string, cache: string): K6Reply => ({ status: 200, body: text, headers: { 'content-type': 'text/event-stream', 'x-ragway-cache': cache }, timings });
  const cache = (body['cache'] as { mode?: string } | undefined)?.mode === 'bypass' ? 'bypass' : 'hit';
  const answerTimings = { embed_ms: 0.4, search_ms: 1.2, retrieval_ms: 1.7, first_token_ms: 0.3, time_to_first_token_ms: cache === 'hit' ? 0.05 : 2.5, generation_ms: 1, total_ms: 3 };
  switch (path) {
    case '/v1/search':
      return json({ object: 'search.result', results: [{ id: 'a#0', score: 0.9 }], coverage: { shards_total: 2, shards_ok: 2, partial: false }, timings: {} });
    case '/v1/embeddings':
      return json({ object: 'list', data: (body['input'] as string[]).map((_t, index) => ({ object: 'embedding', index, embedding: [0.1, 0.2] })) });
    case '/v1/documents':
      return json({ object: 'ingest.result', chunks_total: (body['documents'] as unknown[]).length });
    case '/v1/query':
      return stream(sse([{ event: 'sources', data: { sources: [] } }, { event: 'delta', data: { text: 'TTL [1]' } }, { event: 'done', data: { finish_reason: 'stop', timings: answerTimings } }]), cache);
    case '/v1/chat/completions': {
      const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): { data: unknown } => ({ data: { id: 'c', object: 'chat.completion.chunk', choices, usage: null, ...extra } });
      return stream(
        sse([
          chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]),
          chunk([{ index: 0, delta: { content: 'TTL [1]' }, finish_reason: null }]),
          chunk([{ index: 0, delta: {}, finish_reason: 'stop' }], { rag: { timings: answerTimings } }),
          { data: { id: 'c', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } } },
          { data: '[DONE]' },
        ]),
        cache,
      );
    }
    default:
      return { status: 404, body: '{"error":{}}', headers: {}, timings };
  }
}

/** Loads a script and runs each of its scenarios' functions `iterations` times against `respond`. */
async function run(name: string, respond: K6Recorder['respond'], iterations = 3): Promise<{ recorder: K6Recorder; script: LoadedScript }> {
  const recorder = createRecorder(respond);
  const script = await loadK6Script(K6_DIR, name, recorder);
  try {
    const scenarios = Object.keys(script.options.scenarios ?? {});
    for (let i = 0; i < iterations; i += 1) for (const scenario of scenarios) script.iterate(scenario, i);
  } finally {
    script.close();
  }
  return { recorder, script };
}

const checkNames = (recorder: K6Recorder): string[] => [...new Set(recorder.checks.map((c) => `${c.scenario}: ${c.name}`))].sort();

describe('k6 scripts', () => {
  it('exist for every scenario the README promises', () => {
    assert.deepEqual(scripts, ['embeddings.js', 'ingest-while-query.js', 'rag-stream.js', 'saturation.js', 'search.js']);
  });

  for (const name of ['lib.js', ...scripts]) {
    it(`${name} parses as an ES module and imports only k6 modules`, () => {
      const path = join(K6_DIR, name);
      const result = spawnSync(process.execPath, ['--check', path], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      for (const specifier of importsOf(readFileSync(path, 'utf8'))) {
        assert.ok(ALLOWED_IMPORTS.has(specifier), `${name} imports ${specifier}, which k6 does not provide`);
      }
    });
  }

  for (const name of scripts) {
    it(`${name} exports options with valid scenarios and thresholds`, async () => {
      const script = await loadK6Script(K6_DIR, name, createRecorder(badGateway));
      script.close();
      const { options, module } = script;
      assert.ok(options && typeof options === 'object', 'exports options');
      const scenarios = Object.entries(options.scenarios ?? {});
      assert.ok(scenarios.length > 0, 'declares scenarios');
      for (const [scenario, settings] of scenarios) {
        assert.ok(EXECUTORS.has(settings.executor), `${scenario}: unknown executor ${settings.executor}`);
        const exec = settings.exec ?? 'default';
        assert.equal(typeof module[exec], 'function', `${scenario}: exec "${exec}" is not an exported function`);
      }
      const thresholds = Object.keys(options.thresholds ?? {});
      assert.ok(thresholds.includes('http_req_failed'), 'fails the run on HTTP errors');
      assert.ok(thresholds.length >= 2, 'has latency or check thresholds too');
    });

    it(`${name}: against a healthy server every check passes and every threshold holds`, async () => {
      const { recorder, script } = await run(name, healthy);
      assert.ok(recorder.checks.length > 0, 'records checks');
      assert.deepEqual(recorder.checks.filter((c) => !c.passed), [], 'no check fails');
      for (const result of evaluateThresholds(script.options.thresholds ?? {}, recorder.samples)) {
        assert.ok(result.passed, `${result.metric} ${result.expression} fails with value ${result.value}`);
      }
    });

    it(`${name}: a 502 with an empty body throws nothing, fails every check, and fails the run`, async () => {
      const good = await run(name, healthy);
      const { recorder, script } = await run(name, badGateway); // rejects if a check or the script throws
      assert.deepEqual(checkNames(recorder), checkNames(good.recorder), 'every check is recorded, not only those before a throw');
      assert.deepEqual(recorder.checks.filter((c) => c.passed), [], 'no check passes on a 502');
      assert.equal(recorder.samples.filter((s) => s.metric === 'ragway_ok_requests').length, 0, 'no request counted as successful');
      const results = evaluateThresholds(script.options.thresholds ?? {}, recorder.samples);
      // Latency over fast failures (or over nothing) is low, so a latency threshold alone
      // would pass; each scenario's count>0 on successful requests is what fails it.
      for (const scenario of Object.keys(script.options.scenarios ?? {})) {
        const ok = results.find((r) => r.metric === `ragway_ok_requests{scenario:${scenario}}`);
        assert.ok(ok, `${scenario} requires at least one successful request`);
        assert.equal(ok.passed, false, `${scenario}: count>0 fails when nothing succeeded`);
      }
    });
  }

  it('rag-stream.js runs a cold (cache-bypassing) variant beside each cached scenario, and names which numbers are cached', async () => {
    const { recorder, script } = await run('rag-stream.js', healthy, 2);
    const scenarios = Object.keys(script.options.scenarios ?? {});
    assert.deepEqual(scenarios.sort(), ['chat_cached', 'chat_cold', 'query_cached', 'query_cold']);
    for (const request of recorder.requests) {
      const body = JSON.parse(request.body ?? '{}') as { cache?: { mode: string }; query?: string; messages?: unknown[] };
      assert.ok(body.query !== undefined || body.messages !== undefined);
    }
    const sent = (scenario: string): { cache?: { mode: string } }[] =>
      recorder.requests.filter((_r, i) => i % scenarios.length === scenarios.indexOf(scenario)).map((r) => JSON.parse(r.body ?? '{}'));
    for (const cold of ['query_cold', 'chat_cold']) assert.ok(sent(cold).every((b) => b.cache?.mode === 'bypass'), `${cold} bypasses the cache`);
    for (const cached of ['query_cached', 'chat_cached']) assert.ok(sent(cached).every((b) => b.cache === undefined), `${cached} uses the cache`);
    // The server's from-arrival time to first token, tagged with scenario and cache status.
    const ttft = recorder.samples.filter((s) => s.metric === 'ragway_time_to_first_token_ms');
    assert.equal(ttft.length, recorder.requests.length);
    assert.ok(ttft.filter((s) => s.tags['scenario']?.endsWith('_cold')).every((s) => s.tags['cache'] === 'bypass' && s.value === 2.5));
    assert.ok(ttft.filter((s) => s.tags['scenario']?.endsWith('_cached')).every((s) => s.tags['cache'] === 'hit' && s.value === 0.05));
    const thresholds = Object.keys(script.options.thresholds ?? {});
    for (const scenario of scenarios) assert.ok(thresholds.includes(`ragway_time_to_first_token_ms{scenario:${scenario}}`), `summary shows ${scenario}'s time to first token`);
  });

  it('rag-stream.js reads the server time to first token that ragway reports, not the generator-relative one', async () => {
    const noArrivalTiming = (request: K6Request): K6Reply => {
      const reply = healthy(request);
      return { ...reply, body: String(reply.body).replaceAll('"time_to_first_token_ms"', '"other_ms"') };
    };
    const { recorder } = await run('rag-stream.js', noArrivalTiming, 1);
    assert.ok(recorder.checks.some((c) => c.name === 'reports time to first token' && !c.passed));
    assert.equal(recorder.samples.filter((s) => s.metric === 'ragway_time_to_first_token_ms').length, 0);
  });

  it('ingest-while-query.js treats a 404 before the first write as expected, not as a failed request', async () => {
    const notYet = (request: K6Request): K6Reply =>
      request.url.endsWith('/v1/search') ? { status: 404, body: '{"error":{"code":"RAGWAY_ERR_NAMESPACE_NOT_FOUND"}}', headers: {}, timings } : healthy(request);
    const { recorder, script } = await run('ingest-while-query.js', notYet);
    const reads = recorder.samples.filter((s) => s.metric === 'http_req_failed' && s.tags['scenario'] === 'readers');
    assert.ok(reads.length > 0);
    assert.ok(reads.every((s) => s.value === 0 && s.tags['expected_response'] === 'true'), 'a 404 is not in http_req_failed');
    assert.deepEqual(recorder.checks.filter((c) => !c.passed), []);
    const results = evaluateThresholds(script.options.thresholds ?? {}, recorder.samples);
    assert.ok(results.find((r) => r.metric === 'http_req_failed')?.passed, 'http_req_failed rate<0.01 holds');
    // …but 404s alone are not a successful read: a run where no write ever lands fails.
    assert.equal(results.find((r) => r.metric === 'ragway_ok_requests{scenario:readers}')?.passed, false);
    // Other statuses stay failures.
    const broken = await run('ingest-while-query.js', (request) => (request.url.endsWith('/v1/search') ? { status: 500, body: '', headers: {}, timings } : healthy(request)));
    assert.ok(broken.recorder.samples.filter((s) => s.metric === 'http_req_failed' && s.tags['scenario'] === 'readers').every((s) => s.value === 1));
  });

  it('reads its settings from -e variables', () => {
    const lib = readFileSync(join(K6_DIR, 'lib.js'), 'utf8');
    for (const variable of ['BASE_URL', 'API_KEY', 'DURATION', 'VUS', 'RATE']) assert.match(lib, new RegExp(`__ENV\\.${variable}`));
  });

  it('has its exact command in the loadtest README', () => {
    const readme = readFileSync(join(packageRoot(), 'loadtest', 'README.md'), 'utf8');
    for (const name of scripts) assert.match(readme, new RegExp(`k6 run [^\\n]*loadtest/k6/${name.replace('.', '\\.')}`), `README lacks a k6 run line for ${name}`);
  });
});
