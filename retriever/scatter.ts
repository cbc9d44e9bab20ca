// The shard set seen from the gateway: a search goes to every shard at once and their top-k
// lists are merged; a write goes only to the shards that own the documents it names.
//
// Failure policy (for now; replicas and partial answers come later): every shard must answer a
// search, so the first shard that fails fails the whole search with 503 naming it, and the
// calls still in flight to the other shards are aborted instead of left to finish for nobody.
// A 4xx from a shard (bad filter, wrong dimension) is the caller's mistake and passes unchanged.
import { abortError, createError, isRagwayError, throwIfAborted, type RagwayError } from '../gateway/errors.js';
import {
  encodeVector,
  type Chunk,
  type DocumentResponse,
  type SearchRequest,
  type ShardHit,
  type ShardQuery,
  type StatsResponse,
} from '../shards/protocol.js';
import { checkShard } from './check-shard.js';
import { mergeTopK } from './merge.js';
import { shardForDocument } from './routing.js';
import type { ShardClient } from './shard-client.js';

/** The shard search endpoint's limit on queries per request (SearchRequest.queries maxItems). */
export const MAX_QUERIES_PER_REQUEST = 1024;

export interface ScatterObserver {
  /**
   * One call per shard request that reached an outcome of its own. `ok` is false when the
   * shard could not answer (transport, timeout, 5xx); a 4xx answer is the caller's mistake and
   * counts as ok. Calls cancelled because the caller left or a sibling shard failed are not
   * reported: their duration says nothing about the shard.
   */
  onShardLatency?(shardIndex: number, seconds: number, ok: boolean): void;
}

export interface ScatterQuery {
  vector: Float32Array;
  k: number;
  namespace: string;
  filter?: Record<string, unknown>;
  ef?: number;
}

export interface IncludeOptions {
  includeText?: boolean;
  includeMetadata?: boolean;
}

export interface SearchOptions extends IncludeOptions {
  k: number;
  namespace: string;
  filter?: Record<string, unknown>;
  ef?: number;
}

export interface Coverage {
  shards_total: number;
  shards_ok: number;
  partial: boolean;
}

export interface QueryHits {
  /** Merged top-k over all shards, best first. */
  hits: ShardHit[];
  /** True when at least one shard holds something in the query's namespace. */
  namespaceFound: boolean;
}

export interface ScatterBatchResult {
  /** One entry per query, in query order. */
  results: QueryHits[];
  coverage: Coverage;
  /** Index epoch reported by each shard, by shard index (cache keys include them). */
  epochs: number[];
  /** Round-trip time of each shard's request as seen from here, by shard index. */
  tookMs: number[];
}

export interface ScatterSearchResult extends QueryHits {
  coverage: Coverage;
  epochs: number[];
  tookMs: number[];
}

/** A chunk to write; the vector may still be a Float32Array, it is encoded here. */
export type ChunkInput = Omit<Chunk, 'vector'> & { vector: Float32Array | string };

export interface UpsertChunksOptions {
  /** Drop the chunks of each named document that this call does not carry (re-ingest). */
  replaceDocuments?: boolean;
}

export interface UpsertSummary {
  upserted: number;
  removed: number;
  /** New epoch of each shard written to, by shard index; undefined for shards not touched. */
  epochs: (number | undefined)[];
}

export interface DeleteSummary {
  documentsDeleted: number;
  chunksDeleted: number;
  epochs: (number | undefined)[];
}

export class Scatter {
  private readonly clients: readonly ShardClient[];
  private readonly observer: ScatterObserver;

  /** `clients[i]` is shard i: the order is part of the data layout (document routing). */
  constructor(clients: readonly ShardClient[], observer: ScatterObserver = {}) {
    if (clients.length === 0) throw createError('RAGWAY_ERR_INVALID_REQUEST', 'a shard set needs at least one shard');
    this.clients = [...clients];
    this.observer = observer;
  }

  get shardCount(): number {
    return this.clients.length;
  }

  get shards(): readonly ShardClient[] {
    return this.clients;
  }

  /** The shard that owns a document (all its chunks live there). */
  shardFor(documentId: string): number {
    return shardForDocument(documentId, this.clients.length);
  }

  /** One query: the convenience over searchBatch. */
  async search(vector: Float32Array, options: SearchOptions, signal?: AbortSignal): Promise<ScatterSearchResult> {
    const { k, namespace, filter, ef, ...include } = options;
    const query: ScatterQuery = { vector, k, namespace };
    if (filter !== undefined) query.filter = filter;
    if (ef !== undefined) query.ef = ef;
    const batch = await this.searchBatch([query], include, signal);
    const result = batch.results[0] ?? { hits: [], namespaceFound: false };
    return { ...result, coverage: batch.coverage, epochs: batch.epochs, tookMs: batch.tookMs };
  }

  /**
   * Several queries in one request per shard (the micro-batched path): each shard returns its
   * top-k per query, and each query's lists are merged into the global top-k.
   */
  async searchBatch(queries: readonly ScatterQuery[], options: IncludeOptions = {}, signal?: AbortSignal): Promise<ScatterBatchResult> {
    throwIfAborted(signal);
    if (queries.length === 0) throw createError('RAGWAY_ERR_INVALID_REQUEST', 'a search needs at least one query');
    if (queries.length > MAX_QUERIES_PER_REQUEST) {
      throw createError(
        'RAGWAY_ERR_INVALID_REQUEST',
        `at most ${MAX_QUERIES_PER_REQUEST} queries per search batch, got ${queries.length}`,
      );
    }
    // Built once and shared by every shard: the base64 encoding is per query, not per shard.
    const request: SearchRequest = { queries: queries.map(toShardQuery) };
    if (options.includeText !== undefined) request.include_text = options.includeText;
    if (options.includeMetadata !== undefined) request.include_metadata = options.includeMetadata;

    const total = this.clients.length;
    const { values, tookMs } = await this.fanOut(
      `search needs all ${total} shards`,
      this.allShards(),
      async (client, shardSignal) => {
        const response = await client.search(request, shardSignal);
        if (!Array.isArray(response.results) || response.results.length !== queries.length) {
          throw createError(
            'RAGWAY_ERR_SHARD_ERROR',
            `${client.name} returned ${Array.isArray(response.results) ? response.results.length : 'no'} results for ${queries.length} queries`,
          );
        }
        return response;
      },
      signal,
    );

    const results = queries.map((query, q): QueryHits => {
      const lists: ShardHit[][] = [];
      let namespaceFound = false;
      for (const response of values) {
        const result = response.results[q];
        if (result === undefined) continue;
        lists.push(result.hits);
        namespaceFound ||= result.namespace_found;
      }
      return { hits: mergeTopK(lists, query.k), namespaceFound };
    });
    return {
      results,
      coverage: { shards_total: total, shards_ok: total, partial: false },
      epochs: values.map((response) => response.epoch),
      tookMs,
    };
  }

  /**
   * Writes chunks to the shards that own their documents, one request per shard. Writes are not
   * cancelled when a sibling fails (an upsert is idempotent, so the caller retries the whole
   * call); the error says how many shards the write reached.
   */
  async upsertChunks(chunks: readonly ChunkInput[], options: UpsertChunksOptions = {}, signal?: AbortSignal): Promise<UpsertSummary> {
    throwIfAborted(signal);
    const groups = this.groupBy(chunks, (chunk) => chunk.document_id);
    const epochs = new Array<number | undefined>(this.clients.length).fill(undefined);
    if (groups.size === 0) return { upserted: 0, removed: 0, epochs };

    const responses = await this.writeAll('upsert', groups, (client, group, shardSignal) =>
      client.upsert(
        {
          chunks: group.map(toWireChunk),
          ...(options.replaceDocuments !== undefined ? { replace_documents: options.replaceDocuments } : {}),
        },
        shardSignal,
      ),
      signal,
    );
    let upserted = 0;
    let removed = 0;
    for (const [shard, response] of responses) {
      upserted += response.upserted;
      removed += response.removed;
      epochs[shard] = response.epoch;
    }
    return { upserted, removed, epochs };
  }

  /** Deletes whole documents, each on the shard that owns it. */
  async deleteDocuments(namespace: string, documentIds: readonly string[], signal?: AbortSignal): Promise<DeleteSummary> {
    throwIfAborted(signal);
    const groups = this.groupBy([...new Set(documentIds)], (id) => id);
    const epochs = new Array<number | undefined>(this.clients.length).fill(undefined);
    if (groups.size === 0) return { documentsDeleted: 0, chunksDeleted: 0, epochs };

    const responses = await this.writeAll(
      'delete',
      groups,
      (client, ids, shardSignal) => client.delete({ namespace, document_ids: ids }, shardSignal),
      signal,
    );
    let documentsDeleted = 0;
    let chunksDeleted = 0;
    for (const [shard, response] of responses) {
      documentsDeleted += response.documents_deleted;
      chunksDeleted += response.chunks_deleted;
      epochs[shard] = response.epoch;
    }
    return { documentsDeleted, chunksDeleted, epochs };
  }

  /** Asks only the owning shard; undefined when it holds no chunk of the document. */
  async getDocument(namespace: string, documentId: string, signal?: AbortSignal): Promise<DocumentResponse | undefined> {
    const shard = this.shardFor(documentId);
    const { values } = await this.fanOut(
      'document lookup',
      [shard],
      (client, shardSignal) => client.getDocument(namespace, documentId, shardSignal),
      signal,
    );
    return values[0];
  }

  /** Every shard's stats, by shard index. */
  async stats(signal?: AbortSignal): Promise<StatsResponse[]> {
    const { values } = await this.fanOut(
      `stats need all ${this.clients.length} shards`,
      this.allShards(),
      (client, shardSignal) => client.stats(shardSignal),
      signal,
    );
    return values;
  }

  /** Checks every shard's protocol version and vector dimension (see checkShard). */
  async check(expectedDim: number, signal?: AbortSignal): Promise<StatsResponse[]> {
    return Promise.all(this.clients.map((client) => checkShard(client, expectedDim, signal)));
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.close()));
  }

  private allShards(): number[] {
    return this.clients.map((_, index) => index);
  }

  private client(shard: number): ShardClient {
    const client = this.clients[shard];
    if (client === undefined) throw createError('RAGWAY_ERR_INTERNAL', `no shard ${shard} in a set of ${this.clients.length}`);
    return client;
  }

  private groupBy<T>(items: readonly T[], documentId: (item: T) => string): Map<number, T[]> {
    const groups = new Map<number, T[]>();
    for (const item of items) {
      const shard = this.shardFor(documentId(item));
      const group = groups.get(shard);
      if (group) group.push(item);
      else groups.set(shard, [item]);
    }
    return groups;
  }

  /**
   * Calls `shards` concurrently; resolves with their values in the given order, or rejects with
   * the first failure after aborting the calls still running.
   */
  private async fanOut<T>(
    operation: string,
    shards: readonly number[],
    call: (client: ShardClient, signal: AbortSignal) => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<{ values: T[]; tookMs: number[] }> {
    throwIfAborted(signal);
    const controller = new AbortController();
    const forward = (): void => controller.abort(signal?.reason);
    signal?.addEventListener('abort', forward, { once: true });
    const tookMs = new Array<number>(shards.length).fill(0);
    try {
      const values = await Promise.all(
        shards.map(async (shard, slot) => {
          const client = this.client(shard);
          const started = performance.now();
          let value: T;
          try {
            value = await call(client, controller.signal);
          } catch (err) {
            if (signal?.aborted) throw abortError(signal);
            // Cancelled because a sibling failed first: that failure is what Promise.all reports.
            if (controller.signal.aborted) throw abortError(controller.signal);
            const failure = shardFailure(operation, client, err);
            this.observe(shard, performance.now() - started, failure.statusCode < 500);
            controller.abort(failure);
            throw failure;
          }
          // Outside the try: an observer that throws must not be mistaken for a shard failure.
          const elapsed = performance.now() - started;
          tookMs[slot] = elapsed;
          this.observe(shard, elapsed, true);
          return value;
        }),
      );
      return { values, tookMs };
    } finally {
      signal?.removeEventListener('abort', forward);
    }
  }

  /** Writes run to completion on every shard, so the error can say exactly what was applied. */
  private async writeAll<G, R>(
    operation: string,
    groups: ReadonlyMap<number, G>,
    call: (client: ShardClient, group: G, signal: AbortSignal | undefined) => Promise<R>,
    signal: AbortSignal | undefined,
  ): Promise<Map<number, R>> {
    const entries = [...groups.entries()];
    const settled = await Promise.allSettled(
      entries.map(async ([shard, group]) => {
        const client = this.client(shard);
        const started = performance.now();
        let value: R;
        try {
          value = await call(client, group, signal);
        } catch (err) {
          if (signal?.aborted) throw abortError(signal);
          const failure = shardFailure(undefined, client, err);
          this.observe(shard, performance.now() - started, failure.statusCode < 500);
          throw failure;
        }
        this.observe(shard, performance.now() - started, true);
        return value;
      }),
    );
    const results = new Map<number, R>();
    let firstFailure: RagwayError | undefined;
    settled.forEach((outcome, index) => {
      const shard = entries[index]?.[0];
      if (shard === undefined) return;
      if (outcome.status === 'fulfilled') results.set(shard, outcome.value);
      else firstFailure ??= outcome.reason as RagwayError;
    });
    if (firstFailure === undefined) return results;
    if (signal?.aborted) throw abortError(signal);
    if (firstFailure.statusCode < 500) throw firstFailure;
    throw createError(
      'RAGWAY_ERR_SHARD_UNAVAILABLE',
      `${operation} reached ${results.size} of ${entries.length} shards (it is idempotent; retry it): ${firstFailure.message}`,
      { cause: firstFailure, retryAfterSeconds: 1 },
    );
  }

  private observe(shard: number, elapsedMs: number, ok: boolean): void {
    this.observer.onShardLatency?.(shard, elapsedMs / 1000, ok);
  }
}

function toShardQuery(query: ScatterQuery): ShardQuery {
  const wire: ShardQuery = { vector: encodeVector(query.vector), k: query.k, namespace: query.namespace };
  if (query.filter !== undefined) wire.filter = query.filter;
  if (query.ef !== undefined) wire.ef = query.ef;
  return wire;
}

function toWireChunk(chunk: ChunkInput): Chunk {
  const { vector } = chunk;
  return { ...chunk, vector: typeof vector === 'string' ? vector : encodeVector(vector) };
}

/**
 * A shard's 4xx passes unchanged; anything else becomes 503 naming the shard, with the cause.
 * Errors that already name the shard (HttpShardClient's) are not wrapped twice.
 */
function shardFailure(operation: string | undefined, client: ShardClient, err: unknown): RagwayError {
  if (isRagwayError(err) && err.statusCode < 500) return err;
  let detail: string;
  if (err instanceof Error && err.message.startsWith(client.name)) {
    detail = err.message;
  } else if (isRagwayError(err)) {
    detail = `${client.name} failed: ${err.code}: ${err.message}`;
  } else {
    detail = `${client.name} failed: ${err instanceof Error ? err.message || err.name : String(err)}`;
  }
  const message = operation === undefined ? detail : `${operation}: ${detail}`;
  return createError('RAGWAY_ERR_SHARD_UNAVAILABLE', message, { cause: err, retryAfterSeconds: 1 });
}
