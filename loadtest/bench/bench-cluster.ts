// What several benchmarks need: N shard processes and a gateway process in front of them,
// the sample corpus ingested, and a keep-alive HTTP client. Each part is a real process, as
// in production; the load generator runs in the benchmark's own process.
import { join } from 'node:path';
import { Pool } from 'undici';
import { batchDocuments, openSampleCorpus } from '../../cli/corpus.js';
import { freePort } from '../../cli/free-port.js';
import { ServiceProcess } from '../../cli/service-process.js';
import { splitUnits } from '../../gateway/chunker.js';
import { packageRoot } from '../../core/package-paths.js';

/** Questions a user of the sample corpus might ask. */
export const QUESTIONS = [
  'how do I set a TTL on cache entries',
  'limit the size of a cache in bytes',
  'validate a JSON schema with ajv',
  'parse command line arguments',
  'how to stream a response body',
  'connection pooling and keep-alive',
  'register a plugin with encapsulation',
  'tokenizer for a transformer model',
  'run an ONNX model with onnxruntime',
  'approximate nearest neighbor search index',
  'log requests as JSON',
  'retry a failed HTTP request',
  'abort a request with an AbortSignal',
  'serialize a response faster with a schema',
  'measure event loop lag',
  'compile TypeScript to JavaScript',
];

/** Real sentences from the installed packages' READMEs: a large pool of distinct queries. */
export async function sampleSentences(count: number): Promise<string[]> {
  const source = await openSampleCorpus(join(packageRoot(), 'node_modules'));
  const sentences: string[] = [];
  for await (const document of source.documents()) {
    for (const unit of splitUnits(document.text)) {
      const words = unit.split(/\s+/).length;
      if (words >= 6 && words <= 40 && /[a-z]{3}/i.test(unit)) sentences.push(unit);
      if (sentences.length >= count) return sentences;
    }
  }
  return sentences;
}

export interface BenchCluster {
  url: string;
  /** Shard replica URLs: [shard][replica]. */
  replicaUrls: string[][];
  chunks: number;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; cache: string | undefined; body: unknown }>;
  stop(): Promise<void>;
}

export async function startBenchCluster(options: {
  name: string;
  shards: number;
  workDir: string;
  dim: number;
  connections: number;
  /** Gateway environment. */
  env?: Record<string, string>;
  /** Replicas per shard (default 1); each is told its siblings as --peers. */
  replicas?: number;
  /** Shard environment (e.g. RAGWAY_FAULTS=1). */
  shardEnv?: Record<string, string>;
  /** Ingest the sample corpus before returning (default true). */
  sampleCorpus?: boolean;
}): Promise<BenchCluster> {
  const replicaCount = options.replicas ?? 1;
  const ports = await Promise.all(Array.from({ length: options.shards * replicaCount }, () => freePort()));
  const urlOf = (shard: number, replica: number): string => `http://127.0.0.1:${ports[shard * replicaCount + replica]}`;
  const replicaUrls = Array.from({ length: options.shards }, (_, shard) => Array.from({ length: replicaCount }, (_, replica) => urlOf(shard, replica)));
  const shards = replicaUrls.flatMap((urls, shard) =>
    urls.map(
      (url, replica) =>
        new ServiceProcess({
          label: `${options.name}-s${shard}r${replica}`,
          host: '127.0.0.1',
          port: Number(new URL(url).port),
          args: [
            '--data', join(options.workDir, `${options.name}-s${shard}r${replica}`),
            '--dim', String(options.dim),
            ...(replicaCount > 1 ? ['--peers', urls.filter((_, other) => other !== replica).join(',')] : []),
          ],
          ...(options.shardEnv !== undefined ? { env: options.shardEnv } : {}),
          restart: false,
        }),
    ),
  );
  const gateway = new ServiceProcess({
    label: `${options.name}-gateway`,
    command: 'gateway',
    host: '127.0.0.1',
    args: [],
    env: { RAGWAY_LOG_LEVEL: 'warn', ...options.env },
    restart: false,
  });
  let pool: Pool | undefined;
  const stop = async (): Promise<void> => {
    await pool?.close();
    await gateway.stop();
    await Promise.all(shards.map((shard) => shard.stop()));
  };
  try {
    await Promise.all(shards.map((shard) => shard.start()));
    gateway.setArgs(['--shards', replicaUrls.map((urls) => urls.join(',')).join(';')]);
    const url = await gateway.start();
    const client = new Pool(url, { connections: options.connections });
    pool = client;
    const post: BenchCluster['post'] = async (path, body, headers = {}) => {
      const response = await client.request({
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      const text = await response.body.text();
      if (response.statusCode !== 200) throw new Error(`${path} → ${response.statusCode}: ${text.slice(0, 200)}`);
      const cache = response.headers['x-ragway-cache'];
      return { status: response.statusCode, cache: typeof cache === 'string' ? cache : undefined, body: JSON.parse(text) as unknown };
    };
    let chunks = 0;
    if (options.sampleCorpus === false) return { url, replicaUrls, chunks, post, stop };
    const source = await openSampleCorpus(join(packageRoot(), 'node_modules'));
    for await (const batch of batchDocuments(source.documents(), { maxDocuments: 32, maxBytes: 2 * 1024 * 1024 })) {
      chunks += ((await post('/v1/documents', { documents: batch })).body as { chunks_total: number }).chunks_total;
    }
    return { url, replicaUrls, chunks, post, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
