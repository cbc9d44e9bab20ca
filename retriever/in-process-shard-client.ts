// ShardClient over a ShardStore living in this process: unit tests (and a single-process
// deployment) run the exact shard logic without sockets. The store is synchronous; the
// promise wrapper gives callers the same shape, errors included, as HttpShardClient.
import { createError, throwIfAborted } from '../core/errors.js';
import type {
  DeleteRequest,
  DeleteResponse,
  DocumentResponse,
  SearchRequest,
  SearchResponse,
  StatsResponse,
  UpsertRequest,
  UpsertResponse,
} from '../shards/protocol.js';
import { assertInScope, type ScopedBody } from '../shards/access.js';
import type { ShardStore } from '../shards/shard-store.js';
import type { ShardCallOptions, ShardClient } from './shard-client.js';

export interface InProcessShardClientOptions {
  /** Short label used in errors and metrics, e.g. "shard-1". Default "shard". */
  label?: string;
}

export class InProcessShardClient implements ShardClient {
  readonly name: string;

  /** The store stays owned by the caller: close() does not close it, so a test can reopen it. */
  constructor(
    private readonly store: ShardStore,
    options: InProcessShardClientOptions = {},
  ) {
    this.name = `${options.label ?? 'shard'} (in-process)`;
  }

  // Each method is async so that a store's synchronous throw becomes a rejection, as a remote
  // shard's error would; a signal aborted (or a deadline passed) before the call means the work
  // is not done at all. Once started, a synchronous store call cannot be interrupted anyway.
  async search(request: SearchRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<SearchResponse> {
    this.admit(signal, options, request);
    return this.store.search(request);
  }

  async upsert(request: UpsertRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<UpsertResponse> {
    this.admit(signal, options, request);
    return this.store.upsert(request);
  }

  async delete(request: DeleteRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<DeleteResponse> {
    this.admit(signal, options, request);
    return this.store.delete(request);
  }

  async getDocument(
    namespace: string,
    documentId: string,
    signal?: AbortSignal,
    options?: ShardCallOptions,
  ): Promise<DocumentResponse | undefined> {
    this.admit(signal, options, undefined, namespace);
    return this.store.getDocument(namespace, documentId);
  }

  async stats(signal?: AbortSignal, options?: ShardCallOptions): Promise<StatsResponse> {
    this.admit(signal, options);
    return this.store.stats();
  }

  /** What a shard server checks before a call's work: the signal, the deadline, the caller's namespace scope. */
  private admit(signal: AbortSignal | undefined, options: ShardCallOptions | undefined, body?: ScopedBody, namespace?: string): void {
    throwIfAborted(signal);
    if (options?.deadline !== undefined && Date.now() >= options.deadline) {
      throw createError('RAGWAY_ERR_DEADLINE_EXCEEDED', `${this.name}: the deadline passed before the call started`);
    }
    if (options?.namespaces !== undefined) assertInScope(options.namespaces, body, namespace);
  }

  async close(): Promise<void> {
    // Nothing to release: no connections, and the store belongs to whoever opened it.
  }
}
