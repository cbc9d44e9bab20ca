// A replica set's replicas for unit tests: real in-process stores behind knobs (delay, forced
// failure, reported state), plus the fixtures the replica-set tests share.
import assert from 'node:assert/strict';
import { abortError, createError, isRagwayError, type ErrorCode } from '../../../core/errors.js';
import { InProcessShardClient } from '../../../retriever/in-process-shard-client.js';
import type { ReplicaSetObserver } from '../../../retriever/replica-set.js';
import type { ChunkInput } from '../../../retriever/scatter.js';
import type { ShardCallOptions, ShardClient } from '../../../retriever/shard-client.js';
import {
  encodeVector,
  type DeleteRequest,
  type DeleteResponse,
  type DocumentResponse,
  type SearchRequest,
  type SearchResponse,
  type StatsResponse,
  type UpsertRequest,
  type UpsertResponse,
} from '../../../shards/protocol.js';
import type { IndexStore } from '../../../shards/index-store.js';
import { randomUnitVectors } from '../../helpers/random.js';

export const DIM = 8;
export const NS = 'ns';
export const vectors = randomUnitVectors(200, DIM, 5);
export const chunks: ChunkInput[] = vectors.map((vector, i) => ({ id: `c${i}`, document_id: `d${i}`, namespace: NS, text: `t${i}`, vector }));

/**
 * A real in-process replica behind knobs: a delay before each call (aborted with the call's
 * signal, as a socket would be), a forced failure, and the state its stats report.
 */
export class ControlledReplica implements ShardClient {
  readonly name: string;
  readonly url: string;
  readonly inner: InProcessShardClient;
  /** Delay before a call reaches the store, per call; 0 = answer at once. */
  delay: () => number = () => 0;
  /** Thrown by every call while set. */
  failure: (() => unknown) | undefined;
  state: 'ready' | 'catching-up' = 'ready';
  calls = { search: 0, upsert: 0, delete: 0, getDocument: 0, stats: 0 };
  aborted = 0;
  readonly deadlines: (number | undefined)[] = [];
  readonly versions: (number | undefined)[] = [];

  constructor(readonly store: IndexStore, index: number) {
    this.url = `mem://replica-${index}`;
    this.name = `shard-0 (${this.url})`;
    this.inner = new InProcessShardClient(store, { label: 'shard-0' });
  }

  private async gate(signal: AbortSignal | undefined): Promise<void> {
    const failure = this.failure?.();
    if (failure !== undefined) throw failure;
    const ms = this.delay();
    if (ms <= 0) return;
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        this.aborted += 1;
        reject(abortError(signal as AbortSignal));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async search(request: SearchRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<SearchResponse> {
    this.calls.search += 1;
    this.deadlines.push(options?.deadline);
    await this.gate(signal);
    return this.inner.search(request, signal);
  }
  async upsert(request: UpsertRequest, signal?: AbortSignal): Promise<UpsertResponse> {
    this.calls.upsert += 1;
    this.versions.push(request.version);
    await this.gate(signal);
    return this.inner.upsert(request, signal);
  }
  async delete(request: DeleteRequest, signal?: AbortSignal): Promise<DeleteResponse> {
    this.calls.delete += 1;
    this.versions.push(request.version);
    await this.gate(signal);
    return this.inner.delete(request, signal);
  }
  async getDocument(namespace: string, documentId: string, signal?: AbortSignal): Promise<DocumentResponse | undefined> {
    this.calls.getDocument += 1;
    await this.gate(signal);
    return this.inner.getDocument(namespace, documentId, signal);
  }
  async stats(signal?: AbortSignal): Promise<StatsResponse> {
    this.calls.stats += 1;
    const failure = this.failure?.();
    if (failure !== undefined) throw failure;
    return { ...(await this.inner.stats(signal)), state: this.state };
  }
  async close(): Promise<void> {}
}

/** What HttpShardClient throws for a replica that refuses connections. */
export const refused = (replica: ControlledReplica) => (): unknown =>
  createError('RAGWAY_ERR_SHARD_UNAVAILABLE', `${replica.name} unavailable: connect ECONNREFUSED`);

export function hasCode(code: ErrorCode, messagePattern?: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isRagwayError(err), `expected a RagwayError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (messagePattern) assert.match(err.message, messagePattern);
    return true;
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
export const query = (i: number): SearchRequest => ({ queries: [{ vector: encodeVector(vectors[i % vectors.length] as Float32Array), k: 3, namespace: NS }] });

/** Records every observer hook call as "hook:args". */
export function recordingObserver(): ReplicaSetObserver & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    onHedge: (shard) => events.push(`hedge:${shard}`),
    onHedgeWon: (shard) => events.push(`won:${shard}`),
    onReplicaEjected: (shard, url) => events.push(`ejected:${shard}:${url}`),
    onReplicaRestored: (shard, url) => events.push(`restored:${shard}:${url}`),
  };
}
