// Real shard processes (`ragway shard --port 0`, from dist/) and the real default model for
// integration tests. The model is built once if missing (npm install normally did it).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServiceProcess } from '../../cli/service-process.js';
import { OnnxEmbeddingBackend } from '../../embedder/backends/onnx.js';
import { ensureGloveSifModel } from '../../embedder/model/build-model.js';
import { defaultModelDir } from '../../core/package-paths.js';

export async function loadDefaultBackend(): Promise<OnnxEmbeddingBackend> {
  await ensureGloveSifModel({ outDir: defaultModelDir() });
  return OnnxEmbeddingBackend.load({ model: defaultModelDir(), intraOpNumThreads: 1 });
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `ragway-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export interface TestShards {
  processes: ServiceProcess[];
  urls: string[];
  spec: string;
  stop(): Promise<void>;
}

export interface StartShardsOptions {
  /** The cluster credential the shards require (sent as RAGWAY_CLUSTER_TOKEN). */
  clusterToken?: string;
  /** More environment for every shard process (tracing settings, say). */
  env?: Record<string, string>;
}

export async function startShards(count: number, dataDir: string, dim = 100, options: StartShardsOptions = {}): Promise<TestShards> {
  const processes = Array.from(
    { length: count },
    (_, index) =>
      new ServiceProcess({
        label: `shard-${index}`,
        host: '127.0.0.1',
        args: ['--data', join(dataDir, `shard-${index}`), '--dim', String(dim), '--space', 'cosine'],
        restart: false,
        env: { ...options.env, ...(options.clusterToken !== undefined ? { RAGWAY_CLUSTER_TOKEN: options.clusterToken } : {}) },
      }),
  );
  const urls = await Promise.all(processes.map((shard) => shard.start()));
  return {
    processes,
    urls,
    spec: urls.join(';'),
    stop: async () => {
      await Promise.all(processes.map((shard) => shard.stop()));
    },
  };
}
