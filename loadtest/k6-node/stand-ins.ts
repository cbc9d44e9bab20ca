// Runs ragway's k6 scripts in Node. No k6 binary exists for this machine (npm's `k6` is a
// type stub, apt has none), so the scripts are loaded with stand-ins for k6's modules that
// behave like k6 where a script can tell: `check` calls every function and lets an
// exception escape (so an unguarded `r.json()` still fails here), `r.json()` throws on an
// empty body as k6 does, HTTP calls emit http_req_duration / http_req_failed with the
// `expected_response` tag and honour `responseCallback`, and every metric sample carries
// the `scenario` tag. The HTTP answer comes from a function the caller gives: a fixed 502
// in the script-check test, real synchronous HTTP in the runner.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface K6Request {
  method: string;
  url: string;
  body: string | undefined;
  headers: Record<string, string>;
}

export interface K6Reply {
  status: number;
  body: string | null;
  headers: Record<string, string>;
  timings: { waiting: number; duration: number };
}

export interface Sample {
  metric: string;
  value: number;
  tags: Record<string, string>;
}

export interface CheckResult {
  name: string;
  passed: boolean;
  scenario: string;
}

/** What the stand-ins see and record; they find it on globalThis under RECORDER_KEY. */
export interface K6Recorder {
  respond: (request: K6Request) => K6Reply;
  scenario: string;
  requests: K6Request[];
  checks: CheckResult[];
  samples: Sample[];
}

export const RECORDER_KEY = '__ragwayK6Recorder';

// The stand-in modules' source, written next to the rewritten scripts.
const STAND_INS: Record<string, string> = {
  k6: `
const rec = () => globalThis.${RECORDER_KEY};
export function check(value, sets, tags) {
  let all = true;
  for (const [name, fn] of Object.entries(sets)) {
    const passed = Boolean(typeof fn === 'function' ? fn(value) : fn);
    rec().checks.push({ name, passed, scenario: rec().scenario });
    rec().samples.push({ metric: 'checks', value: passed ? 1 : 0, tags: { ...(tags || {}), check: name, scenario: rec().scenario } });
    all = all && passed;
  }
  return all;
}
export function sleep() {}
export function group(_name, fn) { return fn(); }
export function fail(message) { throw new Error(message); }
export default { check, sleep, group, fail };`,
  'k6/http': `
const rec = () => globalThis.${RECORDER_KEY};
let defaultCallback = { expectedStatuses: [{ min: 200, max: 399 }] };
function expectedStatuses(...statuses) {
  return { expectedStatuses: statuses.map((s) => (typeof s === 'number' ? { min: s, max: s } : s)) };
}
function setResponseCallback(callback) { defaultCallback = callback; }
function request(method, url, body, params) {
  const p = params || {};
  const headers = {};
  for (const [k, v] of Object.entries(p.headers || {})) headers[k] = String(v);
  const req = { method, url, body: body === undefined || body === null ? undefined : String(body), headers };
  rec().requests.push(req);
  const reply = rec().respond(req);
  const callback = p.responseCallback === undefined ? defaultCallback : p.responseCallback;
  const expected = callback === null ? true : callback.expectedStatuses.some((r) => reply.status >= r.min && reply.status <= r.max);
  const tags = { ...(p.tags || {}), scenario: rec().scenario, expected_response: String(expected), status: String(reply.status) };
  rec().samples.push({ metric: 'http_req_duration', value: reply.timings.duration, tags });
  rec().samples.push({ metric: 'http_req_waiting', value: reply.timings.waiting, tags });
  rec().samples.push({ metric: 'http_req_failed', value: expected ? 0 : 1, tags });
  return {
    status: reply.status,
    body: reply.body,
    headers: reply.headers,
    timings: reply.timings,
    json(selector) {
      if (reply.body === null || reply.body === '') throw new Error("GoError: the body is null so we can't transform it to JSON - this likely was because of a request error getting the response");
      let value = JSON.parse(reply.body);
      if (selector) for (const part of String(selector).split('.')) value = value === undefined || value === null ? undefined : value[part];
      return value;
    },
  };
}
export default {
  request,
  post: (url, body, params) => request('POST', url, body, params),
  get: (url, params) => request('GET', url, undefined, params),
  del: (url, body, params) => request('DELETE', url, body, params),
  expectedStatuses,
  setResponseCallback,
};`,
  'k6/metrics': `
const rec = () => globalThis.${RECORDER_KEY};
class Metric {
  constructor(name) { this.name = name; }
  add(value, tags) { rec().samples.push({ metric: this.name, value: Number(value), tags: { ...(tags || {}), scenario: rec().scenario } }); }
}
export class Counter extends Metric {}
export class Trend extends Metric {}
export class Rate extends Metric {}
export class Gauge extends Metric {}`,
  'k6/data': 'export class SharedArray { constructor(_name, fn) { return fn(); } }',
  'k6/encoding': 'export default {};',
  'k6/crypto': 'export default {};',
  'k6/execution': 'export default {};',
};

export interface Scenario {
  executor: string;
  exec?: string;
}

export interface LoadedScript {
  module: Record<string, unknown>;
  options: { scenarios?: Record<string, Scenario>; thresholds?: Record<string, unknown> };
  /** Runs one iteration of a scenario's exec function as k6 would, with __ITER set. */
  iterate(scenario: string, iteration: number): void;
  close(): void;
}

export function createRecorder(respond: K6Recorder['respond']): K6Recorder {
  return { respond, scenario: 'default', requests: [], checks: [], samples: [] };
}

/**
 * Copies a script and lib.js into a fresh folder with k6 imports pointed at the stand-ins,
 * then imports it. A fresh folder per load: ES modules are cached by URL, and options are
 * built from __ENV at load time.
 */
export async function loadK6Script(k6Dir: string, name: string, recorder: K6Recorder, env: Record<string, string> = {}): Promise<LoadedScript> {
  const work = mkdtempSync(join(tmpdir(), 'ragway-k6-'));
  const local = (module: string): string => `./${module.replace('/', '-')}.mjs`;
  for (const [module, code] of Object.entries(STAND_INS)) writeFileSync(join(work, local(module)), code);
  const rewrite = (source: string): string =>
    source
      .replace(/from\s+['"](k6(?:\/[a-z]+)?)['"]/g, (_all, module: string) => `from '${local(module)}'`)
      .replace(/from\s+['"]\.\/lib\.js['"]/g, "from './lib.mjs'");
  writeFileSync(join(work, 'lib.mjs'), rewrite(readFileSync(join(k6Dir, 'lib.js'), 'utf8')));
  writeFileSync(join(work, `${name}.mjs`), rewrite(readFileSync(join(k6Dir, name), 'utf8')));
  const globals = globalThis as Record<string, unknown>;
  globals[RECORDER_KEY] = recorder;
  globals['__ENV'] = env;
  globals['__VU'] = 1;
  globals['__ITER'] = 0;
  const module = (await import(pathToFileURL(join(work, `${name}.mjs`)).href)) as Record<string, unknown>;
  const options = (module['options'] ?? {}) as LoadedScript['options'];
  return {
    module,
    options,
    iterate(scenario: string, iteration: number): void {
      const exec = options.scenarios?.[scenario]?.exec ?? 'default';
      const fn = module[exec];
      if (typeof fn !== 'function') throw new Error(`${name}: scenario ${scenario} runs "${exec}", which is not an exported function`);
      globals[RECORDER_KEY] = recorder;
      globals['__ITER'] = iteration;
      recorder.scenario = scenario;
      (fn as () => void)();
    },
    close: () => rmSync(work, { recursive: true, force: true }),
  };
}
