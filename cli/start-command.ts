// `ragway start`: the whole system on one machine — shard processes, the gateway, and on an
// empty data dir the sample corpus — stopped cleanly on Ctrl-C or SIGTERM.
import { existsSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ensureGloveSifModel } from '../embedder/model/build-model.js';
import { loadClusterToken, loadConfig, resolveModelDir } from '../gateway/config.js';
import { generateToken } from '../core/secrets.js';
import { loadEmbeddingBackend } from '../gateway/embedding-backend.js';
import { packageRoot } from '../core/package-paths.js';
import { DEFAULT_NAMESPACE } from '../shards/protocol.js';
import { closeGracefully, onShutdownSignal, startGateway } from '../gateway/server.js';
import type { FastifyInstance } from 'fastify';
import { freePort } from './free-port.js';
import { integerFlag, parseFlags } from './args.js';
import { batchDocuments, openCorpus, openSampleCorpus, type CorpusSource } from './corpus.js';
import { ProgressBar } from './progress.js';
import { ServiceProcess } from './service-process.js';

const SAMPLE_MARKER = '.corpus-ingested';
const CLUSTER_TOKEN_FILE = 'cluster-token';
const KEYS_FILE = 'keys.json';
const INGEST_BATCH = { maxDocuments: 32, maxBytes: 2 * 1024 * 1024 };

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
          ...(peers.length > 0 ? ['--peers', peers.join(',')] : []),
          '--cluster-token-file', tokenFile,
        ],
        log,
      });
    }),
  );
  const processes = shards.flat();
  let app: FastifyInstance | undefined;
  const stopAll = async (): Promise<void> => {
    if (app !== undefined) await closeGracefully(app, config.shutdownGraceMs);
    await Promise.all(processes.map((shard) => shard.stop()));
    await backend.close();
  };
  onShutdownSignal(async (signal) => {
    log(`received ${signal}; stopping the gateway and ${processes.length} shard processes`);
    await stopAll();
  });

  try {
    await Promise.all(processes.map((shard) => shard.start()));
    const spec = shards.map((replicas) => replicas.map((replica) => replica.url).join(',')).join(';');
    log(`started ${processes.length} shard processes (${config.shardCount} shards × ${config.replicas} replicas): ${spec}`);
    const running = await startGateway({ ...config, shards: spec, clusterToken: clusterToken ?? '' }, { embeddingBackend: backend });
    app = running.app;
    await ingestCorpusIfEmpty(running.app, dataDir, values.corpus);
    const total = (await running.app.scatter.stats()).reduce((sum, stats) => sum + stats.count, 0);
    process.stdout.write(
      `ragway ready on ${running.url}  (${total} chunks over ${config.shardCount} shards × ${config.replicas} replicas, model ${backend.modelId})\n` +
        `try: curl -s ${running.url}/v1/search -H 'content-type: application/json' ` +
        `-d '{"query":"how do I set a TTL on cache entries","k":5}'\n`,
    );
  } catch (err) {
    await stopAll();
    throw err;
  }
}

async function ingestCorpusIfEmpty(app: FastifyInstance, dataDir: string, corpusPath: string | undefined): Promise<void> {
  const marker = join(dataDir, SAMPLE_MARKER);
  if (existsSync(marker)) return;
  const stats = await app.scatter.stats();
  if (stats.some((shard) => shard.count > 0)) return;

  const source: CorpusSource =
    corpusPath !== undefined ? await openCorpus(resolve(corpusPath)) : await openSampleCorpus(join(packageRoot(), 'node_modules'));
  log(`empty data dir: ingesting ${corpusPath ?? 'the sample corpus (READMEs of the installed packages)'}`);
  const progress = new ProgressBar(source.count, 'docs');
  let chunks = 0;
  for await (const batch of batchDocuments(source.documents(), INGEST_BATCH)) {
    const result = await app.documents.ingest(DEFAULT_NAMESPACE, batch);
    chunks += result.chunks_total;
    progress.advance(batch.length, `${chunks} chunks`);
  }
  progress.finish(`${chunks} chunks`);
  await writeFile(marker, `${new Date().toISOString()} ${chunks} chunks from ${corpusPath ?? 'sample corpus'}\n`);
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
