// The synchronous core a shard process serves over HTTP. IndexStore implements it; the
// in-process ShardClient wraps it directly so unit tests exercise the same logic without
// sockets. Methods throw RagwayError (core/errors.ts) for bad input.
import type {
  DeleteRequest,
  DeleteResponse,
  DocumentResponse,
  SearchRequest,
  SearchResponse,
  StatsResponse,
  UpsertRequest,
  UpsertResponse,
} from './protocol.js';

export interface SearchOptions {
  /**
   * Absolute deadline (a `Date.now()` timestamp in ms): checked before the search and before
   * each query of a batch, throwing RAGWAY_ERR_DEADLINE_EXCEEDED once nobody can use the rest.
   */
  deadline?: number;
  /** Aborted when the caller went away; checked at the same points. */
  signal?: AbortSignal;
}

export interface ShardStore {
  search(request: SearchRequest, options?: SearchOptions): SearchResponse;
  upsert(request: UpsertRequest): UpsertResponse;
  delete(request: DeleteRequest): DeleteResponse;
  getDocument(namespace: string, documentId: string): DocumentResponse | undefined;
  stats(): StatsResponse;
}
