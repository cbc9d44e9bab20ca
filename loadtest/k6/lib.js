// Shared helpers for ragway's k6 scripts. Every setting comes from `-e NAME=value`.
import http from 'k6/http';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const API_KEY = __ENV.API_KEY || '';
export const DURATION = __ENV.DURATION || '30s';
export const VUS = parseInt(__ENV.VUS || '16', 10);
export const RATE = parseInt(__ENV.RATE || '0', 10);

export function headers(extra) {
  const result = { 'Content-Type': 'application/json' };
  if (API_KEY) result.Authorization = `Bearer ${API_KEY}`;
  return Object.assign(result, extra || {});
}

export function postJson(path, body, params) {
  const merged = Object.assign({ headers: headers() }, params || {});
  return http.post(`${BASE_URL}${path}`, JSON.stringify(body), merged);
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
