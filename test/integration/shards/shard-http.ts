// Helpers for the shard integration tests: real `ragway shard` processes (dist/cli) and
// plain HTTP calls to them with the protocol header.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, type Dispatcher } from 'undici';
import { ServiceProcess } from '../../../cli/service-process.js';
import {
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  encodeVector,
  type Chunk,
  type ExportDocument,
  type ExportLine,
  type StatsResponse,
} from '../../../shards/protocol.js';

export const DIM = 16;

export interface Reply<T = unknown> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | undefined>;
}

export class ShardHttp {
  readonly agent = new Agent({ connections: 64, keepAliveTimeout: 2_000 });

  async call<T = unknown>(
    url: string,
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Reply<T>> {
    const response: Dispatcher.ResponseData = await this.agent.request({
      origin: url,
      path,
      method,
      headers: {
        [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await response.body.text();
    const type = String(response.headers['content-type'] ?? '');
    return { status: response.statusCode, headers: response.headers, body: (type.includes('application/json') ? JSON.parse(text) : text) as T };
  }

  async stats(url: string): Promise<StatsResponse> {
    const reply = await this.call<StatsResponse>(url, 'GET', '/v1/stats');
    if (reply.status !== 200) throw new Error(`stats answered ${reply.status}`);
    return reply.body;
  }

  async ready(url: string): Promise<number> {
    return (await this.call(url, 'GET', '/readyz')).status;
  }

  async waitReady(url: string, timeoutMs = 15_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while ((await this.ready(url)) !== 200) {
      if (Date.now() > until) throw new Error(`${url} did not become ready within ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  /** Every document (tombstones included) with versions, order-independent. */
  async contents(url: string): Promise<ExportDocument[]> {
    const reply = await this.call<string>(url, 'GET', '/v1/export');
    if (reply.status !== 200) throw new Error(`export answered ${reply.status}`);
    const lines = reply.body
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as ExportLine);
    if (lines.at(-1)?.type !== 'end') throw new Error('export without its end line');
    return lines
      .filter((line): line is ExportDocument => line.type === 'document')
      .map((doc) => ({ ...doc, chunks: [...doc.chunks].sort((a, b) => a.id.localeCompare(b.id)) }))
      .sort((a, b) => `${a.namespace}/${a.document_id}`.localeCompare(`${b.namespace}/${b.document_id}`));
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

export function chunkFor(id: number, vector: Float32Array): Chunk {
  return { id: `c${id}`, document_id: `doc${id}`, namespace: 'default', text: `chunk ${id}`, metadata: { id }, vector: encodeVector(vector) };
}

/** Runs `task` over `items` with at most `concurrency` in flight; rejects on the first failure. */
export async function inParallel<T>(items: readonly T[], concurrency: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        await task(items[index] as T, index);
      }
    }),
  );
}

export function shardProcess(label: string, dataDir: string, extra: string[] = [], env: Record<string, string> = {}): ServiceProcess {
  return new ServiceProcess({
    label,
    host: '127.0.0.1',
    args: ['--data', dataDir, '--dim', String(DIM), '--space', 'cosine', ...extra],
    env,
    restart: false,
  });
}

/** Waits until `pid` is gone (after a SIGKILL the data dir must not be shared with a new process). */
export async function waitForExit(pid: number | undefined, timeoutMs = 10_000): Promise<void> {
  if (pid === undefined) return;
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > until) throw new Error(`process ${pid} did not exit within ${timeoutMs} ms`);
    await sleep(20);
  }
}

export async function tempRoot(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `ragway-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** deepEqual of two replicas' contents, reporting only the documents that differ. */
export function assertSameContents(actual: ExportDocument[], expected: ExportDocument[], message: string): void {
  const key = (doc: ExportDocument): string => `${doc.namespace}/${doc.document_id}`;
  const byKey = new Map(expected.map((doc) => [key(doc), doc]));
  const differences: string[] = [];
  for (const doc of actual) {
    const other = byKey.get(key(doc));
    byKey.delete(key(doc));
    if (JSON.stringify(doc) !== JSON.stringify(other)) differences.push(`${key(doc)}: ${JSON.stringify(doc)} != ${JSON.stringify(other)}`);
  }
  for (const missing of byKey.keys()) differences.push(`${missing}: missing`);
  assert.deepEqual(differences.slice(0, 5), [], `${message} (${differences.length} documents differ)`);
}
