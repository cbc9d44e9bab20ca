// The synchronous core a shard process serves over HTTP. IndexStore implements it; the
// in-process ShardClient wraps it directly so unit tests exercise the same logic without
// sockets. Methods throw RagwayError (gateway/errors.ts) for bad input.
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

export interface ShardStore {
  search(request: SearchRequest): SearchResponse;
  upsert(request: UpsertRequest): UpsertResponse;
  delete(request: DeleteRequest): DeleteResponse;
  getDocument(namespace: string, documentId: string): DocumentResponse | undefined;
  stats(): StatsResponse;
}
