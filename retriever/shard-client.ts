// One interface for talking to a shard, whether it is a process across the network
// (HttpShardClient, undici Pool with keep-alive) or an IndexStore in this process
// (InProcessShardClient, for unit tests). Both pass the same contract suite
// (test/unit/retriever/shard-client-contract.ts), so code above this line never cares which.
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
import type { ShardCallTrace } from './call-trace.js';

/**
 * Per-call settings beyond the abort signal. Optional everywhere, so implementations written
 * before deadlines existed still satisfy the interface (they simply ignore it).
 */
export interface ShardCallOptions {
  /**
   * Absolute deadline (a `Date.now()` timestamp in ms). The client sends the time left to the
   * shard (DEADLINE_HEADER) so it can drop work nobody will wait for, and gives up at the
   * deadline with RAGWAY_ERR_DEADLINE_EXCEEDED instead of waiting past it.
   */
  deadline?: number;
  /** Starts the span of each replica call (hedged-read.ts); absent when tracing is off. */
  trace?: ShardCallTrace;
  /** W3C trace context of this call's span, sent as the `traceparent`/`tracestate` headers. */
  traceparent?: string;
  tracestate?: string;
  /**
   * The namespace patterns of the API key the call is made for, sent as NAMESPACES_HEADER: the
   * shard refuses any namespace outside them. Absent: the cluster's own call (epoch polls,
   * probes, /v1/cluster), unrestricted. Every layer between a route and the client passes it on.
   */
  namespaces?: readonly string[] | undefined;
}

/** The options for `deadline` and `namespaces`, or undefined when neither is set (the common path allocates nothing). */
export function shardCallOptions(deadline: number | undefined, namespaces: readonly string[] | undefined): ShardCallOptions | undefined {
  if (deadline === undefined) return namespaces === undefined ? undefined : { namespaces };
  return namespaces === undefined ? { deadline } : { deadline, namespaces };
}

export interface ShardClient {
  /** Human-readable, used in errors and metrics labels: e.g. "shard-1 (http://127.0.0.1:7001)". */
  readonly name: string;
  search(request: SearchRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<SearchResponse>;
  upsert(request: UpsertRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<UpsertResponse>;
  delete(request: DeleteRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<DeleteResponse>;
  /** Resolves undefined when the shard holds no chunk of that document. */
  getDocument(
    namespace: string,
    documentId: string,
    signal?: AbortSignal,
    options?: ShardCallOptions,
  ): Promise<DocumentResponse | undefined>;
  stats(signal?: AbortSignal, options?: ShardCallOptions): Promise<StatsResponse>;
  /**
   * Readiness probe (a shard's GET /readyz): true when it serves reads, false when it answers
   * but says it is not ready (shutting down, loading); rejects when it cannot be reached.
   * Optional: replica sets fall back to `stats().state` for clients without it.
   */
  ready?(signal?: AbortSignal): Promise<boolean>;
  close(): Promise<void>;
}
