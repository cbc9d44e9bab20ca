// The shard set seen from the gateway: a search goes to every shard at once and their top-k
// lists are merged; a write goes only to the shards that own the documents it names.
//
// Each shard is usually a ReplicaSet (failover, hedging and ejection happen there); here a
// shard either answered or did not.
//
// Failure policy for searches: a shard that cannot answer (every replica failed transiently,
// or no answer before the deadline) is left out and the merge uses the others; the coverage
// says so (`partial: true`, `missing` naming each shard and why) — a partial answer is labelled,
// never passed off as complete. A caller that insists (`requireComplete`) gets 503 instead
// (504 when it was the deadline), as soon as the first shard is lost, and the calls still in
// flight are aborted rather than left to finish for nobody. When no shard answers at all there
// is nothing to return: 503/504. A 4xx from a shard (bad filter, wrong dimension) is the
// caller's mistake and fails the whole request unchanged. The calls themselves are made by
// shard-fanout.ts.
//
// Deadlines: an absolute `deadline` (Date.now() ms) travels to every shard call (the HTTP client
// sends the time left to the shard) and the scatter itself stops waiting at it, whatever the
// clients below do. Stats and document lookups still need every shard they ask.
//
// Writes carry one version from this scatter's hybrid logical clock, the same for every replica
// and shard they reach, so last-writer-wins replicas converge whatever order writes land in.
import { createError, throwIfAborted } from '../core/errors.js';
import {
  encodeVector,
  type Chunk,
  type DocumentResponse,
  type SearchRequest,
  type ShardHit,
  type LexicalStats,
  type ShardQuery,
  type StatsResponse,
} from '../shards/protocol.js';
import { checkShard } from './check-shard.js';
import { clusterView } from './cluster-view.js';
import { coverageOf } from './coverage.js';
import { addLexicalStats } from './lexical-stats.js';
import { mergeTopK } from './merge.js';
import { ReplicaSet, type ReplicaAck } from './replica-set.js';
import { shardForDocument } from './routing.js';
import {
  MAX_QUERIES_PER_REQUEST,
  type BatchSearchOptions,
  type CallOptions,
  type ChunkInput,
  type DeadlineOptions,
  type DeleteOptions,
  type DeleteSummary,
  type QueryHits,
  type ScatterBatchResult,
  type ScatterObserver,
  type ScatterOptions,
  type ScatterQuery,
  type ScatterSearchResult,
  type SearchOptions,
  type ShardView,
  type UpsertChunksOptions,
  type UpsertSummary,
} from './scatter-types.js';
import { gather, writeAll, type ShardSet } from './shard-fanout.js';
import { shardCallOptions, type ShardClient } from './shard-client.js';
import { VersionClock } from './version-clock.js';

export { coverageError, incompleteError, type Coverage, type MissingShard } from './coverage.js';
export * from './scatter-types.js';

export class Scatter {
  private readonly clients: readonly ShardClient[];
  private readonly observer: ScatterObserver;
  /** Issues the version of every write this scatter sends. */
  readonly versionClock: VersionClock;

  /** `clients[i]` is shard i: the order is part of the data layout (document routing). */
  constructor(clients: readonly ShardClient[], observer: ScatterObserver = {}, options: ScatterOptions = {}) {
    if (clients.length === 0) throw createError('RAGWAY_ERR_INVALID_REQUEST', 'a shard set needs at least one shard');
    this.clients = [...clients];
    this.observer = observer;
    this.versionClock = options.versionClock ?? new VersionClock();
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

  /** Starts the background health refresh of every replica set (see ReplicaSet.start). */
  start(): void {
    for (const client of this.clients) if (client instanceof ReplicaSet) client.start();
  }

  /** One query: the convenience over searchBatch. */
  async search(vector: Float32Array | undefined, options: SearchOptions, signal?: AbortSignal): Promise<ScatterSearchResult> {
    const { k, namespace, filter, ef, lexical, ids, ...batchOptions } = options;
    const query: ScatterQuery = { vector, k, namespace };
    if (lexical !== undefined) query.lexical = lexical;
    if (ids !== undefined) query.ids = ids;
    if (filter !== undefined) query.filter = filter;
    if (ef !== undefined) query.ef = ef;
    const batch = await this.searchBatch([query], batchOptions, signal);
    const result = batch.results[0] ?? { hits: [], namespaceFound: false };
    return { ...result, coverage: batch.coverage, epochs: batch.epochs, tookMs: batch.tookMs };
  }

  /**
   * Several queries in one request per shard (the micro-batched path): each shard returns its
   * top-k per query, and each query's lists are merged into the global top-k over the shards
   * that answered.
   */
  async searchBatch(queries: readonly ScatterQuery[], options: BatchSearchOptions = {}, signal?: AbortSignal): Promise<ScatterBatchResult> {
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
    if (options.includeVectors === true) request.include_vectors = true;

    const total = this.clients.length;
    const { values, tookMs, missing } = await gather(
      this.shardSet,
      'search',
      `search needs all ${total} shards`,
      this.allShards(),
      async (client, shardSignal, callOptions) => {
        const response = await client.search(request, shardSignal, callOptions);
        if (!Array.isArray(response.results) || response.results.length !== queries.length) {
          throw createError(
            'RAGWAY_ERR_SHARD_ERROR',
            `${client.name} returned ${Array.isArray(response.results) ? response.results.length : 'no'} results for ${queries.length} queries`,
          );
        }
        return response;
      },
      signal,
      { deadline: options.deadline, requireComplete: options.requireComplete === true, namespaces: options.namespaces, trace: options.trace },
    );

    const results = queries.map((query, q): QueryHits => {
      const lists: ShardHit[][] = [];
      let namespaceFound = false;
      let termStats: LexicalStats | undefined;
      for (const response of values) {
        const result = response?.results[q];
        if (result === undefined) continue;
        lists.push(result.hits);
        namespaceFound ||= result.namespace_found;
        if (result.term_stats !== undefined) termStats = addLexicalStats(termStats, result.term_stats);
      }
      const merged: QueryHits = { hits: mergeTopK(lists, query.k), namespaceFound };
      if (termStats !== undefined) merged.termStats = termStats;
      return merged;
    });
    const coverage = coverageOf(total, missing);
    try {
      this.observer.onCoverage?.(coverage);
    } catch {
      // A broken metric must never fail a search.
    }
    return {
      results,
      coverage,
      epochs: values.map((response) => response?.epoch ?? -1),
      tookMs,
    };
  }

  /**
   * Writes chunks to the shards that own their documents, one request per shard (a replica set
   * sends it to each of its replicas). Writes are not cancelled when a sibling fails (an upsert
   * is idempotent, so the caller retries the whole call); the error says how many shards the
   * write reached.
   */
  async upsertChunks(chunks: readonly ChunkInput[], options: UpsertChunksOptions = {}, signal?: AbortSignal): Promise<UpsertSummary> {
    throwIfAborted(signal);
    const groups = this.groupBy(chunks, (chunk) => chunk.document_id);
    const epochs = new Array<number | undefined>(this.clients.length).fill(undefined);
    const replicas = new Array<ReplicaAck[] | undefined>(this.clients.length).fill(undefined);
    if (groups.size === 0) return { upserted: 0, removed: 0, epochs, version: 0, replicas };

    const version = options.version ?? this.versionClock.next();
    const responses = await writeAll(
      this.shardSet,
      'upsert',
      groups,
      (client, group, shardSignal, callOptions) =>
        client.upsert(
          {
            chunks: group.map(toWireChunk),
            ...(options.replaceDocuments !== undefined ? { replace_documents: options.replaceDocuments } : {}),
            version,
          },
          shardSignal,
          callOptions,
        ),
      signal,
      shardCallOptions(options.deadline, options.namespaces),
    );
    let upserted = 0;
    let removed = 0;
    for (const [shard, { value, acks }] of responses) {
      upserted += value.upserted;
      removed += value.removed;
      epochs[shard] = value.epoch;
      replicas[shard] = acks;
    }
    return { upserted, removed, epochs, version, replicas };
  }

  /** Deletes whole documents, each on the shard that owns it. */
  async deleteDocuments(
    namespace: string,
    documentIds: readonly string[],
    signal?: AbortSignal,
    options: DeleteOptions = {},
  ): Promise<DeleteSummary> {
    throwIfAborted(signal);
    const groups = this.groupBy([...new Set(documentIds)], (id) => id);
    const epochs = new Array<number | undefined>(this.clients.length).fill(undefined);
    const replicas = new Array<ReplicaAck[] | undefined>(this.clients.length).fill(undefined);
    if (groups.size === 0) return { documentsDeleted: 0, chunksDeleted: 0, epochs, version: 0, replicas };

    const version = options.version ?? this.versionClock.next();
    const responses = await writeAll(
      this.shardSet,
      'delete',
      groups,
      (client, ids, shardSignal, callOptions) => client.delete({ namespace, document_ids: ids, version }, shardSignal, callOptions),
      signal,
      shardCallOptions(options.deadline, options.namespaces),
    );
    let documentsDeleted = 0;
    let chunksDeleted = 0;
    for (const [shard, { value, acks }] of responses) {
      documentsDeleted += value.documents_deleted;
      chunksDeleted += value.chunks_deleted;
      epochs[shard] = value.epoch;
      replicas[shard] = acks;
    }
    return { documentsDeleted, chunksDeleted, epochs, version, replicas };
  }

  /** Asks only the owning shard; undefined when it holds no chunk of the document. */
  async getDocument(
    namespace: string,
    documentId: string,
    signal?: AbortSignal,
    options: CallOptions = {},
  ): Promise<DocumentResponse | undefined> {
    const shard = this.shardFor(documentId);
    const { values } = await gather(
      this.shardSet,
      'document lookup',
      'document lookup',
      [shard],
      (client, shardSignal, callOptions) => client.getDocument(namespace, documentId, shardSignal, callOptions),
      signal,
      { deadline: options.deadline, requireComplete: true, namespaces: options.namespaces },
    );
    return values[0];
  }

  /** Every shard's stats, by shard index (one ready replica's, for a replica set). */
  async stats(signal?: AbortSignal, options: DeadlineOptions = {}): Promise<StatsResponse[]> {
    const { values } = await gather(
      this.shardSet,
      'stats',
      `stats need all ${this.clients.length} shards`,
      this.allShards(),
      (client, shardSignal, callOptions) => client.stats(shardSignal, callOptions),
      signal,
      { deadline: options.deadline, requireComplete: true },
    );
    return values as StatsResponse[];
  }

  /** Checks every shard's (every replica's) protocol version and vector dimension (see checkShard). */
  async check(expectedDim: number, signal?: AbortSignal): Promise<StatsResponse[]> {
    return Promise.all(
      this.clients.map((client) => (client instanceof ReplicaSet ? client.check(expectedDim, signal) : checkShard(client, expectedDim, signal))),
    );
  }

  /** The cluster view: every shard's replicas with state, epoch, counts, latency and load (see clusterView). */
  cluster(signal?: AbortSignal, maxAgeMs = 2_000): Promise<ShardView[]> {
    return clusterView(this.clients, signal, maxAgeMs);
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.close()));
  }

  private allShards(): number[] {
    return this.clients.map((_, index) => index);
  }

  /** What the fan-outs need: shard i's client, and the latency hook. */
  private readonly shardSet: ShardSet = {
    client: (shard) => this.client(shard),
    observe: (shard, elapsedMs, ok) => this.observe(shard, elapsedMs, ok),
  };

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

  /** Runs inside promise callbacks, where a throwing metric hook would strand the request: dropped. */
  private observe(shard: number, elapsedMs: number, ok: boolean): void {
    try {
      this.observer.onShardLatency?.(shard, elapsedMs / 1000, ok);
    } catch {
      // A broken metric must never fail or hang a search.
    }
  }
}

function toShardQuery(query: ScatterQuery): ShardQuery {
  const wire: ShardQuery = { k: query.k, namespace: query.namespace };
  if (query.vector !== undefined) wire.vector = encodeVector(query.vector);
  const { lexical } = query;
  if (lexical !== undefined) {
    wire.mode = 'lexical';
    wire.text = lexical.text;
    if (lexical.stats !== undefined) wire.lexical_stats = lexical.stats;
    if (lexical.statsOnly === true) wire.stats_only = true;
    if (lexical.bm25 !== undefined) wire.bm25 = lexical.bm25;
  }
  if (query.ids !== undefined) {
    wire.mode = 'ids';
    wire.ids = [...query.ids];
  }
  if (query.filter !== undefined) wire.filter = query.filter;
  if (query.ef !== undefined) wire.ef = query.ef;
  return wire;
}

function toWireChunk(chunk: ChunkInput): Chunk {
  const { vector } = chunk;
  return { ...chunk, vector: typeof vector === 'string' ? vector : encodeVector(vector) };
}
