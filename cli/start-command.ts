// `ragway start`: the whole system on one machine — shard processes, the gateway, and on an
// empty data dir the sample corpus — stopped cleanly on Ctrl-C or SIGTERM. The gateway
// listens before the first-run ingest and says 503 (with its progress) on /readyz until it
// is over; "ragway ready on" is printed when /readyz would answer 200, not before.
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureGloveSifModel } from '../embedder/model/build-model.js';
import { loadClusterToken, loadConfig, resolveModelDir } from '../gateway/config.js';
import { generateToken } from '../core/secrets.js';
import { loadEmbeddingBackend } from '../gateway/embedding-backend.js';
import { evaluateReadiness, type Readiness } from '../gateway/readiness.js';
import { closeGracefully, onShutdownSignal, startGateway } from '../gateway/server.js';
import type { FastifyInstance } from 'fastify';
import { freePort } from './free-port.js';
import { integerFlag, parseFlags } from './args.js';
import { FirstRunIngest } from './first-run-ingest.js';
import { ServiceProcess } from './service-process.js';

const READY_CHECK_TIMEOUT_MS = 2_000;
const READY_POLL_MS = 200;
const CLUSTER_TOKEN_FILE = 'cluster-token';
const KEYS_FILE = 'keys.json';

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

export async function runStart(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    shards: { type: 'string' },
    replicas: { type: 'string' },
    data: { type: 'string' },
    corpus: { type: 'string' },
  });
  const config = loadConfig(
    undefined,
    {
      port: integerFlag('port', values.port, 0, 65_535),
      host: values.host,
      shardCount: integerFlag('shards', values.shards, 1, 64),
      replicas: integerFlag('replicas', values.replicas, 1, 16),
      dataDir: values.data,
    },
    // An interactive start shows progress and warnings, not a JSON line per request;
    // RAGWAY_LOG_LEVEL=info brings the request log back.
    { logLevel: 'warn' },
  );
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  const tokenFile = await ensureClusterToken(dataDir);
  const clusterToken = loadClusterToken({ clusterToken: '', clusterTokenFile: tokenFile });
  if (config.keysFile === '') config.keysFile = join(dataDir, KEYS_FILE);

  if (config.embedModel === '' && config.embedUrl === '') await ensureGloveSifModel({ outDir: resolveModelDir(config), log });
  const backend = await loadEmbeddingBackend(config);

  // Aborted the moment a stop begins: no shard is restarted after it, the ingest ends.
  const stopping = new AbortController();
  // Ports are chosen up front so each replica can be told where its peers are (it catches
  // up from them after missing writes) and a restarted replica keeps its URL.
  const ports = await Promise.all(Array.from({ length: config.shardCount * config.replicas }, () => freePort()));
  const urlOf = (shard: number, replica: number): string => `http://127.0.0.1:${ports[shard * config.replicas + replica]}`;
  const shards: ServiceProcess[][] = Array.from({ length: config.shardCount }, (_, shard) =>
    Array.from({ length: config.replicas }, (_, replica) => {
      const peers = Array.from({ length: config.replicas }, (_, other) => other)
        .filter((other) => other !== replica)
        .map((other) => urlOf(shard, other));
      const name = config.replicas === 1 ? `shard-${shard}` : `shard-${shard}-replica-${replica}`;
      return new ServiceProcess({
        label: name,
        host: '127.0.0.1',
        port: ports[shard * config.replicas + replica] as number,
        args: [
          '--data', join(dataDir, name),
          '--dim', String(backend.dimensions),
          '--space', 'cosine',
          '--m', String(config.shardM),
          '--ef-construction', String(config.shardEfConstruction),
          '--ef', String(config.shardEfSearch),
          '--shard-index', String(shard),
          ...(peers.length > 0 ? ['--peers', peers.join(','), '--anti-entropy-interval-ms', String(config.antiEntropyIntervalMs)] : []),
          '--cluster-token-file', tokenFile,
        ],
        // The shards inherit this environment, RAGWAY_TRACING and OTEL_* included, so one query
        // is one trace across the processes; a service name given for the gateway gets a
        // "-shard" sibling, so their spans stay apart.
        ...(config.serviceName !== '' ? { env: { OTEL_SERVICE_NAME: `${config.serviceName}-shard` } } : {}),
        log,
        stopping: stopping.signal,
      });
    }),
  );
  const processes = shards.flat();
  let app: FastifyInstance | undefined;
  let ingestRun: Promise<unknown> = Promise.resolve();
  let stopped: Promise<void> | undefined;
  // Idempotent: the signal handler and a failed start may both ask. The ingest ends first
  // (its in-flight batch is aborted, not failed by a closing gateway), then the gateway
  // drains, then the shards save and exit.
  const stopAll = (): Promise<void> => {
    stopping.abort();
    stopped ??= (async () => {
      await ingestRun.catch(() => undefined);
      if (app !== undefined) await closeGracefully(app, config.shutdownGraceMs);
      await Promise.all(processes.map((shard) => shard.stop()));
      await backend.close();
    })();
    return stopped;
  };
  onShutdownSignal(async (signal) => {
    // Before anything else: children that got the same signal must not be restarted.
    stopping.abort();
    log(`received ${signal}; stopping the gateway and ${processes.length} shard processes`);
    await stopAll();
  });

  try {
    await Promise.all(processes.map((shard) => shard.start()));
    const spec = shards.map((replicas) => replicas.map((replica) => replica.url).join(',')).join(';');
    log(`started ${processes.length} shard processes (${config.shardCount} shards × ${config.replicas} replicas): ${spec}`);
    const ingest = new FirstRunIngest({ dataDir, corpusPath: values.corpus, log });
    let release: (() => void) | undefined;
    const running = await startGateway(
      { ...config, shards: spec, clusterToken: clusterToken ?? '' },
      { embeddingBackend: backend },
      { beforeListen: (built) => void (release = built.lifecycle.holds.hold('first-run-ingest', () => ingest.progress())) },
    );
    app = running.app;
    log(`gateway listening on ${running.url}; /readyz answers 503 until the data dir is checked (and, when empty, ingested)`);
    const run = ingest.run(running.app, stopping.signal);
    ingestRun = run;
    if ((await run) === 'stopped') return;
    release?.();
    const readiness = await waitUntilReady(running.app, stopping.signal);
    if (readiness === undefined) return;
    const total = readiness.shards.reduce((sum, shard) => sum + (shard.count ?? 0), 0);
    process.stdout.write(
      `ragway ready on ${running.url}  (${total} chunks over ${config.shardCount} shards × ${config.replicas} replicas, model ${backend.modelId})\n` +
        `try: curl -s ${running.url}/v1/search -H 'content-type: application/json' ` +
        `-d '{"query":"how do I set a TTL on cache entries","k":5}'\n`,
    );
  } catch (err) {
    // A stop that interrupted the start is not a failure: the signal handler finishes it.
    if (stopping.signal.aborted) return;
    await stopAll();
    throw err;
  }
}

/**
 * The banner says "ready" only when /readyz would: the same evaluation, repeated until it
 * passes (a shard still catching up) or the stop began (undefined then).
 */
async function waitUntilReady(app: FastifyInstance, signal: AbortSignal): Promise<Readiness | undefined> {
  let reported = '';
  while (!signal.aborted) {
    const readiness = await evaluateReadiness(app, AbortSignal.any([signal, AbortSignal.timeout(READY_CHECK_TIMEOUT_MS)]));
    if (readiness.ready) return readiness;
    if (readiness.summary !== reported) log(`not ready yet: ${readiness.summary}`);
    reported = readiness.summary;
    await sleep(READY_POLL_MS, undefined, { signal }).catch(() => undefined);
  }
  return undefined;
}

/**
 * The cluster credential of this data dir: made once (0600, only this user can read it) and
 * reused, so restarted shards and the gateway keep agreeing on it.
 */
async function ensureClusterToken(dataDir: string): Promise<string> {
  const path = join(dataDir, CLUSTER_TOKEN_FILE);
  if (!existsSync(path)) {
    await writeFile(path, `${generateToken('rgwc_')}\n`, { mode: 0o600, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
  await chmod(path, 0o600);
  return path;
}
