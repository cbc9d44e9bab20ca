import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isRagwayError } from '../../../core/errors.js';
import { HttpShardClient, checkShard } from '../../../retriever/http-shard-client.js';
import { Scatter } from '../../../retriever/scatter.js';
import { DEADLINE_HEADER, PROTOCOL_HEADER, PROTOCOL_VERSION, encodeVector } from '../../../shards/protocol.js';
import { startShardServer, type ShardServer } from '../../../shards/server.js';
import { CONTRACT_DIM, CONTRACT_SPACE, shardClientContract } from '../../unit/retriever/shard-client-contract.js';
import { hasCode } from '../../helpers/errors.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'ragway-http-shard-'));
}

async function startShard(dim = CONTRACT_DIM): Promise<{ shard: ShardServer; dataDir: string }> {
  const dataDir = tempDir();
  const shard = await startShardServer({ port: 0, dataDir, dim, space: CONTRACT_SPACE, autoSaveMs: 0 });
  return { shard, dataDir };
}

shardClientContract('HttpShardClient against a real shard server', async () => {
  const { shard, dataDir } = await startShard();
  return {
    client: new HttpShardClient(shard.url, { label: 'shard-0', connections: 4 }),
    cleanup: async () => {
      await shard.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
});

/**
 * A plain HTTP server standing in for a misbehaving shard; counts the connections it accepts
 * and keeps the headers of every request.
 */
async function fixtureServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; server: Server; connections: () => number; headers: IncomingMessage['headers'][] }> {
  let connections = 0;
  const headers: IncomingMessage['headers'][] = [];
  const server = createServer((req, res) => {
    headers.push(req.headers);
    handler(req, res);
  });
  server.on('connection', () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server, connections: () => connections, headers };
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

const QUERY = {
  queries: [{ vector: encodeVector(new Float32Array(CONTRACT_DIM).fill(0.5)), k: 3, namespace: 'default' }],
};

describe('HttpShardClient failures', () => {
  it('a stopped shard is RAGWAY_ERR_SHARD_UNAVAILABLE naming the shard and the cause', async () => {
    const { shard, dataDir } = await startShard();
    const client = new HttpShardClient(shard.url, { label: 'shard-1' });
    try {
      assert.equal((await client.stats()).dim, CONTRACT_DIM);
      await shard.close();
      await assert.rejects(
        client.search(QUERY),
        hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', new RegExp(`^shard-1 \\(${shard.url.replace(/[.]/g, '\\.')}\\) unavailable: .*ECONNREFUSED`)),
      );
    } finally {
      await client.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a stopped shard is missing from the scatter’s answer, or fails it with 503 naming it when required', async () => {
    const up = await startShard();
    const down = await startShard();
    const scatter = new Scatter([
      new HttpShardClient(up.shard.url, { label: 'shard-0' }),
      new HttpShardClient(down.shard.url, { label: 'shard-1' }),
    ]);
    try {
      await down.shard.close();
      const partial = await scatter.search(new Float32Array(CONTRACT_DIM).fill(0.5), { k: 3, namespace: 'default' });
      assert.equal(partial.coverage.partial, true);
      assert.deepEqual(partial.coverage.missing?.map((m) => m.shard), [1]);
      assert.match(partial.coverage.missing?.[0]?.reason ?? '', /shard-1 \(http:\/\/127\.0\.0\.1:\d+\) unavailable: .*ECONNREFUSED/);
      await assert.rejects(
        scatter.search(new Float32Array(CONTRACT_DIM).fill(0.5), { k: 3, namespace: 'default', requireComplete: true }),
        (err) => {
          hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /shard-1 \(http:\/\/127\.0\.0\.1:\d+\) unavailable: .*ECONNREFUSED/)(err);
          assert.ok(isRagwayError(err) && err.statusCode === 503);
          return true;
        },
      );
    } finally {
      await scatter.close();
      await up.shard.close();
      for (const { dataDir } of [up, down]) rmSync(dataDir, { recursive: true, force: true });
    }
  });

  describe('against a shard that never answers', () => {
    let fixture: Awaited<ReturnType<typeof fixtureServer>>;
    before(async () => {
      fixture = await fixtureServer(() => {
        // Holds the request open: the client's timeout or signal has to end it.
      });
    });
    after(() => stop(fixture.server));

    it('a caller abort rejects promptly with the caller’s abort error', async () => {
      const client = new HttpShardClient(fixture.url, { label: 'shard-2' });
      try {
        const controller = new AbortController();
        const started = performance.now();
        const pending = client.search(QUERY, controller.signal);
        setTimeout(() => controller.abort(), 50);
        await assert.rejects(pending, hasCode('RAGWAY_ERR_CLIENT_CLOSED'));
        const elapsed = performance.now() - started;
        assert.ok(elapsed < 1000, `took ${elapsed} ms`);

        const deadline = client.search(QUERY, AbortSignal.timeout(50));
        await assert.rejects(deadline, hasCode('RAGWAY_ERR_DEADLINE_EXCEEDED'));
      } finally {
        await client.close();
      }
    });

    it('a deadline travels as the time left and ends the request at the deadline', async () => {
      const client = new HttpShardClient(fixture.url, { label: 'shard-2' });
      try {
        const seen = fixture.headers.length;
        const started = performance.now();
        await assert.rejects(
          client.search(QUERY, undefined, { deadline: Date.now() + 80 }),
          hasCode('RAGWAY_ERR_DEADLINE_EXCEEDED', /^shard-2 \(.*\) did not answer POST \/v1\/search within the \d+ ms left before the deadline$/),
        );
        const elapsed = performance.now() - started;
        assert.ok(elapsed >= 70 && elapsed < 300, `took ${elapsed} ms for an 80 ms budget`);
        const sent = Number(fixture.headers[seen]?.[DEADLINE_HEADER]);
        assert.ok(sent > 0 && sent <= 80, `${DEADLINE_HEADER}: ${sent}`);
        // A deadline already passed sends nothing at all.
        await assert.rejects(client.stats(undefined, { deadline: Date.now() - 1 }), hasCode('RAGWAY_ERR_DEADLINE_EXCEEDED'));
        assert.equal(fixture.headers.length, seen + 1);
      } finally {
        await client.close();
      }
    });

    it('the request timeout is RAGWAY_ERR_SHARD_UNAVAILABLE', async () => {
      const client = new HttpShardClient(fixture.url, { label: 'shard-2', requestTimeoutMs: 100 });
      try {
        await assert.rejects(client.stats(), hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /^shard-2 \(.*\) unavailable: .*(Headers Timeout|UND_ERR_HEADERS_TIMEOUT)/));
      } finally {
        await client.close();
      }
    });
  });

  describe('against a misbehaving server', () => {
    let status = 200;
    let protocol: string | undefined = String(PROTOCOL_VERSION);
    let body = '{}';
    let fixture: Awaited<ReturnType<typeof fixtureServer>>;
    before(async () => {
      fixture = await fixtureServer((req, res) => {
        req.resume();
        req.on('end', () => {
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (protocol !== undefined) headers[PROTOCOL_HEADER] = protocol;
          res.writeHead(status, headers).end(body);
        });
      });
    });
    after(() => stop(fixture.server));

    function respond(next: { status?: number; protocol?: string | undefined; body?: string }): void {
      status = next.status ?? 200;
      protocol = 'protocol' in next ? next.protocol : String(PROTOCOL_VERSION);
      body = next.body ?? '{}';
    }

    it('5xx is RAGWAY_ERR_SHARD_UNAVAILABLE with the shard’s reason', async () => {
      const client = new HttpShardClient(fixture.url, { label: 'shard-3' });
      try {
        respond({ status: 503, body: JSON.stringify({ error: { message: 'loading', type: 'server_error', code: 'RAGWAY_ERR_NOT_READY', param: null } }) });
        await assert.rejects(client.stats(), hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /^shard-3 .* unavailable: HTTP 503 RAGWAY_ERR_NOT_READY: loading/));
        respond({ status: 502, protocol: undefined, body: '<html>bad gateway</html>' });
        await assert.rejects(client.stats(), hasCode('RAGWAY_ERR_SHARD_UNAVAILABLE', /HTTP 502 <html>bad gateway/));
      } finally {
        await client.close();
      }
    });

    it('a 4xx envelope comes back as the same error code', async () => {
      const client = new HttpShardClient(fixture.url);
      try {
        respond({
          status: 400,
          body: JSON.stringify({ error: { message: 'bad op', type: 'invalid_request_error', code: 'RAGWAY_ERR_INVALID_FILTER', param: 'queries[0].filter' } }),
        });
        await assert.rejects(client.search(QUERY), (err) => {
          hasCode('RAGWAY_ERR_INVALID_FILTER', /^bad op$/)(err);
          assert.ok(isRagwayError(err) && err.param === 'queries[0].filter' && err.statusCode === 400);
          return true;
        });
      } finally {
        await client.close();
      }
    });

    it('another protocol version is RAGWAY_ERR_PROTOCOL_MISMATCH', async () => {
      const client = new HttpShardClient(fixture.url, { label: 'shard-4' });
      try {
        respond({ protocol: '99', body: '{"results":[]}' });
        await assert.rejects(client.search(QUERY), hasCode('RAGWAY_ERR_PROTOCOL_MISMATCH', /shard-4 .* protocol 99/));
        respond({ protocol: undefined, body: '{"results":[]}' });
        await assert.rejects(client.search(QUERY), hasCode('RAGWAY_ERR_PROTOCOL_MISMATCH', /without a x-ragway-protocol header/));
        respond({ body: 'not json' });
        await assert.rejects(client.search(QUERY), hasCode('RAGWAY_ERR_SHARD_ERROR', /not a JSON object/));
      } finally {
        await client.close();
      }
    });

    it('keeps connections alive across requests', async () => {
      const client = new HttpShardClient(fixture.url, { connections: 2 });
      try {
        respond({ body: '{"ok":true}' });
        const before = fixture.connections();
        for (let i = 0; i < 20; i++) await client.stats();
        // undici may open the second allowed connection while the first is finishing its
        // response; what matters is that 20 requests did not cost 20 handshakes.
        const opened = fixture.connections() - before;
        assert.ok(opened >= 1 && opened <= 2, `20 requests opened ${opened} connections`);
      } finally {
        await client.close();
      }
    });
  });

  it('checkShard verifies the dimension against the embedding model', async () => {
    const { shard, dataDir } = await startShard(16);
    const client = new HttpShardClient(shard.url, { label: 'shard-5' });
    try {
      assert.equal((await checkShard(client, 16)).dim, 16);
      await assert.rejects(checkShard(client, 384), hasCode('RAGWAY_ERR_NOT_READY', /shard-5 .* holds 16-dimensional vectors but the embedding model produces 384/));
    } finally {
      await client.close();
      await shard.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
