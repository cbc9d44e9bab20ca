// k6 cannot be installed here, so its scripts are checked the next best way: each parses
// as an ES module, imports only k6's documented modules, and — loaded with stand-ins for
// those modules — exports options whose scenarios use real k6 executors, name exported
// functions, and carry thresholds (so a breach makes `k6 run` exit non-zero). The README
// must give the command for every script.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { packageRoot } from '../../../core/package-paths.js';

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

// Minimal stand-ins: enough for module evaluation (options are built at load time).
const STUBS: Record<string, string> = {
  k6: 'export function check() { return true; } export function sleep() {} export function group(_n, f) { return f(); } export default {};',
  'k6/http': 'export default { post() { return {}; }, get() { return {}; } };',
  'k6/metrics': 'export class Counter { add() {} } export class Trend { add() {} } export class Rate { add() {} } export class Gauge { add() {} }',
  'k6/data': 'export class SharedArray { constructor(_n, f) { return f(); } }',
  'k6/encoding': 'export default {};',
  'k6/crypto': 'export default {};',
  'k6/execution': 'export default {};',
};

const scripts = readdirSync(K6_DIR).filter((name) => name.endsWith('.js') && name !== 'lib.js').sort();
const work = mkdtempSync(join(tmpdir(), 'ragway-k6-'));
after(() => rmSync(work, { recursive: true, force: true }));

function importsOf(source: string): string[] {
  return [...source.matchAll(/^\s*import\s[^'"]*['"]([^'"]+)['"]/gm)].map((match) => match[1] as string);
}

/** Copies a script (and lib.js) with k6 imports pointed at the stand-ins, then imports it. */
async function load(name: string): Promise<Record<string, unknown>> {
  for (const [module, code] of Object.entries(STUBS)) writeFileSync(join(work, `${module.replace('/', '-')}.mjs`), code);
  const rewrite = (source: string): string =>
    source.replace(/from\s+['"](k6(?:\/[a-z]+)?)['"]/g, (_all, module: string) => `from './${module.replace('/', '-')}.mjs'`).replace(/from\s+['"]\.\/lib\.js['"]/g, "from './lib.mjs'");
  writeFileSync(join(work, 'lib.mjs'), rewrite(readFileSync(join(K6_DIR, 'lib.js'), 'utf8')));
  writeFileSync(join(work, `${name}.mjs`), rewrite(readFileSync(join(K6_DIR, name), 'utf8')));
  const globals = globalThis as Record<string, unknown>;
  globals['__ENV'] = {};
  globals['__VU'] = 1;
  globals['__ITER'] = 0;
  return (await import(pathToFileURL(join(work, `${name}.mjs`)).href)) as Record<string, unknown>;
}

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
      const module = await load(name);
      const options = module['options'] as { scenarios?: Record<string, { executor: string; exec?: string }>; thresholds?: Record<string, unknown> };
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
  }

  it('reads its settings from -e variables', () => {
    const lib = readFileSync(join(K6_DIR, 'lib.js'), 'utf8');
    for (const variable of ['BASE_URL', 'API_KEY', 'DURATION', 'VUS', 'RATE']) assert.match(lib, new RegExp(`__ENV\\.${variable}`));
  });

  it('has its exact command in the loadtest README', () => {
    const readme = readFileSync(join(packageRoot(), 'loadtest', 'README.md'), 'utf8');
    for (const name of scripts) assert.match(readme, new RegExp(`k6 run [^\\n]*loadtest/k6/${name.replace('.', '\\.')}`), `README lacks a k6 run line for ${name}`);
  });
});
