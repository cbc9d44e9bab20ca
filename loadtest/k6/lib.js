// Shared helpers for ragway's k6 scripts. Every setting comes from `-e NAME=value`.
import { check } from 'k6';
import http from 'k6/http';
import { Counter } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const API_KEY = __ENV.API_KEY || '';
export const DURATION = __ENV.DURATION || '30s';
export const VUS = parseInt(__ENV.VUS || '16', 10);
export const RATE = parseInt(__ENV.RATE || '0', 10);

// Requests that did what they were sent for. A latency percentile over nothing is 0 and
// passes, and one over fast failures passes too, so every script also requires
// `ragway_ok_requests{scenario:…}` `count>0`: a run in which no request succeeded fails.
const okRequests = new Counter('ragway_ok_requests');

export function headers(extra) {
  const result = { 'Content-Type': 'application/json' };
  if (API_KEY) result.Authorization = `Bearer ${API_KEY}`;
  return Object.assign(result, extra || {});
}

export function postJson(path, body, params) {
  const merged = Object.assign({ headers: headers() }, params || {});
  return http.post(`${BASE_URL}${path}`, JSON.stringify(body), merged);
}

/** JSON text parsed, or undefined when it is not JSON. */
export function parseJson(text) {
  if (typeof text !== 'string' || text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (_) {
    return undefined;
  }
}

/**
 * The response body as JSON, or undefined. k6's `r.json()` throws on an empty or non-JSON
 * body (a 502 from a proxy, a closed port), which ends the iteration with the remaining
 * checks unrecorded and prints a stack trace per request.
 */
export function jsonBody(response) {
  return parseJson(response ? response.body : undefined);
}

/**
 * Runs every check, each guarded so that one that throws counts as failed instead of
 * hiding the checks after it, and counts the request in `ragway_ok_requests` when all
 * passed (or, with `succeeded`, when that says so). Returns whether all checks passed.
 */
export function verify(response, checks, succeeded) {
  const guarded = {};
  for (const name of Object.keys(checks)) {
    const fn = checks[name];
    guarded[name] = (r) => {
      try {
        return Boolean(fn(r));
      } catch (_) {
        return false;
      }
    };
  }
  const passed = check(response, guarded);
  if (succeeded === undefined ? passed : passed && succeeded) okRequests.add(1);
  return passed;
}

/** The thresholds that fail a run in which a scenario had no successful request. */
export function requireSuccess(scenarios) {
  const thresholds = {};
  for (const name of scenarios) thresholds[`ragway_ok_requests{scenario:${name}}`] = ['count>0'];
  return thresholds;
}

/** A response header by name, whatever its case (k6 canonicalises, proxies may not). */
export function header(response, name) {
  const all = (response && response.headers) || {};
  const wanted = name.toLowerCase();
  for (const key of Object.keys(all)) if (key.toLowerCase() === wanted) return all[key];
  return undefined;
}

/** Splits a text/event-stream body into {event, data} frames (k6 buffers the whole body). */
export function parseSse(body) {
  const frames = [];
  for (const block of String(body || '').split('\n\n')) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length > 0) frames.push({ event, data: data.join('\n') });
  }
  return frames;
}

/** A closed-loop scenario (VUS for DURATION), or a constant arrival rate when RATE is set. */
export function scenario(exec, extra) {
  const base = RATE > 0
    ? { executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: DURATION, preAllocatedVUs: Math.max(VUS, 8), maxVUs: Math.max(VUS * 4, 32) }
    : { executor: 'constant-vus', vus: VUS, duration: DURATION };
  return Object.assign(base, { exec }, extra || {});
}

export const QUESTIONS = [
  'how do I set a TTL on cache entries',
  'limit the size of a cache in bytes',
  'validate a JSON schema with ajv',
  'parse command line arguments',
  'how to stream a response body',
  'connection pooling and keep-alive',
  'register a plugin with encapsulation',
  'run an ONNX model with onnxruntime',
  'approximate nearest neighbor search index',
  'log requests as JSON',
  'retry a failed HTTP request',
  'abort a request with an AbortSignal',
];
