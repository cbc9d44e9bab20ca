// Listening and process signals for a gateway built by buildApp. The CLI calls these; tests
// use buildApp directly.
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDependencies } from './app.js';
import { ConfigError, type Config } from './config.js';
import { isLoopbackHost } from '../core/http-guards.js';

export { onShutdownSignal } from '../core/shutdown-signal.js';

export interface RunningGateway {
  app: FastifyInstance;
  url: string;
}

export interface StartOptions {
  /**
   * Runs after the app is built and before it listens: the place to hold readiness for a
   * start-up task, so not even the first /readyz can answer 200 before the task began.
   */
  beforeListen?: (app: FastifyInstance) => void;
}

export async function startGateway(config: Config, dependencies: AppDependencies = {}, options: StartOptions = {}): Promise<RunningGateway> {
  const app = await buildApp(config, dependencies);
  try {
    checkExposure(app, config);
    options.beforeListen?.(app);
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
 * The safe default: without API keys the gateway serves only this machine, and says so;
 * listening beyond loopback without keys needs RAGWAY_AUTH=off, said out loud.
 */
function checkExposure(app: FastifyInstance, config: Config): void {
  const where = `${config.host}:${config.port}`;
  if (app.access.mode === 'open') {
    if (!isLoopbackHost(config.host)) {
      throw new ConfigError(
        `refusing to listen on ${where} without API keys: anyone who can reach it could read and delete every namespace. ` +
          'Create a key (`ragway keys create --name NAME --scopes read,write --namespaces "*"`, with RAGWAY_KEYS_FILE), ' +
          'or set RAGWAY_AUTH=off to serve without authentication on purpose.',
      );
    }
    const line = `WARNING: no API keys configured; serving WITHOUT authentication on loopback (${where}) only. Create keys with \`ragway keys create\`.`;
    app.log.warn(line);
    process.stderr.write(`ragway: ${line}\n`);
  } else if (app.access.mode === 'off') {
    const line = `WARNING: authentication is switched OFF (RAGWAY_AUTH=off): anyone who can reach ${where} can read, write and delete every namespace.`;
    app.log.warn(line);
    process.stderr.write(`ragway: ${line}\n`);
  }
}
