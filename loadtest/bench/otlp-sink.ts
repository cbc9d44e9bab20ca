// An OTLP/HTTP receiver that accepts and drops every export, in its own process so its work is
// not counted against the gateway being measured. Prints "otlp sink listening on <url>".
import { createServer } from 'node:http';

const server = createServer((request, response) => {
  request.resume();
  request.on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`otlp sink listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}\n`);
});
const stop = (): void => {
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
