// A built app listening on a free loopback port, for tests that talk real HTTP to it.
import type { FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';

/** Listens on 127.0.0.1, port 0, and returns the base URL. */
export async function listenOnLoopback(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}
