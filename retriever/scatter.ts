// The shard set seen from the gateway: a search goes to every shard at once and their top-k
// lists are merged; a write goes only to the shards that own the documents it names.
//
// Each shard is usually a ReplicaSet (failover, hedging and ejection happen there); here a
// shard either answered or did not.
//
// Failure policy for searches: a shard that cannot answer (every replica failed transiently,
// or no answer before the deadline) is left out and the merge uses the others; the coverage
// says so (`partial: true`, `missing` naming each shard and why) — a partial answer is labelled,
// never passed off as complete (ARCHITECTURE §4). A caller that insists (`requireComplete`)
// gets 503 instead (504 when it was the deadline), as soon as the first shard is lost, and the
// calls still in flight are aborted rather than left to finish for nobody. When no shard
// answers at all there is nothing to return: 503/504. A 4xx from a shard (bad filter, wrong
// dimension) is the caller's mistake and fails the whole request unchanged.
//
// Deadlines: an absolute `deadline` (Date.now() ms) travels to every shard call (the HTTP client
// sends the time left to the shard) and the scatter itself stops waiting at it, whatever the
// clients below do. Stats and document lookups still need every shard they ask.
//
// Writes carry one version from this scatter's hybrid logical clock, the same for every replica
// and shard they reach, so last-writer-wins replicas converge whatever order writes land in.
import { abortError, createError, isRagwayError, throwIfAborted, type ErrorCode, type RagwayError } from '../core/errors.js';
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
import { ReplicaSet, type ReplicaAck, type ReplicaSetObserver, type ReplicaView } from './replica-set.js';
import { shardForDocument } from './routing.js';
import type { ShardCallOptions, ShardClient } from './shard-client.js';
import { VersionClock } from './version-clock.js';

/** The shard search endpoint's limit on queries per request (SearchRequest.queries maxItems). */
export const MAX_QUERIES_PER_REQUEST = 1024;

/**
 * Metric hooks. The replica hooks (hedges, ejections) are called by the ReplicaSets given the
 * same observer, not by the scatter; one object can serve both.
 */
export interface ScatterObserver extends ReplicaSetObserver {
  /**
   * One call per shard request that reached an outcome of its own. `ok` is false when the
   * shard could not answer (transport, timeout, 5xx); a 4xx answer is the caller's mistake and
   * counts as ok. A shard that missed the deadline is reported not ok. Calls cancelled because
   * the caller left or a sibling shard failed are not reported: their duration says nothing
   * about the shard.
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

export interface DeadlineOptions {
  /** Absolute deadline, a Date.now() timestamp in ms; no deadline when absent. */
  deadline?: number;
}

export interface CompletenessOptions {
  /** Fail (503, or 504 for a missed deadline) rather than answer without every shard. */
  requireComplete?: boolean;
}

export interface BatchSearchOptions extends IncludeOptions, DeadlineOptions, CompletenessOptions {}

export interface SearchOptions extends IncludeOptions, DeadlineOptions, CompletenessOptions {
  k: number;
  namespace: string;
  filter?: Record<string, unknown>;
  ef?: number;
}

/** A shard left out of an answer, and why. */
export interface MissingShard {
  shard: number;
  /** RAGWAY_ERR_SHARD_UNAVAILABLE (no replica could answer) or RAGWAY_ERR_DEADLINE_EXCEEDED. */
  code: ErrorCode;
  /** e.g. "shard-1: 2 of 2 replicas failed (search): http://… unavailable: connect ECONNREFUSED; …" */
  reason: string;
}

export interface Coverage {
  shards_total: number;
  shards_ok: number;
  partial: boolean;
  /** Present only when partial: the shards left out, by shard index. */
  missing?: MissingShard[];
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
  /** Index epoch reported by each shard, by shard index (cache keys include them); -1 for a missing shard. */
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

export interface UpsertChunksOptions extends DeadlineOptions {
  /** Drop the chunks of each named document that this call does not carry (re-ingest). */
  replaceDocuments?: boolean;
  /** The write's version; default: the next one from this scatter's clock. */
  version?: number;
}

export interface DeleteOptions extends DeadlineOptions {
  version?: number;
}

export interface UpsertSummary {
  upserted: number;
  removed: number;
  /** New epoch of each shard written to, by shard index; undefined for shards not touched. */
  epochs: (number | undefined)[];
  /** The version every replica was given (0 when nothing was written). */
  version: number;
  /** Which replicas of each shard acknowledged, by shard index; undefined for shards not touched. */
  replicas: (ReplicaAck[] | undefined)[];
}

export interface DeleteSummary {
  documentsDeleted: number;
  chunksDeleted: number;
  epochs: (number | undefined)[];
  version: number;
  replicas: (ReplicaAck[] | undefined)[];
}

export interface ScatterOptions {
  /** Issues write versions; default a fresh clock owned by this scatter. */
  versionClock?: VersionClock;
}

/** One shard in the cluster view (GET /v1/cluster). */
export interface ShardView {
  shard: number;
  name: string;
  replicas: ReplicaView[];
}

interface Gathered<T> {
  /** By slot; undefined for a missing shard. */
  values: (T | undefined)[];
  tookMs: number[];
  missing: MissingShard[];
}

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
  async search(vector: Float32Array, options: SearchOptions, signal?: AbortSignal): Promise<ScatterSearchResult> {
    const { k, namespace, filter, ef, ...batchOptions } = options;
    const query: ScatterQuery = { vector, k, namespace };
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

    const total = this.clients.length;
    const { values, tookMs, missing } = await this.gather(
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
      { deadline: options.deadline, requireComplete: options.requireComplete === true },
    );

    const results = queries.map((query, q): QueryHits => {
      const lists: ShardHit[][] = [];
      let namespaceFound = false;
      for (const response of values) {
        const result = response?.results[q];
        if (result === undefined) continue;
        lists.push(result.hits);
        namespaceFound ||= result.namespace_found;
      }
      return { hits: mergeTopK(lists, query.k), namespaceFound };
    });
    const coverage: Coverage =
      missing.length === 0
        ? { shards_total: total, shards_ok: total, partial: false }
        : { shards_total: total, shards_ok: total - missing.length, partial: true, missing };
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
    const responses = await this.writeAll(
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
      options.deadline,
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
    const responses = await this.writeAll(
      'delete',
      groups,
      (client, ids, shardSignal, callOptions) => client.delete({ namespace, document_ids: ids, version }, shardSignal, callOptions),
      signal,
      options.deadline,
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
    options: DeadlineOptions = {},
  ): Promise<DocumentResponse | undefined> {
    const shard = this.shardFor(documentId);
    const { values } = await this.gather(
      'document lookup',
      'document lookup',
      [shard],
      (client, shardSignal, callOptions) => client.getDocument(namespace, documentId, shardSignal, callOptions),
      signal,
      { deadline: options.deadline, requireComplete: true },
    );
    return values[0];
  }

  /** Every shard's stats, by shard index (one ready replica's, for a replica set). */
  async stats(signal?: AbortSignal, options: DeadlineOptions = {}): Promise<StatsResponse[]> {
    const { values } = await this.gather(
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

  /**
   * The cluster view: every shard's replicas with state, epoch, counts, latency and load.
   * Replica sets answer from their background refresh, refreshed here first when older than
   * `maxAgeMs`; a plain client is asked for its stats now.
   */
  async cluster(signal?: AbortSignal, maxAgeMs = 2_000): Promise<ShardView[]> {
    throwIfAborted(signal);
    return Promise.all(
      this.clients.map(async (client, shard): Promise<ShardView> => {
        if (client instanceof ReplicaSet) {
          if (client.viewAgeMs > maxAgeMs) await client.refresh();
          return { shard, name: client.name, replicas: client.view() };
        }
        const url = (client as { url?: unknown }).url;
        const base = { url: typeof url === 'string' ? url : client.name, latency_ewma_ms: null, latency_p95_ms: null, in_flight: 0, consecutive_failures: 0, stats_age_ms: 0 };
        try {
          const stats = await client.stats(signal);
          const state = (stats.state as string | undefined) === 'catching-up' ? 'catching-up' : 'ready';
          return {
            shard,
            name: client.name,
            replicas: [
              {
                ...base,
                state,
                epoch: stats.epoch,
                wal_seq: stats.wal_seq ?? null,
                documents: stats.documents,
                chunks: stats.count,
                last_error: null,
                anti_entropy: stats.anti_entropy ?? null,
              },
            ],
          };
        } catch (err) {
          if (signal?.aborted) throw abortError(signal);
          const message = err instanceof Error ? err.message : String(err);
          return {
            shard,
            name: client.name,
            replicas: [
              { ...base, state: 'down', epoch: null, wal_seq: null, documents: null, chunks: null, last_error: message, stats_age_ms: null, anti_entropy: null },
            ],
          };
        }
      }),
    );
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
   * Calls `shards` concurrently and collects what they answer by the deadline. A shard that
   * fails transiently or misses the deadline becomes `missing`; with `requireComplete` the
   * first such shard fails the whole call (`requirement` opens the message) and the others are
   * aborted. A 4xx fails the whole call at once. When no shard answered at all the call fails.
   */
  private gather<T>(
    operation: string,
    requirement: string,
    shards: readonly number[],
    call: (client: ShardClient, signal: AbortSignal, options: ShardCallOptions | undefined) => Promise<T>,
    signal: AbortSignal | undefined,
    policy: { deadline: number | undefined; requireComplete: boolean },
  ): Promise<Gathered<T>> {
    throwIfAborted(signal);
    const { deadline, requireComplete } = policy;
    if (deadline !== undefined && Date.now() >= deadline) {
      return Promise.reject(createError('RAGWAY_ERR_DEADLINE_EXCEEDED', `${operation}: the deadline passed before any shard was asked`));
    }
    const callOptions: ShardCallOptions | undefined = deadline === undefined ? undefined : { deadline };
    return new Promise<Gathered<T>>((resolve, reject) => {
      const controllers = shards.map(() => new AbortController());
      const finished = shards.map(() => false);
      const started = shards.map(() => performance.now());
      const values = new Array<T | undefined>(shards.length).fill(undefined);
      const tookMs = new Array<number>(shards.length).fill(0);
      const missing: MissingShard[] = [];
      let pending = shards.length;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;

      const finish = (): void => {
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const fail = (err: RagwayError): void => {
        if (settled) return;
        finish();
        for (const [slot, controller] of controllers.entries()) if (!finished[slot]) controller.abort(err);
        reject(err);
      };
      const onAbort = (): void => fail(abortError(signal as AbortSignal));
      const complete = (): void => {
        if (settled || pending > 0) return;
        finish();
        missing.sort((a, b) => a.shard - b.shard);
        if (missing.length === shards.length) reject(nothingAnswered(operation, missing));
        else resolve({ values, tookMs, missing });
      };
      /** Marks a slot done; false when it already was (a late answer after the deadline). */
      const close = (slot: number): boolean => {
        if (settled || finished[slot]) return false;
        finished[slot] = true;
        pending -= 1;
        tookMs[slot] = performance.now() - (started[slot] as number);
        return true;
      };
      const lose = (slot: number, shard: number, failure: RagwayError): void => {
        this.observe(shard, tookMs[slot] as number, false);
        missing.push({ shard, code: failure.code, reason: failure.message });
        if (requireComplete) fail(incompleteError(requirement, [failure]));
        else complete();
      };

      signal?.addEventListener('abort', onAbort, { once: true });
      if (deadline !== undefined) {
        // Whatever the clients below do, nobody waits past the deadline.
        timer = setTimeout(() => {
          shards.forEach((shard, slot) => {
            if (!close(slot)) return;
            const failure = createError(
              'RAGWAY_ERR_DEADLINE_EXCEEDED',
              `${this.client(shard).name}: no answer before the deadline (waited ${Math.round(tookMs[slot] as number)} ms)`,
            );
            controllers[slot]?.abort(failure);
            lose(slot, shard, failure);
          });
        }, Math.max(0, deadline - Date.now()));
      }

      shards.forEach((shard, slot) => {
        const client = this.client(shard);
        const controller = controllers[slot] as AbortController;
        let promise: Promise<T>;
        try {
          promise = call(client, controller.signal, callOptions);
        } catch (err) {
          promise = Promise.reject(err);
        }
        promise.then(
          (value) => {
            if (!close(slot)) return;
            values[slot] = value;
            this.observe(shard, tookMs[slot] as number, true);
            complete();
          },
          (err: unknown) => {
            if (!close(slot)) return;
            if (signal?.aborted) {
              fail(abortError(signal));
              return;
            }
            const failure = shardFailure(undefined, client, err);
            if (failure.statusCode < 500) {
              this.observe(shard, tookMs[slot] as number, true);
              fail(failure);
              return;
            }
            lose(slot, shard, failure);
          },
        );
      });
    });
  }

  /** Writes run to completion on every shard, so the error can say exactly what was applied. */
  private async writeAll<G, R extends object>(
    operation: string,
    groups: ReadonlyMap<number, G>,
    call: (client: ShardClient, group: G, signal: AbortSignal | undefined, options: ShardCallOptions | undefined) => Promise<R>,
    signal: AbortSignal | undefined,
    deadline: number | undefined,
  ): Promise<Map<number, { value: R; acks: ReplicaAck[] }>> {
    const entries = [...groups.entries()];
    const callOptions: ShardCallOptions | undefined = deadline === undefined ? undefined : { deadline };
    const settled = await Promise.allSettled(
      entries.map(async ([shard, group]) => {
        const client = this.client(shard);
        const started = performance.now();
        let value: R;
        try {
          value = await call(client, group, signal, callOptions);
        } catch (err) {
          if (signal?.aborted) throw abortError(signal);
          const failure = shardFailure(undefined, client, err);
          this.observe(shard, performance.now() - started, failure.statusCode < 500);
          throw failure;
        }
        this.observe(shard, performance.now() - started, true);
        return { value, acks: acksOf(client, value) };
      }),
    );
    const results = new Map<number, { value: R; acks: ReplicaAck[] }>();
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
      firstFailure.code === 'RAGWAY_ERR_DEADLINE_EXCEEDED' ? 'RAGWAY_ERR_DEADLINE_EXCEEDED' : 'RAGWAY_ERR_SHARD_UNAVAILABLE',
      `${operation} reached ${results.size} of ${entries.length} shards (it is idempotent; retry it): ${firstFailure.message}`,
      { cause: firstFailure, retryAfterSeconds: 1 },
    );
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

/**
 * The error for an answer that lacks shards the caller required: 504 when every lost shard
 * ran out of time (the request's budget was too small), 503 otherwise.
 */
export function incompleteError(requirement: string, failures: readonly { code: ErrorCode; message: string }[]): RagwayError {
  const deadline = failures.length > 0 && failures.every((failure) => failure.code === 'RAGWAY_ERR_DEADLINE_EXCEEDED');
  const message = `${requirement}: ${failures.map((failure) => failure.message).join('; ')}`;
  return deadline
    ? createError('RAGWAY_ERR_DEADLINE_EXCEEDED', message)
    : createError('RAGWAY_ERR_SHARD_UNAVAILABLE', message, { retryAfterSeconds: 1 });
}

/** For callers that asked for a complete answer but share a batch that was allowed to be partial. */
export function coverageError(coverage: Coverage, requirement = `search needs all ${coverage.shards_total} shards`): RagwayError | undefined {
  if (!coverage.partial) return undefined;
  return incompleteError(requirement, (coverage.missing ?? []).map((entry) => ({ code: entry.code, message: entry.reason })));
}

function nothingAnswered(operation: string, missing: readonly MissingShard[]): RagwayError {
  return incompleteError(
    `${operation}: no shard answered (${missing.length} of ${missing.length} missing)`,
    missing.map((entry) => ({ code: entry.code, message: entry.reason })),
  );
}

/** Replica acknowledgements of a write: a replica set reports them; a plain client is its own one replica. */
function acksOf(client: ShardClient, response: object): ReplicaAck[] {
  const replicas = (response as { replicas?: unknown }).replicas;
  if (Array.isArray(replicas)) return replicas as ReplicaAck[];
  const url = (client as { url?: unknown }).url;
  return [{ url: typeof url === 'string' ? url : client.name, ok: true }];
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
 * A shard's 4xx passes unchanged; a missed deadline stays a deadline (504); anything else
 * becomes 503 naming the shard, with the cause. Errors that already name the shard
 * (HttpShardClient's, ReplicaSet's) are not wrapped twice.
 */
function shardFailure(operation: string | undefined, client: ShardClient, err: unknown): RagwayError {
  // A client that reports "closed" while our caller is still here gave up on its own: transient.
  if (isRagwayError(err) && err.statusCode < 500 && err.code !== 'RAGWAY_ERR_CLIENT_CLOSED') return err;
  let detail: string;
  if (err instanceof Error && err.message.startsWith(client.name)) {
    detail = err.message;
  } else if (isRagwayError(err)) {
    detail = `${client.name} failed: ${err.code}: ${err.message}`;
  } else {
    detail = `${client.name} failed: ${err instanceof Error ? err.message || err.name : String(err)}`;
  }
  const message = operation === undefined ? detail : `${operation}: ${detail}`;
  if (isRagwayError(err) && err.code === 'RAGWAY_ERR_DEADLINE_EXCEEDED') {
    return createError('RAGWAY_ERR_DEADLINE_EXCEEDED', message, { cause: err });
  }
  return createError('RAGWAY_ERR_SHARD_UNAVAILABLE', message, { cause: err, retryAfterSeconds: 1 });
}
