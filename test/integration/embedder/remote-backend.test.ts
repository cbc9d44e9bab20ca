// The remote embedding backend over real HTTP: against a second ragway process serving
// /v1/embeddings (OpenAI format) and a TEI-shaped server over the real model. Both pass the
// same backend contract as the local model; batches over the server's limit are split, never
// truncated; 429/503 are retried, dead endpoints failed over, and a width that does not match
// stops the start.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ServiceProcess } from '../../../cli/service-process.js';
import { freePort } from '../../../cli/free-port.js';
import { isRagwayError } from '../../../core/errors.js';
import type { EmbeddingBackend } from '../../../embedder/backend.js';
import { cudaProviderPath } from '../../../embedder/backends/onnx.js';
import { RemoteEmbeddingBackend, type RemoteBackendOptions } from '../../../embedder/backends/remote.js';
import { loadConfig } from '../../../gateway/config.js';
import { loadEmbeddingBackend } from '../../../gateway/embedding-backend.js';
import { startTeiServer, type TeiServer } from '../../fixtures/tei-server.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';
import { embeddingBackendContract } from '../../unit/embedder/embedding-backend-contract.js';

interface World {
  local: EmbeddingBackend;
  dir: Awaited<ReturnType<typeof tempDir>>;
  shards: TestShards;
  ragway: ServiceProcess;
  /** The second ragway's OpenAI-compatible base URL. */
  openAiBase: string;
  tei: TeiServer;
}

let started: Promise<World> | undefined;
function world(): Promise<World> {
  started ??= (async () => {
    const local = await loadDefaultBackend();
    const dir = await tempDir('remote-embed');
    const shards = await startShards(1, dir.path, local.dimensions);
    const ragway = new ServiceProcess({ label: 'second ragway', command: 'gateway', args: ['--shards', shards.spec], host: '127.0.0.1', restart: false });
    const url = await ragway.start();
    const tei = await startTeiServer(local, { maxClientBatchSize: 8 });
    return { local, dir, shards, ragway, openAiBase: `${url}/v1`, tei };
  })();
  return started;
}

after(async () => {
  if (started === undefined) return;
  const { local, dir, shards, ragway, tei } = await started;
  await tei.close();
  await ragway.stop();
  await shards.stop();
  await local.close();
  await dir.remove();
});

const hasCode = (code: string) => (err: unknown) => isRagwayError(err) && err.code === code;
const texts = (count: number): string[] => Array.from({ length: count }, (_, i) => `sentence ${i} about cats and carpets`);
function cosine(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] ?? 0) * (b[i] ?? 0);
  return sum;
}

async function openAi(options: Partial<RemoteBackendOptions> = {}): Promise<RemoteEmbeddingBackend> {
  const { openAiBase } = await world();
  return RemoteEmbeddingBackend.load({ urls: [openAiBase], format: 'openai', model: 'glove-sif-100d', maxBatchInputs: 16, ...options });
}
async function tei(options: Partial<RemoteBackendOptions> = {}, server?: TeiServer): Promise<RemoteEmbeddingBackend> {
  const fixture = server ?? (await world()).tei;
  return RemoteEmbeddingBackend.load({ urls: [fixture.url], format: 'tei', model: 'tei', maxBatchInputs: 8, backoffMs: 1, ...options });
}

embeddingBackendContract('local ONNX (glove-sif-100d)', async () => loadDefaultBackend(), { dimensions: 100 });
embeddingBackendContract('remote, OpenAI format, a second ragway process', () => openAi(), { dimensions: 100 });
embeddingBackendContract('remote, TEI format', () => tei(), { dimensions: 100 });

describe('RemoteEmbeddingBackend', () => {
  before(async () => {
    await world();
  });

  it('splits a request larger than the server accepts (ragway: 2048 inputs) and loses none', async () => {
    const { local } = await world();
    const backend = await openAi({ maxBatchInputs: 2048 });
    try {
      const inputs = texts(2100);
      const vectors = await backend.embed(inputs.map((text) => backend.encode(text)));
      assert.equal(vectors.length, 2100);
      const [first, last] = await local.embed([local.encode(inputs[0]!), local.encode(inputs[2099]!)]);
      assert.ok(cosine(vectors[0]!, first!) > 0.9999 && cosine(vectors[2099]!, last!) > 0.9999);
    } finally {
      await backend.close();
    }
  });

  it("cuts batches to the configured limit, and halves a batch the server refuses as too large", async () => {
    const { tei: server } = await world();
    const fits = await tei({ maxBatchInputs: 8 });
    const tooBig = await tei({ maxBatchInputs: 32 });
    try {
      server.batchSizes.length = 0;
      assert.equal((await fits.embed(texts(50).map((text) => fits.encode(text)))).length, 50);
      assert.ok(server.batchSizes.every((size) => size <= 8));
      assert.equal(server.batchSizes.reduce((sum, size) => sum + size, 0), 50);

      server.batchSizes.length = 0;
      const vectors = await tooBig.embed(texts(32).map((text) => tooBig.encode(text)));
      assert.equal(vectors.length, 32);
      assert.equal(server.batchSizes[0], 32, 'the first try sends the whole batch');
      assert.equal(server.batchSizes.filter((size) => size <= 8).reduce((sum, size) => sum + size, 0), 32);
    } finally {
      await fits.close();
      await tooBig.close();
    }
  });

  it('retries 503 and 429 with backoff, and says rate limited when the server never relents', async () => {
    const { tei: server } = await world();
    const backend = await tei({ maxAttempts: 3 });
    try {
      server.failNext(2, 503);
      assert.equal((await backend.embed([backend.encode('a cat')])).length, 1);
      server.failNext(5, 429);
      await assert.rejects(backend.embed([backend.encode('a cat')]), hasCode('RAGWAY_ERR_UPSTREAM_RATE_LIMITED'));
      server.failNext(0, 429);
    } finally {
      await backend.close();
    }
  });

  it('fails over from an endpoint that refuses connections', async () => {
    const { tei: server } = await world();
    const dead = `http://127.0.0.1:${await freePort()}`;
    const backend = await RemoteEmbeddingBackend.load({ urls: [dead, server.url], format: 'tei', model: 'tei', maxBatchInputs: 8 });
    try {
      for (let i = 0; i < 4; i++) assert.equal((await backend.embed([backend.encode(`cat ${i}`)])).length, 1);
    } finally {
      await backend.close();
    }
  });

  it('checks the width at start: against the expected one, and across endpoints', async () => {
    const { local, tei: server } = await world();
    await assert.rejects(tei({ expectedDimensions: 384 }), (err: unknown) => hasCode('RAGWAY_ERR_NOT_READY')(err) && /100-dimensional/.test((err as Error).message));
    const wider = await startTeiServer(local, { pad: 4 });
    try {
      await assert.rejects(
        RemoteEmbeddingBackend.load({ urls: [server.url, wider.url], format: 'tei', model: 'tei' }),
        (err: unknown) => hasCode('RAGWAY_ERR_NOT_READY')(err) && /disagree/.test((err as Error).message),
      );
    } finally {
      await wider.close();
    }
    const dead = `http://127.0.0.1:${await freePort()}`;
    await assert.rejects(RemoteEmbeddingBackend.load({ urls: [dead], format: 'openai', model: 'x' }), hasCode('RAGWAY_ERR_NOT_READY'));
  });

  it('stops waiting out a backoff when the caller aborts', async () => {
    const { tei: server } = await world();
    const backend = await tei({ maxAttempts: 5, backoffMs: 10_000, maxBackoffMs: 10_000 });
    try {
      server.failNext(5, 503);
      const controller = new AbortController();
      const pending = backend.embed([backend.encode('a cat')], controller.signal);
      setTimeout(() => controller.abort(), 50);
      const startedAt = Date.now();
      await assert.rejects(pending);
      assert.ok(Date.now() - startedAt < 5_000);
    } finally {
      server.failNext(0, 503);
      await backend.close();
    }
  });

  it('is what the gateway uses when RAGWAY_EMBED_URL is set', async () => {
    const { openAiBase } = await world();
    const backend = await loadEmbeddingBackend(loadConfig({ RAGWAY_EMBED_URL: openAiBase, RAGWAY_EMBED_MODEL: 'glove-sif-100d' }));
    try {
      assert.ok(backend instanceof RemoteEmbeddingBackend);
      assert.equal(backend.dimensions, 100);
    } finally {
      await backend.close();
    }
    assert.throws(() => loadConfig({ RAGWAY_EMBED_API_FORMAT: 'grpc' }), /RAGWAY_EMBED_API_FORMAT/);
  });
});

describe('RAGWAY_EMBED_DEVICE=cuda', () => {
  it('fails at start with the install step when the CUDA provider is missing — never runs on CPU instead', { skip: existsSync(cudaProviderPath()) && 'CUDA provider installed here' }, async () => {
    await assert.rejects(
      loadEmbeddingBackend(loadConfig({ RAGWAY_EMBED_DEVICE: 'cuda' })),
      (err: unknown) => hasCode('RAGWAY_ERR_NOT_READY')(err) && /ONNXRUNTIME_NODE_INSTALL_CUDA=v12/.test((err as Error).message),
    );
  });
});
