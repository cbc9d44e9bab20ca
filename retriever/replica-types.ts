// The settings and the shapes a ReplicaSet shows to its callers: options, write
// acknowledgements, the cluster view of one replica, counters and metric hooks.
import type { ErrorCode } from '../core/errors.js';
import type { AntiEntropyStats } from '../shards/protocol.js';
import type { ReplicaHealth } from './replica.js';

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
  /**
   * Cap on the probe backoff. Default 1000 ms: a replica back after a restart is read from again
   * within about this long (a probe is two small GETs; a second apart costs nothing).
   */
  maxBackoffMs: number;
}

/** Metric hooks; `shard` is the shard index given in the options. A hook that throws is ignored. */
export interface ReplicaSetObserver {
  onHedge?(shard: number): void;
  onHedgeWon?(shard: number): void;
  onReplicaEjected?(shard: number, url: string): void;
  onReplicaRestored?(shard: number, url: string): void;
  /**
   * One search call to one replica ended: answered (`ok`), failed (`error`: transport, timeout,
   * 5xx), or given up on by the gateway (`cancelled`: a hedge that lost, a caller that left).
   */
  onReplicaCall?(shard: number, url: string, seconds: number, outcome: ReplicaCallOutcome): void;
  /** A replica joined the set (discovery). */
  onReplicaAdded?(shard: number, url: string): void;
  /** A replica left the set (discovery): per-replica series for it can go. */
  onReplicaRemoved?(shard: number, url: string): void;
}

export type ReplicaCallOutcome = 'ok' | 'error' | 'cancelled';

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
  /**
   * The replicas are discovered (addReplica/removeReplica): the set may start, or become, empty,
   * and then fails every call as unavailable — the shard shows as a coverage gap. Default false.
   */
  discovered?: boolean;
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

/** One replica in the cluster view (GET /v1/cluster). */
export interface ReplicaView {
  url: string;
  state: ReplicaHealth;
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

/**
 * Hooks run inside timers and promise callbacks, where a throw would crash the process or
 * strand a request: a broken metric must never break serving, so it is dropped here.
 */
export function safeEmit(observer: ReplicaSetObserver, hook: (observer: ReplicaSetObserver) => void): void {
  try {
    hook(observer);
  } catch {
    // Deliberately ignored (see above).
  }
}
