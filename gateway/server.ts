// Listening and process signals for a gateway built by buildApp. The CLI calls these; tests
// use buildApp directly.
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDependencies } from './app.js';
import type { Config } from './config.js';

export interface RunningGateway {
  app: FastifyInstance;
  url: string;
}

export async function startGateway(config: Config, dependencies: AppDependencies = {}): Promise<RunningGateway> {
  const app = await buildApp(config, dependencies);
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await app.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  return { app, url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}` };
}

/**
 * Graceful stop: stop admitting requests (503 + Connection: close), let in-flight requests
 * and streams finish for up to `graceMs`, then close the app (pools, batcher, caches) and
 * any connection still open.
 */
export async function closeGracefully(app: FastifyInstance, graceMs: number): Promise<void> {
  const { drained, remaining } = await app.lifecycle.drain(graceMs);
  if (!drained) app.log.warn({ remaining }, `grace period of ${graceMs} ms over; closing ${remaining} requests still in flight`);
  app.server.closeAllConnections();
  await app.close();
}

/**
 * Runs `shutdown` once on the first SIGINT or SIGTERM; a second signal exits at once, for
 * an operator who does not want to wait for a graceful stop.
 */
export function onShutdownSignal(shutdown: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`received ${signal} again; exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    shutdown(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`shutdown failed: ${err instanceof Error ? err.stack : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  // Started by a supervisor with an IPC channel: stop when the supervisor dies, however it dies.
  if (process.send !== undefined) process.once('disconnect', () => handler('SIGTERM'));
}
