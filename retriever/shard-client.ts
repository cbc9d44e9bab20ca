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

export interface ShardClient {
  /** Human-readable, used in errors and metrics labels: e.g. "shard-1 (http://127.0.0.1:7001)". */
  readonly name: string;
  search(request: SearchRequest, signal?: AbortSignal): Promise<SearchResponse>;
  upsert(request: UpsertRequest, signal?: AbortSignal): Promise<UpsertResponse>;
  delete(request: DeleteRequest, signal?: AbortSignal): Promise<DeleteResponse>;
  /** Resolves undefined when the shard holds no chunk of that document. */
  getDocument(namespace: string, documentId: string, signal?: AbortSignal): Promise<DocumentResponse | undefined>;
  stats(signal?: AbortSignal): Promise<StatsResponse>;
  close(): Promise<void>;
}
