// Synchronous HTTP for the k6 stand-ins: k6's http.post blocks its VU until the response
// is in, so the scripts are written that way. The main thread posts the request to a
// worker and sleeps in Atomics.wait until the worker has the reply.
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { once } from 'node:events';
import type { K6Reply, K6Request } from './stand-ins.js';

export interface SyncHttp {
  request(request: K6Request): K6Reply;
  close(): Promise<void>;
}

export async function startSyncHttp(timeoutMs = 60_000): Promise<SyncHttp> {
  const { port1, port2 } = new MessageChannel();
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(new URL('./sync-http-worker.js', import.meta.url), { workerData: { port: port2, flag }, transferList: [port2] });
  await once(worker, 'message');
  return {
    request(request: K6Request): K6Reply {
      Atomics.store(flag, 0, 0);
      port1.postMessage(request);
      if (Atomics.wait(flag, 0, 0, timeoutMs) === 'timed-out') throw new Error(`no reply from ${request.url} within ${timeoutMs} ms`);
      const message = receiveMessageOnPort(port1);
      if (message === undefined) throw new Error('the HTTP worker woke without a reply');
      return message.message as K6Reply;
    },
    async close(): Promise<void> {
      port1.close();
      await worker.terminate();
    },
  };
}
