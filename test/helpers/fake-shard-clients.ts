// Fake shard clients for tests of what sits above the ShardClient interface (scatter,
// coalescer, replica sets): each a full ShardClient, so it drops in where a real one goes.
// The ones with data delegate to a real in-process client over a real IndexStore.
import { abortError } from '../../core/errors.js';
import { InProcessShardClient } from '../../retriever/in-process-shard-client.js';
import type { ShardCallOptions, ShardClient } from '../../retriever/shard-client.js';
import type { IndexStore } from '../../shards/index-store.js';
import type {
  DeleteRequest,
  DeleteResponse,
  DocumentResponse,
  SearchRequest,
  SearchResponse,
  StatsResponse,
  UpsertRequest,
  UpsertResponse,
} from '../../shards/protocol.js';

/** A shard whose every call fails the way a crashed process or a broken disk would. */
export class BrokenShardClient implements ShardClient {
  constructor(readonly name: string) {}
  private fail(): Promise<never> {
    return Promise.reject(new Error('disk on fire'));
  }
  search(): Promise<SearchResponse> {
    return this.fail();
  }
  upsert(): Promise<UpsertResponse> {
    return this.fail();
  }
  delete(): Promise<DeleteResponse> {
    return this.fail();
  }
  getDocument(): Promise<DocumentResponse | undefined> {
    return this.fail();
  }
  stats(): Promise<StatsResponse> {
    return this.fail();
  }
  async close(): Promise<void> {}
}

/** A shard that never answers: its calls settle only when their signal aborts. */
export class StuckShardClient implements ShardClient {
  aborted = 0;
  constructor(readonly name: string) {}
  private hang<T>(signal?: AbortSignal): Promise<T> {
    return new Promise<T>((_, reject) => {
      signal?.addEventListener(
        'abort',
        () => {
          this.aborted += 1;
          reject(abortError(signal));
        },
        { once: true },
      );
    });
  }
  search(_request: unknown, signal?: AbortSignal): Promise<SearchResponse> {
    return this.hang(signal);
  }
  upsert(_request: unknown, signal?: AbortSignal): Promise<UpsertResponse> {
    return this.hang(signal);
  }
  delete(_request: unknown, signal?: AbortSignal): Promise<DeleteResponse> {
    return this.hang(signal);
  }
  getDocument(_ns: string, _id: string, signal?: AbortSignal): Promise<DocumentResponse | undefined> {
    return this.hang(signal);
  }
  stats(signal?: AbortSignal): Promise<StatsResponse> {
    return this.hang(signal);
  }
  async close(): Promise<void> {}
}

/** Delegates to a real client and records the size of every search request it forwards. */
export class RecordingShardClient implements ShardClient {
  /** Queries per search request, in order. */
  readonly requests: number[] = [];
  /** The namespace scope of each search request (joined patterns; undefined = unscoped). */
  readonly scopes: (string | undefined)[] = [];
  constructor(private readonly inner: ShardClient) {}
  get name(): string {
    return this.inner.name;
  }
  search(request: SearchRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<SearchResponse> {
    this.requests.push(request.queries.length);
    this.scopes.push(options?.namespaces?.join(','));
    return this.inner.search(request, signal, options);
  }
  upsert = (...args: Parameters<ShardClient['upsert']>) => this.inner.upsert(...args);
  delete = (...args: Parameters<ShardClient['delete']>) => this.inner.delete(...args);
  getDocument = (...args: Parameters<ShardClient['getDocument']>) => this.inner.getDocument(...args);
  stats = (...args: Parameters<ShardClient['stats']>) => this.inner.stats(...args);
  close = () => this.inner.close();
}

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
  /** The `traceparent` each search was sent with (tracing on). */
  readonly traceparents: (string | undefined)[] = [];
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
    this.traceparents.push(options?.traceparent);
    await this.gate(signal);
    return this.inner.search(request, signal, options);
  }
  async upsert(request: UpsertRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<UpsertResponse> {
    this.calls.upsert += 1;
    this.versions.push(request.version);
    await this.gate(signal);
    return this.inner.upsert(request, signal, options);
  }
  async delete(request: DeleteRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<DeleteResponse> {
    this.calls.delete += 1;
    this.versions.push(request.version);
    await this.gate(signal);
    return this.inner.delete(request, signal, options);
  }
  async getDocument(namespace: string, documentId: string, signal?: AbortSignal, options?: ShardCallOptions): Promise<DocumentResponse | undefined> {
    this.calls.getDocument += 1;
    await this.gate(signal);
    return this.inner.getDocument(namespace, documentId, signal, options);
  }
  async stats(signal?: AbortSignal): Promise<StatsResponse> {
    this.calls.stats += 1;
    const failure = this.failure?.();
    if (failure !== undefined) throw failure;
    return { ...(await this.inner.stats(signal)), state: this.state };
  }
  async close(): Promise<void> {}
}
