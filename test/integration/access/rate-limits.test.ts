// Per-key rate limits over real shard processes and listening gateways: the official openai
// SDK works with a ragway key and sees 429 + Retry-After + x-ratelimit-* once over its
// limit; 200 simultaneous requests against a key allowed 10/s (burst 10) admit no more than
// the bucket allows, through one gateway (memory) and through two gateways sharing a real
// Redis (one Lua script per check, so no overshoot under concurrency).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { Agent, request } from 'undici';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig, type Config } from '../../../gateway/config.js';
import { generateToken } from '../../../core/secrets.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';
import { bearer, writeKeys } from '../../helpers/keys.js';
import { redisMissingReason, startRedis, type TestRedis } from '../../helpers/redis.js';

const RPS = 10;
const BURST = 10;

describe('per-key rate limits', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let shards: TestShards;
  let backend: OnnxEmbeddingBackend;
  let keys: Record<string, string>;
  let base: Config;
  const apps: FastifyInstance[] = [];
  const clusterToken = generateToken('rgwc_');

  async function gateway(overrides: Partial<Config> = {}): Promise<string> {
    const app = await buildApp({ ...base, ...overrides }, { embeddingBackend: backend, defaultMetrics: false });
    apps.push(app);
    return app.listen({ host: '127.0.0.1', port: 0 });
  }

  before(async () => {
    dir = await tempDir('limits');
    backend = await loadDefaultBackend();
    shards = await startShards(2, dir.path, backend.dimensions, { clusterToken });
    const keysFile = join(dir.path, 'keys.json');
    keys = await writeKeys(keysFile, [
      { name: 'sdk', scopes: ['read', 'write'], namespaces: ['default'], limits: { requests_per_second: 1, burst: 3 } },
      { name: 'tokens', scopes: ['read'], namespaces: ['default'], limits: { tokens_per_minute: 20 } },
      { name: 'memory-10', scopes: ['read'], namespaces: ['default'], limits: { requests_per_second: RPS, burst: BURST } },
      { name: 'redis-10', scopes: ['read'], namespaces: ['default'], limits: { requests_per_second: RPS, burst: BURST } },
    ]);
    base = loadConfig({}, { shards: shards.spec, keysFile, clusterToken, logLevel: 'silent' });
  });

  after(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await shards?.stop();
    await backend?.close();
    await dir?.remove();
  });

  it('the official openai SDK works with a ragway key and gets 429 with Retry-After and x-ratelimit-* over its limit', async () => {
    const url = await gateway();
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: keys['sdk']!, maxRetries: 0 });
    const embedded = await client.embeddings.create({ model: 'glove-sif-100d', input: 'hello world' });
    assert.equal(embedded.data[0]?.embedding.length, 100);
    const { data, response } = await client.chat.completions
      .create({ model: 'ragway-extractive', messages: [{ role: 'user', content: 'how do limits work' }] })
      .withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(response.headers.get('x-ratelimit-limit-requests'), '3');
    assert.match(response.headers.get('x-ratelimit-reset-requests') ?? '', /^\d+(\.\d+)?m?s$/);
    let limited: unknown;
    for (let attempt = 0; attempt < 5 && limited === undefined; attempt += 1) {
      await client.models.list().catch((err: unknown) => {
        limited = err;
      });
    }
    assert.ok(limited instanceof OpenAI.RateLimitError, `expected a RateLimitError, got ${String(limited)}`);
    assert.equal(limited.status, 429);
    assert.match(limited.headers?.get('retry-after') ?? '', /^\d+$/);
    assert.equal(limited.headers?.get('x-ratelimit-remaining-requests'), '0');
    assert.ok(limited.headers?.get('x-ratelimit-limit-requests'));
    assert.equal((limited.error as { code?: string } | undefined)?.code, 'RAGWAY_ERR_RATE_LIMITED');
    await assert.rejects(new OpenAI({ baseURL: `${url}/v1`, apiKey: 'rgw_0000000000_wrongwrongwrongwrongwrong', maxRetries: 0 }).models.list(), OpenAI.AuthenticationError);
  });

  it('charges embedded tokens against tokens per minute', async () => {
    const url = await gateway();
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: keys['tokens']!, maxRetries: 0 });
    const first = await client.embeddings.create({ model: 'glove-sif-100d', input: 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty twentyone' });
    assert.ok(first.usage.total_tokens > 20);
    // The charge lands after the response; the next request finds the budget overdrawn.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const err = await client.embeddings.create({ model: 'glove-sif-100d', input: 'again' }).catch((e: unknown) => e);
    assert.ok(err instanceof OpenAI.RateLimitError, String(err));
    assert.equal(err.headers?.get('x-ratelimit-remaining-tokens'), '0');
    assert.ok(Number(err.headers?.get('retry-after')) >= 1);
  });

  async function burst(urls: string[], key: string): Promise<{ admitted: number; limited: number; other: number[]; elapsedS: number }> {
    // Connections are opened first (on an open probe route), so the 200 requests go out at
    // once over warm sockets and the bound below stays close to the bucket's burst.
    const dispatcher = new Agent({ connections: 200 });
    await Promise.all(
      Array.from({ length: 200 }, async (_, index) => (await request(`${urls[index % urls.length]}/healthz`, { dispatcher })).body.dump()),
    );
    const start = performance.now();
    const statuses = await Promise.all(
      Array.from({ length: 200 }, async (_, index) => {
        // A cheap route, so the 200 arrive within well under a second and the bound is tight.
        const response = await request(`${urls[index % urls.length]}/v1/models`, { headers: bearer(key), dispatcher });
        await response.body.dump();
        return response.statusCode;
      }),
    );
    const elapsedS = (performance.now() - start) / 1_000;
    await dispatcher.close();
    return {
      admitted: statuses.filter((status) => status === 200).length,
      limited: statuses.filter((status) => status === 429).length,
      other: statuses.filter((status) => status !== 200 && status !== 429),
      elapsedS,
    };
  }

  /** The bucket's promise: its burst, plus what refills while the 200 requests are being answered. */
  function assertWithinBucket(result: Awaited<ReturnType<typeof burst>>, label: string): void {
    const allowed = BURST + Math.ceil(RPS * result.elapsedS);
    process.stdout.write(`# ${label}: ${result.admitted} of 200 admitted in ${result.elapsedS.toFixed(3)} s (bucket allows ${allowed})\n`);
    assert.deepEqual(result.other, [], `${label}: only 200 or 429`);
    assert.ok(result.admitted >= BURST, `${label}: the burst is admitted (${result.admitted})`);
    assert.ok(result.admitted <= allowed, `${label}: ${result.admitted} admitted, the bucket allows ${allowed}`);
    if (result.elapsedS <= 1) assert.ok(result.admitted <= RPS + BURST);
    assert.equal(result.admitted + result.limited, 200);
  }

  it('200 simultaneous requests through one gateway admit no more than the bucket allows', async () => {
    const url = await gateway();
    assertWithinBucket(await burst([url], keys['memory-10']!), 'one gateway, memory');
  });

  describe('two gateways sharing Redis', () => {
    let redis: TestRedis | undefined;
    const missing = redisMissingReason();
    before(async () => {
      if (missing === undefined) redis = await startRedis();
    });
    after(async () => redis?.stop());

    it('200 simultaneous requests split over two gateways admit no more than one bucket allows', { skip: missing }, async () => {
      const urls = [await gateway({ redisUrl: redis!.url }), await gateway({ redisUrl: redis!.url })];
      assertWithinBucket(await burst(urls, keys['redis-10']!), 'two gateways, Redis');
      // Without Redis each gateway has its own bucket: the same burst gets through twice.
      const unshared = [await gateway(), await gateway()];
      const separate = await burst(unshared, keys['redis-10']!);
      assert.ok(separate.admitted >= 2 * BURST, `separate buckets admit ${separate.admitted}`);
    });
  });
});
