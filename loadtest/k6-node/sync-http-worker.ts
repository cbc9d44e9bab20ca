// The other half of sync-http.ts: performs each request with fetch and wakes the waiting
// main thread. Runs in a worker because the main thread is blocked in Atomics.wait.
import { parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import type { K6Reply, K6Request } from './stand-ins.js';

const { port, flag } = workerData as { port: MessagePort; flag: Int32Array };

port.on('message', async (request: K6Request) => {
  const started = performance.now();
  let reply: K6Reply;
  try {
    const response = await fetch(request.url, { method: request.method, headers: request.headers, ...(request.body === undefined ? {} : { body: request.body }) });
    const waiting = performance.now() - started;
    const body = await response.text();
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      headers[name] = value;
    });
    reply = { status: response.status, body, headers, timings: { waiting, duration: performance.now() - started } };
  } catch {
    // What k6 reports for a connection error: status 0, no body.
    reply = { status: 0, body: null, headers: {}, timings: { waiting: 0, duration: performance.now() - started } };
  }
  port.postMessage(reply);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
});
parentPort?.postMessage('ready');
