// One shard seen as a set of replicas holding the same data. It is itself a ShardClient, so the
// scatter above it does not care whether a shard has one replica or five.
//
// The work is split along its seams: replica-choice.ts (which replica a read goes to),
// hedged-read.ts (failover and hedging of one read), hedge-policy.ts (when to hedge and the
// budget for it), replica-writes.ts (the write fan-out), replica-membership.ts (ejection,
// probing and the background refresh), replica-failure.ts (what a failure means, and the
// messages), replica-changes.ts (replicas joining and leaving). This file wires them together
// and answers the cluster view.
import { abortError, createError, isRagwayError } from '../core/errors.js';
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
import { checkShard } from './check-shard.js';
import { DEFAULT_HEDGE, HedgePolicy } from './hedge-policy.js';
import { hedgedRead, type ReadContext, type ReplicaCall } from './hedged-read.js';
import { HttpShardClient, type HttpShardClientOptions } from './http-shard-client.js';
import { Replica, urlOf } from './replica.js';
import { describeFailure, ReplicaMessages } from './replica-failure.js';
import { ReplicaMembership } from './replica-membership.js';
import { joinReplica, retireReplica, type ChangeContext } from './replica-changes.js';
import {
  safeEmit,
  type EjectionOptions,
  type ReplicaSetCounters,
  type ReplicaSetObserver,
  type ReplicaSetOptions,
  type ReplicaView,
  type WithAcks,
} from './replica-types.js';
import { writeToReplicas, type ReplicaWrite } from './replica-writes.js';
import type { ShardCallOptions, ShardClient } from './shard-client.js';

export { LatencyWindow } from './latency-window.js';
export type { ReplicaHealth } from './replica.js';
export type {
  EjectionOptions,
  HedgeOptions,
  ReplicaAck,
  ReplicaCallOutcome,
  ReplicaSetCounters,
  ReplicaSetObserver,
  ReplicaSetOptions,
  ReplicaView,
  WithAcks,
} from './replica-types.js';

const DEFAULT_EJECTION: EjectionOptions = { failures: 3, baseBackoffMs: 250, maxBackoffMs: 1_000 };
const DEFAULT_PROBE_INTERVAL_MS = 1_000;
const DEFAULT_PROBE_TIMEOUT_MS = 1_000;
const DEFAULT_LATENCY_WINDOW = 256;

export class ReplicaSet implements ShardClient {
  readonly name: string;
  readonly shard: number;
  readonly label: string;
  readonly #replicas: Replica[];
  readonly #membership: ReplicaMembership;
  readonly #messages: ReplicaMessages;
  readonly #hedge: HedgePolicy;
  readonly #counters: ReplicaSetCounters = { searches: 0, hedges: 0, hedgesWon: 0, failovers: 0 };
  readonly #read: ReadContext;
  readonly #changes: ChangeContext;

  /** HTTP replicas from URLs, labelled after the shard (what the gateway builds from its spec). */
  static fromUrls(urls: readonly string[], options: ReplicaSetOptions & { http?: HttpShardClientOptions } = {}): ReplicaSet {
    const { http, ...setOptions } = options;
    const label = setOptions.label ?? `shard-${setOptions.shard ?? 0}`;
    return new ReplicaSet(
      urls.map((url) => new HttpShardClient(url, { ...http, label })),
      setOptions,
    );
  }

  constructor(clients: readonly ShardClient[], options: ReplicaSetOptions = {}) {
    if (clients.length === 0 && options.discovered !== true) {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', 'a replica set needs at least one replica');
    }
    this.shard = options.shard ?? 0;
    this.label = options.label ?? `shard-${this.shard}`;
    this.name = this.label;
    const window = options.latencyWindow ?? DEFAULT_LATENCY_WINDOW;
    const create = (client: ShardClient, url: string): Replica => new Replica(client, url, window);
    this.#replicas = clients.map((client) => create(client, urlOf(client)));
    const ejection = { ...DEFAULT_EJECTION, ...options.ejection };
    const observer: ReplicaSetObserver = options.observer ?? {};
    const emit = (hook: (observer: ReplicaSetObserver) => void): void => safeEmit(observer, hook);
    const random = options.random ?? Math.random;
    this.#membership = new ReplicaMembership(this.#replicas, {
      shard: this.shard,
      ejection,
      emit,
      random,
      probeIntervalMs: options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS,
      probeTimeoutMs: options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
    });
    this.#messages = new ReplicaMessages(this.label, this.#replicas, ejection.failures);
    this.#hedge = new HedgePolicy({ ...DEFAULT_HEDGE, ...options.hedge }, this.#replicas, window);
    this.#read = {
      shard: this.shard,
      label: this.label,
      membership: this.#membership,
      hedge: this.#hedge,
      messages: this.#messages,
      counters: this.#counters,
      random,
      emit,
    };
    this.#changes = { shard: this.shard, replicas: this.#replicas, membership: this.#membership, emit, create };
  }

  /** The replicas' URLs, in the set's order. */
  get urls(): string[] {
    return this.#replicas.map((replica) => replica.url);
  }

  /**
   * Adds a replica (discovery): it takes writes at once and reads once a probe finds it ready.
   * False, and nothing changes, when a replica with its URL is already in the set.
   */
  addReplica(client: ShardClient): boolean {
    return joinReplica(this.#changes, client);
  }

  /** Removes a replica (discovery); resolves once its in-flight calls are over and its client closed. */
  removeReplica(url: string): Promise<boolean> {
    return retireReplica(this.#changes, url);
  }

  /** The shard index the replica reported in its latest stats (`ragway shard --shard-index`), if any. */
  reportedShardIndex(url: string): number | undefined {
    return this.#replicas.find((replica) => replica.url === url)?.stats?.shard_index;
  }

  /** The replicas' clients, in the order given. */
  get replicas(): readonly ShardClient[] {
    return this.#replicas.map((replica) => replica.client);
  }

  get counters(): Readonly<ReplicaSetCounters> {
    return { ...this.#counters };
  }

  /** The delay after which a search is hedged now; undefined while hedging is off or unsure. */
  get hedgeDelayMs(): number | undefined {
    return this.#hedge.delayMs;
  }

  search(request: SearchRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<SearchResponse> {
    return this.#readOne('search', (client, s, o) => client.search(request, s, o), signal, options, true);
  }

  getDocument(
    namespace: string,
    documentId: string,
    signal?: AbortSignal,
    options?: ShardCallOptions,
  ): Promise<DocumentResponse | undefined> {
    return this.#readOne('document lookup', (client, s, o) => client.getDocument(namespace, documentId, s, o), signal, options, false);
  }

  /** One ready replica's stats (the view of every replica is view()). */
  stats(signal?: AbortSignal, options?: ShardCallOptions): Promise<StatsResponse> {
    return this.#readOne('stats', (client, s, o) => client.stats(s, o), signal, options, false);
  }

  upsert(request: UpsertRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<WithAcks<UpsertResponse>> {
    return this.#write('upsert', (client, s, o) => client.upsert(request, s, o), signal, options);
  }

  delete(request: DeleteRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<WithAcks<DeleteResponse>> {
    return this.#write('delete', (client, s, o) => client.delete(request, s, o), signal, options);
  }

  /**
   * Checks every replica's protocol and dimension. A mismatch anywhere throws (it is a
   * deployment mistake); replicas that merely do not answer are tolerated while one does.
   */
  async check(expectedDim: number, signal?: AbortSignal): Promise<StatsResponse> {
    // A snapshot: discovery may change the set while the checks run.
    const replicas = [...this.#replicas];
    const outcomes = await Promise.allSettled(replicas.map((replica) => checkShard(replica.client, expectedDim, signal)));
    let first: StatsResponse | undefined;
    const failures: string[] = [];
    outcomes.forEach((outcome, index) => {
      const replica = replicas[index] as Replica;
      if (outcome.status === 'fulfilled') {
        this.#membership.noteStats(replica, outcome.value);
        first ??= outcome.value;
        return;
      }
      const err: unknown = outcome.reason;
      if (isRagwayError(err) && (err.statusCode < 500 || err.code === 'RAGWAY_ERR_NOT_READY')) throw err;
      replica.checkedAt = Date.now();
      failures.push(describeFailure(replica, err));
    });
    if (signal?.aborted) throw abortError(signal);
    if (first !== undefined) return first;
    throw createError('RAGWAY_ERR_SHARD_UNAVAILABLE', this.#messages.failed(failures.length, 'check', failures), { retryAfterSeconds: 1 });
  }

  /** Every replica as the gateway sees it now (stats are as fresh as the last refresh). */
  view(): ReplicaView[] {
    const now = Date.now();
    return this.#replicas.map((replica) => ({
      url: replica.url,
      state: replica.health,
      epoch: replica.stats?.epoch ?? null,
      wal_seq: replica.stats?.wal_seq ?? null,
      documents: replica.stats?.documents ?? null,
      chunks: replica.stats?.count ?? null,
      latency_ewma_ms: replica.ewmaMs ?? null,
      latency_p95_ms: replica.latencies.percentile(0.95) ?? null,
      in_flight: replica.inFlight,
      consecutive_failures: replica.consecutiveFailures,
      last_error: replica.lastError ?? null,
      stats_age_ms: replica.stats === undefined ? null : now - replica.statsAt,
      anti_entropy: replica.stats?.anti_entropy ?? null,
    }));
  }

  /** Time since the least recently contacted replica was asked for stats; Infinity before all were. */
  get viewAgeMs(): number {
    return this.#membership.viewAgeMs;
  }

  /** Asks every replica for its stats and readiness now (see ReplicaMembership.refresh). */
  refresh(): Promise<void> {
    return this.#membership.refresh();
  }

  /** Starts the periodic refresh (unref'd: it never keeps the process alive). Idempotent. */
  start(): void {
    this.#membership.start();
  }

  /** Stops the periodic refresh (probes of ejected replicas go on until close()). */
  stop(): void {
    this.#membership.stop();
  }

  async close(): Promise<void> {
    this.#membership.close();
    await Promise.all(this.#replicas.map((replica) => replica.client.close()));
  }

  #readOne<T>(operation: string, call: ReplicaCall<T>, signal: AbortSignal | undefined, options: ShardCallOptions | undefined, hedgeable: boolean): Promise<T> {
    return hedgedRead(this.#read, { operation, call, signal, options, hedgeable });
  }

  #write<T extends object>(operation: string, call: ReplicaWrite<T>, signal: AbortSignal | undefined, options: ShardCallOptions | undefined): Promise<WithAcks<T>> {
    return writeToReplicas({ membership: this.#membership, messages: this.#messages }, operation, call, signal, options);
  }
}

/**
 * One ReplicaSet per shard from a parsed shard spec (gateway/config.ts parseShardSpec:
 * `;` between shards, `,` between a shard's replicas). Shard i is labelled "shard-i".
 */
export function replicaSetsFromSpec(
  shards: readonly (readonly string[])[],
  options: Omit<ReplicaSetOptions, 'shard' | 'label'> & { http?: HttpShardClientOptions } = {},
): ReplicaSet[] {
  return shards.map((urls, shard) => ReplicaSet.fromUrls(urls, { ...options, shard, label: `shard-${shard}` }));
}
