// The floors of one Node.js proxy hop, for the streaming-tax bench: a bare pass-through (an
// undici Pool out, the upstream's bytes written as they arrive) with none of ragway's
// validation, access control, admission, metrics or timeouts. Two front ends:
//   node     node:http in, no routing at all: what any one Node hop costs on this machine;
//   fastify  one Fastify route (its router, request objects and JSON body parser, no hooks,
//            no schema, no logger): what the framework ragway is built on costs by itself.
// Set beside ragway in the same burst, they split ragway's added time to first token into the
// hop, the framework and ragway's own per-request work. Not a product: it trusts its input
// and has no limits.
// Usage: node floor-proxy-process.js <upstream origin> <model> [node|fastify]; prints "listening on <url>".
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { Pool } from 'undici';

const [upstream, model, frontEnd = 'node'] = process.argv.slice(2);
if (upstream === undefined || model === undefined || (frontEnd !== 'node' && frontEnd !== 'fastify')) {
  throw new Error('usage: floor-proxy-process.js <upstream origin> <model> [node|fastify]');
}
const pool = new Pool(upstream, { connections: 64, headersTimeout: 0, bodyTimeout: 0 });

/**
 * Forwards `body` (rag removed, model named: it is edited in place, each request's own) and
 * writes the upstream's response to `res` as it comes.
 */
function forward(path: string, body: Record<string, unknown>, res: ServerResponse): void {
  delete body['rag'];
  body['model'] = model;
  pool.dispatch(
    { method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
    {
      onConnect(abort) {
        // A client that leaves mid-stream ends the upstream request too (else a paused read
        // would wait for a 'drain' that never comes and hold the upstream connection).
        res.once('close', () => {
          if (!res.writableFinished) abort();
        });
      },
      onError(err) {
        res.destroy(err);
      },
      onHeaders(statusCode, _headers, resume) {
        res.writeHead(statusCode, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        // onData returning false pauses the upstream read until the client drains.
        res.on('drain', resume);
        return true;
      },
      onData(chunk) {
        return res.write(chunk);
      },
      onComplete() {
        res.end();
      },
    },
  );
}

async function listen(): Promise<{ port: number; close: () => Promise<void> }> {
  if (frontEnd === 'fastify') {
    const app = Fastify({ logger: false });
    app.post('/v1/chat/completions', (request, reply) => {
      reply.hijack();
      forward(request.url, request.body as Record<string, unknown>, reply.raw);
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
  }
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => forward(req.url ?? '/', JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const { port, close } = await listen();
process.stdout.write(`floor proxy (${frontEnd}) listening on http://127.0.0.1:${port}\n`);
const stop = (): void => {
  // Stop accepting; the process ends once the upstream pool is closed (nothing waits on clients).
  void close();
  void pool.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
