// One shard seen as a set of replicas holding the same data. It is itself a ShardClient, so the
// scatter above it does not care whether a shard has one replica or five.
//
// Reads (search, document lookups, stats) go to ONE replica, picked by "power of two choices":
// two random candidates, the one with the lower EWMA latency × (in-flight + 1) wins. That keeps
// load off a replica that is slow or busy without herding every request onto the single
// fastest one (which pure least-latency does). Replicas that are ejected, catching up, or whose
// /readyz says 503 are not candidates.
//
// Failures (ARCHITECTURE §5.9): only transient errors (connect, reset, timeout, 5xx) move the
// read to another replica, within the caller's deadline; a 4xx is the caller's mistake and
// returns at once, since every replica would answer the same. When every replica has failed the
// error says "N of M replicas failed" and why, replica by replica. A replica that fails
// `ejection.failures` times in a row is ejected (no reads, no writes) and probed back with
// exponential backoff; it returns once it answers and says it is ready.
//
// Hedging: a search that has not answered by this shard's recent p95 (configurable) is sent to a
// second replica as well; the first answer wins and the other call is aborted. This cuts the
// tail a single slow replica (GC pause, cold page cache, noisy neighbour) adds to every fan-out.
// Hedges are paid for from a token bucket refilled by `maxExtraFraction` per search, so they
// never add more than that fraction of extra shard calls — under overload, when every call is
// slow, hedging would otherwise double the load exactly when it hurts most.
//
// Writes go to every non-ejected replica (catching-up ones included: they need the writes they
// are catching up to) with the same request, version included, so replicas converge under
// last-writer-wins. The result lists which replicas acknowledged; a write fails only when none
// did.
import { abortError, createError, isRagwayError, throwIfAborted, type ErrorCode, type RagwayError } from '../core/errors.js';
import type {
  AntiEntropyStats,
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
import { HttpShardClient, type HttpShardClientOptions } from './http-shard-client.js';
import type { ShardCallOptions, ShardClient } from './shard-client.js';

export interface HedgeOptions {
  /** Default true. */
  enabled: boolean;
  /** Latency percentile of this shard's recent searches after which a hedge is sent. Default 0.95. */
  percentile: number;
  /** Never hedge earlier than this, however fast the shard has been. Default 5 ms. */
  minDelayMs: number;
  /** Most extra shard calls hedging may add, as a fraction of searches. Default 0.1. */
  maxExtraFraction: number;
  /** Hedges that may be saved up while none are needed. Default 5. */
  burst: number;
  /** Recent searches needed before the percentile is trusted enough to hedge on. Default 20. */
  minSamples: number;
}

export interface EjectionOptions {
  /** Consecutive transient failures that eject a replica. Default 3. */
  failures: number;
  /** First probe of an ejected replica after this long; doubles per failed probe. Default 250 ms. */
  baseBackoffMs: number;
  /** Cap on the probe backoff. Default 10000 ms. */
  maxBackoffMs: number;
}

/** Metric hooks; `shard` is the shard index given in the options. A hook that throws is ignored. */
export interface ReplicaSetObserver {
  onHedge?(shard: number): void;
  onHedgeWon?(shard: number): void;
  onReplicaEjected?(shard: number, url: string): void;
  onReplicaRestored?(shard: number, url: string): void;
}

export interface ReplicaSetOptions {
  /** Shard index, passed to observer hooks and used in the default label. Default 0. */
  shard?: number;
  /** Used in errors: "shard-1: 2 of 2 replicas failed …". Default `shard-${shard}`. */
  label?: string;
  hedge?: Partial<HedgeOptions>;
  ejection?: Partial<EjectionOptions>;
  observer?: ReplicaSetObserver;
  /** Period of the background stats/readiness refresh started by start(). Default 1000 ms. */
  probeIntervalMs?: number;
  /** Limit on one probe (stats + /readyz). Default 1000 ms. */
  probeTimeoutMs?: number;
  /** Latency samples kept per replica and per shard for percentiles. Default 256. */
  latencyWindow?: number;
  /** Source of randomness for P2C and jitter (tests pass a seeded one). Default Math.random. */
  random?: () => number;
}

/** What one replica did with a write. */
export interface ReplicaAck {
  url: string;
  ok: boolean;
  /** Why it did not acknowledge. */
  error?: string;
  code?: ErrorCode;
}

export type WithAcks<T> = T & { replicas: ReplicaAck[] };

/**
 * ready: serves reads · catching-up: answers but is still copying what it missed (writes only)
 * · ejected: taken out after repeated failures, being probed · down: not answering (or /readyz 503).
 */
export type ReplicaState = 'ready' | 'catching-up' | 'ejected' | 'down';

/** One replica in the cluster view (GET /v1/cluster). */
export interface ReplicaView {
  url: string;
  state: ReplicaState;
  /** From the replica's last stats (null before the first). */
  epoch: number | null;
  wal_seq: number | null;
  documents: number | null;
  chunks: number | null;
  /** Recent search latency as seen from the gateway. */
  latency_ewma_ms: number | null;
  latency_p95_ms: number | null;
  in_flight: number;
  consecutive_failures: number;
  last_error: string | null;
  /** Age of the stats above. */
  stats_age_ms: number | null;
  /** The replica's background anti-entropy with its peers, from its stats (null without peers). */
  anti_entropy: AntiEntropyStats | null;
}

/** Counters since construction, for tests and benchmarks (metrics go through the observer). */
export interface ReplicaSetCounters {
  /** Searches started (each may become one or two shard calls). */
  searches: number;
  hedges: number;
  hedgesWon: number;
  /** Reads moved to another replica after a transient failure. */
  failovers: number;
}

const DEFAULT_HEDGE: HedgeOptions = {
  enabled: true,
  percentile: 0.95,
  minDelayMs: 5,
  maxExtraFraction: 0.1,
  burst: 5,
  minSamples: 20,
};
const DEFAULT_EJECTION: EjectionOptions = { failures: 3, baseBackoffMs: 250, maxBackoffMs: 10_000 };
const DEFAULT_PROBE_INTERVAL_MS = 1_000;
const DEFAULT_PROBE_TIMEOUT_MS = 1_000;
const DEFAULT_LATENCY_WINDOW = 256;
const EWMA_WEIGHT = 0.2;
/** A replica not sampled for this long is looked at afresh (its old latency may be stale). */
const STALE_LATENCY_MS = 5_000;
/** Keeps in-flight counts meaningful while latencies are unknown (0) or tiny. */
const SCORE_FLOOR_MS = 0.05;
/** Percentiles are re-sorted after this many new samples, not on every read. */
const PERCENTILE_REFRESH_SAMPLES = 8;

/** Recent latencies in a fixed ring; percentiles over what it holds. */
export class LatencyWindow {
  readonly #samples: Float64Array;
  #next = 0;
  #count = 0;
  #sorted: Float64Array | undefined;
  #sinceSort = 0;

  constructor(size: number) {
    this.#samples = new Float64Array(Math.max(1, Math.floor(size)));
  }

  get count(): number {
    return this.#count;
  }

  add(ms: number): void {
    this.#samples[this.#next] = ms;
    this.#next = (this.#next + 1) % this.#samples.length;
    if (this.#count < this.#samples.length) this.#count += 1;
    this.#sinceSort += 1;
  }

  /** Nearest-rank percentile (p in [0, 1]); undefined while empty. */
  percentile(p: number): number | undefined {
    if (this.#count === 0) return undefined;
    // Small windows change a lot per sample; large ones are re-sorted every few samples only.
    const stale = this.#sinceSort > 0 && (this.#sinceSort >= PERCENTILE_REFRESH_SAMPLES || this.#count < 64);
    if (this.#sorted === undefined || stale) {
      this.#sorted = this.#samples.slice(0, this.#count).sort();
      this.#sinceSort = 0;
    }
    const sorted = this.#sorted;
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
    return sorted[rank];
  }
}

class Replica {
  readonly latencies: LatencyWindow;
  ewmaMs: number | undefined;
  lastSampleAt = 0;
  inFlight = 0;
  consecutiveFailures = 0;
  ejected = false;
  /** Stats say "catching-up": gets writes, not reads. */
  catchingUp = false;
  /** /readyz answered 503. */
  notReady = false;
  /** The latest contact (call or probe) failed at the transport level. */
  contactFailed = false;
  backoffMs = 0;
  probeTimer: NodeJS.Timeout | undefined;
  probing = false;
  lastError: string | undefined;
  stats: StatsResponse | undefined;
  statsAt = 0;
  /** Last stats request, answered or not. */
  checkedAt = 0;

  constructor(
    readonly client: ShardClient,
    readonly url: string,
    window: number,
  ) {
    this.latencies = new LatencyWindow(window);
  }

  get readable(): boolean {
    return !this.ejected && !this.catchingUp && !this.notReady;
  }

  get state(): ReplicaState {
    if (this.ejected) return this.contactFailed ? 'down' : 'ejected';
    if (this.contactFailed) return 'down';
    // A catching-up replica also fails /readyz; say which kind of not-ready it is.
    if (this.catchingUp) return 'catching-up';
    if (this.notReady) return 'down';
    return 'ready';
  }

  /** Lower is better: expected wait if the call queued behind the ones already in flight. */
  score(now: number): number {
    const latency = this.ewmaMs === undefined || now - this.lastSampleAt > STALE_LATENCY_MS ? 0 : this.ewmaMs;
    return (latency + SCORE_FLOOR_MS) * (this.inFlight + 1);
  }

  observeLatency(ms: number, now: number): void {
    this.ewmaMs = this.ewmaMs === undefined ? ms : this.ewmaMs + EWMA_WEIGHT * (ms - this.ewmaMs);
    this.lastSampleAt = now;
  }
}

type Failure = 'transient' | 'deadline' | 'fatal';

/** 4xx is the request's fault (same answer everywhere); a passed deadline is the caller's budget. */
function classify(err: unknown): Failure {
  if (!isRagwayError(err)) return 'transient';
  if (err.code === 'RAGWAY_ERR_DEADLINE_EXCEEDED') return 'deadline';
  if (err.code === 'RAGWAY_ERR_CLIENT_CLOSED') return 'transient';
  return err.statusCode < 500 ? 'fatal' : 'transient';
}

function urlOf(client: ShardClient): string {
  const url = (client as { url?: unknown }).url;
  return typeof url === 'string' ? url : client.name;
}

function describe(err: unknown): string {
  if (isRagwayError(err)) return err.message;
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

interface Attempt {
  replica: Replica;
  controller: AbortController;
  started: number;
  hedge: boolean;
  /** Given up on by us (another attempt won, the caller left, the deadline passed). */
  cancelled: boolean;
}

export class ReplicaSet implements ShardClient {
  readonly name: string;
  readonly shard: number;
  readonly label: string;
  readonly #replicas: Replica[];
  readonly #shardLatencies: LatencyWindow;
  readonly #hedge: HedgeOptions;
  readonly #ejection: EjectionOptions;
  readonly #observer: ReplicaSetObserver;
  readonly #random: () => number;
  readonly #probeIntervalMs: number;
  readonly #probeTimeoutMs: number;
  readonly #counters: ReplicaSetCounters = { searches: 0, hedges: 0, hedgesWon: 0, failovers: 0 };
  #hedgeTokens = 0;
  #refreshTimer: NodeJS.Timeout | undefined;
  #refreshing = false;
  #closed = false;

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
    if (clients.length === 0) throw createError('RAGWAY_ERR_INVALID_REQUEST', 'a replica set needs at least one replica');
    this.shard = options.shard ?? 0;
    this.label = options.label ?? `shard-${this.shard}`;
    this.name = this.label;
    const window = options.latencyWindow ?? DEFAULT_LATENCY_WINDOW;
    this.#replicas = clients.map((client) => new Replica(client, urlOf(client), window));
    this.#shardLatencies = new LatencyWindow(window);
    this.#hedge = { ...DEFAULT_HEDGE, ...options.hedge };
    this.#ejection = { ...DEFAULT_EJECTION, ...options.ejection };
    this.#observer = options.observer ?? {};
    this.#random = options.random ?? Math.random;
    this.#probeIntervalMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.#probeTimeoutMs = options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
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
    if (!this.#hedge.enabled || this.#replicas.length < 2) return undefined;
    if (this.#shardLatencies.count < this.#hedge.minSamples) return undefined;
    const percentile = this.#shardLatencies.percentile(this.#hedge.percentile);
    return percentile === undefined ? undefined : Math.max(this.#hedge.minDelayMs, percentile);
  }

  search(request: SearchRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<SearchResponse> {
    return this.#read('search', (client, s, o) => client.search(request, s, o), signal, options, true);
  }

  getDocument(
    namespace: string,
    documentId: string,
    signal?: AbortSignal,
    options?: ShardCallOptions,
  ): Promise<DocumentResponse | undefined> {
    return this.#read('document lookup', (client, s, o) => client.getDocument(namespace, documentId, s, o), signal, options, false);
  }

  /** One ready replica's stats (the view of every replica is view()). */
  stats(signal?: AbortSignal, options?: ShardCallOptions): Promise<StatsResponse> {
    return this.#read('stats', (client, s, o) => client.stats(s, o), signal, options, false);
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
    const outcomes = await Promise.allSettled(this.#replicas.map((replica) => checkShard(replica.client, expectedDim, signal)));
    let first: StatsResponse | undefined;
    const failures: string[] = [];
    outcomes.forEach((outcome, index) => {
      const replica = this.#replicas[index] as Replica;
      if (outcome.status === 'fulfilled') {
        this.#noteStats(replica, outcome.value);
        first ??= outcome.value;
        return;
      }
      const err: unknown = outcome.reason;
      if (isRagwayError(err) && (err.statusCode < 500 || err.code === 'RAGWAY_ERR_NOT_READY')) throw err;
      replica.checkedAt = Date.now();
      failures.push(this.#describeFailure(replica, err));
    });
    if (signal?.aborted) throw abortError(signal);
    if (first !== undefined) return first;
    throw createError('RAGWAY_ERR_SHARD_UNAVAILABLE', this.#failedMessage(failures.length, 'check', failures), { retryAfterSeconds: 1 });
  }

  /** Every replica as the gateway sees it now (stats are as fresh as the last refresh). */
  view(): ReplicaView[] {
    const now = Date.now();
    return this.#replicas.map((replica) => ({
      url: replica.url,
      state: replica.state,
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
    const now = Date.now();
    return Math.max(...this.#replicas.map((replica) => (replica.checkedAt === 0 ? Infinity : now - replica.checkedAt)));
  }

  /**
   * Asks every replica not already being probed for its stats and readiness now: what the
   * background refresh does each period. A replica that cannot be reached counts a failure
   * (so a replica nobody reads from is still noticed, and ejected, when it dies).
   */
  async refresh(): Promise<void> {
    await Promise.all(
      this.#replicas.map(async (replica) => {
        if (replica.ejected || replica.probing || replica.probeTimer !== undefined) return;
        const error = await this.#contact(replica);
        if (this.#closed) return;
        if (error !== undefined) this.#recordFailure(replica, error);
        else if (!replica.readable) this.#scheduleProbe(replica, this.#ejection.baseBackoffMs);
      }),
    );
  }

  /** Starts the periodic refresh (unref'd: it never keeps the process alive). Idempotent. */
  start(): void {
    if (this.#closed || this.#refreshTimer !== undefined || this.#probeIntervalMs <= 0) return;
    const tick = (): void => {
      if (this.#refreshing) return;
      this.#refreshing = true;
      void this.refresh().finally(() => {
        this.#refreshing = false;
      });
    };
    this.#refreshTimer = setInterval(tick, this.#probeIntervalMs);
    this.#refreshTimer.unref();
    tick();
  }

  /** Stops the periodic refresh (probes of ejected replicas go on until close()). */
  stop(): void {
    clearInterval(this.#refreshTimer);
    this.#refreshTimer = undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.stop();
    for (const replica of this.#replicas) {
      clearTimeout(replica.probeTimer);
      replica.probeTimer = undefined;
    }
    await Promise.all(this.#replicas.map((replica) => replica.client.close()));
  }

  // ---- reads -------------------------------------------------------------------------------

  #read<T>(
    operation: string,
    call: (client: ShardClient, signal: AbortSignal, options: ShardCallOptions | undefined) => Promise<T>,
    signal: AbortSignal | undefined,
    callOptions: ShardCallOptions | undefined,
    hedgeable: boolean,
  ): Promise<T> {
    // Rejections, never synchronous throws: callers treat every ShardClient call as async.
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const deadline = callOptions?.deadline;
    const started = performance.now();
    if (deadline !== undefined && Date.now() >= deadline) {
      return Promise.reject(this.#deadlineError(operation, started, []));
    }
    const perCall: ShardCallOptions | undefined = deadline === undefined ? undefined : { deadline };
    if (hedgeable) {
      this.#counters.searches += 1;
      this.#hedgeTokens = Math.min(this.#hedge.burst, this.#hedgeTokens + this.#hedge.maxExtraFraction);
    }

    return new Promise<T>((resolve, reject) => {
      const tried = new Set<Replica>();
      const attempts = new Set<Attempt>();
      const failures: string[] = [];
      let settled = false;
      let hedgeTimer: NodeJS.Timeout | undefined;
      let deadlineTimer: NodeJS.Timeout | undefined;

      const finish = (): void => {
        settled = true;
        clearTimeout(hedgeTimer);
        clearTimeout(deadlineTimer);
        signal?.removeEventListener('abort', onAbort);
      };
      const cancelAll = (reason: unknown): void => {
        for (const attempt of attempts) {
          attempt.cancelled = true;
          attempt.controller.abort(reason);
        }
      };
      const fail = (err: RagwayError): void => {
        if (settled) return;
        finish();
        cancelAll(err);
        reject(err);
      };
      const onAbort = (): void => fail(abortError(signal as AbortSignal));

      const launch = (hedge: boolean): boolean => {
        const replica = this.#pick(tried);
        if (replica === undefined) return false;
        tried.add(replica);
        const attempt: Attempt = { replica, controller: new AbortController(), started: performance.now(), hedge, cancelled: false };
        attempts.add(attempt);
        replica.inFlight += 1;
        let pending: Promise<T>;
        try {
          pending = call(replica.client, attempt.controller.signal, perCall);
        } catch (err) {
          pending = Promise.reject(err);
        }
        pending.then(
          (value) => onSuccess(attempt, value),
          (err: unknown) => onFailure(attempt, err),
        );
        return true;
      };

      const onSuccess = (attempt: Attempt, value: T): void => {
        const elapsed = this.#endAttempt(attempts, attempt);
        if (attempt.cancelled || settled) {
          this.#noteCancelled(attempt.replica, elapsed);
          return;
        }
        this.#recordSuccess(attempt.replica, elapsed, hedgeable);
        finish();
        // The loser's answer is no longer wanted: free its connection and the shard's time.
        cancelAll(createError('RAGWAY_ERR_CLIENT_CLOSED', `${this.label}: another replica answered first`));
        resolve(value);
        if (attempt.hedge) {
          this.#counters.hedgesWon += 1;
          this.#emit((observer) => observer.onHedgeWon?.(this.shard));
        }
      };

      const onFailure = (attempt: Attempt, err: unknown): void => {
        const elapsed = this.#endAttempt(attempts, attempt);
        if (attempt.cancelled || settled) {
          this.#noteCancelled(attempt.replica, elapsed);
          return;
        }
        if (signal?.aborted) {
          fail(abortError(signal));
          return;
        }
        const kind = classify(err);
        if (kind === 'fatal') {
          // The replica answered, just not with data: it is alive.
          attempt.replica.consecutiveFailures = 0;
          attempt.replica.contactFailed = false;
          fail(err as RagwayError);
          return;
        }
        if (kind === 'deadline') {
          fail(this.#deadlineError(operation, started, failures));
          return;
        }
        failures.push(this.#describeFailure(attempt.replica, err));
        this.#recordFailure(attempt.replica, err);
        // A hedge still running may yet answer; only when nothing is left do we move on.
        if (attempts.size > 0) return;
        if (launch(false)) {
          this.#counters.failovers += 1;
          return;
        }
        fail(this.#unavailableError(operation, tried, failures));
      };

      signal?.addEventListener('abort', onAbort, { once: true });
      if (deadline !== undefined) {
        deadlineTimer = setTimeout(() => fail(this.#deadlineError(operation, started, failures)), Math.max(0, deadline - Date.now()));
      }
      if (!launch(false)) {
        fail(this.#unavailableError(operation, tried, failures));
        return;
      }
      const hedgeDelay = hedgeable ? this.hedgeDelayMs : undefined;
      if (hedgeDelay !== undefined && (deadline === undefined || Date.now() + hedgeDelay < deadline)) {
        hedgeTimer = setTimeout(() => {
          // The epsilon absorbs float drift: ten refills of 0.1 must buy one hedge.
          if (settled || attempts.size === 0 || this.#hedgeTokens < 1 - 1e-9) return;
          if (this.#pick(tried) === undefined) return;
          this.#hedgeTokens = Math.max(0, this.#hedgeTokens - 1);
          this.#counters.hedges += 1;
          this.#emit((observer) => observer.onHedge?.(this.shard));
          launch(true);
        }, hedgeDelay);
      }
    });
  }

  #endAttempt(attempts: Set<Attempt>, attempt: Attempt): number {
    attempts.delete(attempt);
    attempt.replica.inFlight -= 1;
    return performance.now() - attempt.started;
  }

  /** Power of two choices among the readable replicas not tried yet in this call. */
  #pick(exclude: ReadonlySet<Replica>): Replica | undefined {
    const candidates = this.#replicas.filter((replica) => replica.readable && !exclude.has(replica));
    if (candidates.length <= 1) return candidates[0];
    const first = Math.floor(this.#random() * candidates.length);
    let second = Math.floor(this.#random() * (candidates.length - 1));
    if (second >= first) second += 1;
    const a = candidates[first] as Replica;
    const b = candidates[second] as Replica;
    const now = performance.now();
    return b.score(now) < a.score(now) ? b : a;
  }

  #recordSuccess(replica: Replica, elapsedMs: number, search: boolean): void {
    replica.consecutiveFailures = 0;
    replica.contactFailed = false;
    replica.lastError = undefined;
    replica.observeLatency(elapsedMs, performance.now());
    if (search) {
      replica.latencies.add(elapsedMs);
      this.#shardLatencies.add(elapsedMs);
    }
  }

  /**
   * A call given up on took at least `elapsedMs`: enough to raise a latency estimate that was
   * lower (so P2C stops favouring a replica that only ever loses hedges), never to lower one.
   */
  #noteCancelled(replica: Replica, elapsedMs: number): void {
    if (replica.ewmaMs === undefined || elapsedMs > replica.ewmaMs) replica.observeLatency(elapsedMs, performance.now());
  }

  #recordFailure(replica: Replica, err: unknown): void {
    replica.consecutiveFailures += 1;
    replica.contactFailed = true;
    replica.lastError = describe(err);
    if (!replica.ejected && replica.consecutiveFailures >= this.#ejection.failures) this.#eject(replica);
  }

  #eject(replica: Replica): void {
    replica.ejected = true;
    replica.backoffMs = this.#ejection.baseBackoffMs;
    this.#emit((observer) => observer.onReplicaEjected?.(this.shard, replica.url));
    this.#scheduleProbe(replica, replica.backoffMs);
  }

  // ---- writes ------------------------------------------------------------------------------

  async #write<T extends object>(
    operation: string,
    call: (client: ShardClient, signal: AbortSignal | undefined, options: ShardCallOptions | undefined) => Promise<T>,
    signal: AbortSignal | undefined,
    callOptions: ShardCallOptions | undefined,
  ): Promise<WithAcks<T>> {
    throwIfAborted(signal);
    const perCall: ShardCallOptions | undefined = callOptions?.deadline === undefined ? undefined : { deadline: callOptions.deadline };
    const outcomes = await Promise.all(
      this.#replicas.map(async (replica): Promise<{ ack: ReplicaAck; value?: T; error?: unknown }> => {
        if (replica.ejected) {
          // Not sent: it would most likely fail too, and it catches up from its peers on return.
          return { ack: { url: replica.url, ok: false, error: this.#unreadableReason(replica), code: 'RAGWAY_ERR_SHARD_UNAVAILABLE' } };
        }
        replica.inFlight += 1;
        try {
          const value = await call(replica.client, signal, perCall);
          replica.consecutiveFailures = 0;
          replica.contactFailed = false;
          replica.lastError = undefined;
          return { ack: { url: replica.url, ok: true }, value };
        } catch (err) {
          if (!signal?.aborted && classify(err) === 'transient') this.#recordFailure(replica, err);
          const code: ErrorCode = isRagwayError(err) ? err.code : 'RAGWAY_ERR_SHARD_UNAVAILABLE';
          return { ack: { url: replica.url, ok: false, error: this.#describeFailure(replica, err), code }, error: err };
        } finally {
          replica.inFlight -= 1;
        }
      }),
    );
    if (signal?.aborted) throw abortError(signal);
    const replicas = outcomes.map((outcome) => outcome.ack);
    const applied = outcomes.find((outcome) => outcome.value !== undefined);
    if (applied?.value !== undefined) return { ...applied.value, replicas };

    // Nobody took it. A 4xx means the request itself is wrong: say that, not "unavailable".
    const errors = outcomes.flatMap((outcome) => (outcome.error === undefined ? [] : [outcome.error]));
    const rejected = errors.find((err) => classify(err) === 'fatal');
    if (rejected !== undefined) throw rejected;
    const message = this.#failedMessage(replicas.length, operation, replicas.map((ack) => ack.error ?? 'failed'));
    if (errors.length > 0 && errors.every((err) => classify(err) === 'deadline')) {
      throw createError('RAGWAY_ERR_DEADLINE_EXCEEDED', message);
    }
    throw createError('RAGWAY_ERR_SHARD_UNAVAILABLE', message, { retryAfterSeconds: 1 });
  }

  // ---- probes ------------------------------------------------------------------------------

  #scheduleProbe(replica: Replica, delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(replica.probeTimer);
    // Jitter (50–100 %) so replicas ejected together are not probed in lockstep.
    const delay = Math.max(1, Math.round(delayMs * (0.5 + this.#random() * 0.5)));
    replica.probeTimer = setTimeout(() => void this.#probe(replica), delay);
    replica.probeTimer.unref();
  }

  async #probe(replica: Replica): Promise<void> {
    replica.probeTimer = undefined;
    if (this.#closed || replica.probing) return;
    const error = await this.#contact(replica);
    if (this.#closed) return;
    if (error !== undefined) {
      if (replica.ejected) {
        replica.backoffMs = Math.min(this.#ejection.maxBackoffMs, Math.max(this.#ejection.baseBackoffMs, replica.backoffMs * 2));
        this.#scheduleProbe(replica, replica.backoffMs);
      } else {
        this.#recordFailure(replica, error);
        if (!replica.ejected) this.#scheduleProbe(replica, this.#ejection.baseBackoffMs);
      }
      return;
    }
    if (replica.ejected) {
      // It answers again: writes resume now (a catching-up replica needs them); reads once ready.
      replica.ejected = false;
      replica.consecutiveFailures = 0;
      replica.backoffMs = 0;
      replica.lastError = undefined;
      this.#emit((observer) => observer.onReplicaRestored?.(this.shard, replica.url));
    }
    if (!replica.readable) this.#scheduleProbe(replica, this.#ejection.baseBackoffMs);
  }

  /** Stats, then /readyz where the client has it; resolves the error when it could not. */
  async #contact(replica: Replica): Promise<unknown> {
    replica.probing = true;
    replica.checkedAt = Date.now();
    const signal = AbortSignal.timeout(this.#probeTimeoutMs);
    try {
      const stats = await replica.client.stats(signal);
      this.#noteStats(replica, stats);
      replica.notReady = replica.client.ready === undefined ? false : !(await replica.client.ready(signal));
      replica.contactFailed = false;
      return undefined;
    } catch (err) {
      replica.contactFailed = true;
      replica.lastError = describe(err);
      return err ?? new Error('probe failed');
    } finally {
      replica.probing = false;
    }
  }

  #noteStats(replica: Replica, stats: StatsResponse): void {
    replica.stats = stats;
    replica.statsAt = Date.now();
    // Shards from before replica catch-up existed send no state: they are always ready.
    replica.catchingUp = (stats.state as string | undefined) === 'catching-up';
  }

  /**
   * Hooks run inside timers and promise callbacks, where a throw would crash the process or
   * strand a request: a broken metric must never break serving, so it is dropped here.
   */
  #emit(hook: (observer: ReplicaSetObserver) => void): void {
    try {
      hook(this.#observer);
    } catch {
      // Deliberately ignored (see above).
    }
  }

  // ---- messages ----------------------------------------------------------------------------

  /** "http://10.0.0.2:7001 unavailable: connect ECONNREFUSED" — the replica's own words, once. */
  #describeFailure(replica: Replica, err: unknown): string {
    const message = describe(err);
    const name = replica.client.name;
    if (message.startsWith(name)) return `${replica.url}${message.slice(name.length)}`;
    const code = isRagwayError(err) ? `${err.code}: ` : '';
    return `${replica.url}: ${code}${message}`;
  }

  #unreadableReason(replica: Replica): string {
    if (replica.ejected) {
      return `${replica.url}: ejected after ${Math.max(replica.consecutiveFailures, this.#ejection.failures)} consecutive failures${replica.lastError === undefined ? '' : ` (last: ${replica.lastError})`}`;
    }
    if (replica.catchingUp) return `${replica.url}: catching up (not read from until ready)`;
    return `${replica.url}: not ready (/readyz answered 503)`;
  }

  #failedMessage(failed: number, operation: string, reasons: readonly string[]): string {
    return `${this.label}: ${failed} of ${this.#replicas.length} replicas failed (${operation}): ${reasons.join('; ')}`;
  }

  #unavailableError(operation: string, tried: ReadonlySet<Replica>, failures: readonly string[]): RagwayError {
    const skipped = this.#replicas.filter((replica) => !tried.has(replica)).map((replica) => this.#unreadableReason(replica));
    const reasons = [...failures, ...skipped];
    return createError('RAGWAY_ERR_SHARD_UNAVAILABLE', this.#failedMessage(reasons.length, operation, reasons), { retryAfterSeconds: 1 });
  }

  #deadlineError(operation: string, started: number, failures: readonly string[]): RagwayError {
    const waited = Math.round(performance.now() - started);
    const detail = failures.length === 0 ? '' : `; before that ${failures.length} of ${this.#replicas.length} replicas failed: ${failures.join('; ')}`;
    return createError('RAGWAY_ERR_DEADLINE_EXCEEDED', `${this.label}: no replica answered ${operation} before the deadline (waited ${waited} ms)${detail}`);
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
