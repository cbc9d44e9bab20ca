// The floor for HTTP serving on this machine: a bare Fastify app answering one small JSON
// body, in its own process. Prints "hello listening on <url>".
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.post('/hello', async () => ({ hello: 'world' }));
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
process.stdout.write(`hello listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}\n`);
const stop = (): void => {
  void app.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
