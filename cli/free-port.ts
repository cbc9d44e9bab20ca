// A TCP port that is free right now on 127.0.0.1 (the OS picks it). Another process could
// take it before it is used; `ragway start` binds it within milliseconds, which is fine on
// a developer machine.
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
