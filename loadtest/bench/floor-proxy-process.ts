// The floor of one Node.js proxy hop, for the streaming-tax bench: a bare pass-through
// (node:http in, an undici Pool out, the upstream's bytes written as they arrive) with none of
// ragway's routing, validation, access control, metrics or timeouts. Set beside ragway in the
// same burst, it splits ragway's added time to first token into what any Node hop costs on
// this machine and what is ragway's own. Not a product: it trusts its input and has no limits.
// Usage: node floor-proxy-process.js <upstream origin> <model>; prints "listening on <url>".
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const [upstream, model] = process.argv.slice(2);
if (upstream === undefined || model === undefined) throw new Error('usage: floor-proxy-process.js <upstream origin> <model>');
const pool = new Pool(upstream, { connections: 64, headersTimeout: 0, bodyTimeout: 0 });

const server = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (part: Buffer) => parts.push(part));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>;
    delete body['rag'];
    body['model'] = model;
    pool.dispatch(
      { method: 'POST', path: req.url ?? '/', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
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
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`floor proxy listening on http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
const stop = (): void => {
  server.close();
  void pool.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
