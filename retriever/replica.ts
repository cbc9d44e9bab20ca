// One replica of a shard as the gateway sees it: its client, recent latency, load, failure
// streak and what its last stats and /readyz said. Replica choice, the hedged read, writes
// and membership all read and update these fields; none of them owns the replica alone.
import type { StatsResponse } from '../shards/protocol.js';
import { LatencyWindow } from './latency-window.js';
import type { ShardClient } from './shard-client.js';

/**
 * The gateway's judgement of a replica (what GET /v1/cluster shows), not the replica's own
 * sync state (shards/protocol.ts ReplicaSyncState):
 * ready: serves reads · catching-up: answers but is still copying what it missed (writes only)
 * · ejected: taken out after repeated failures, being probed · down: not answering (or /readyz 503).
 */
export type ReplicaHealth = 'ready' | 'catching-up' | 'ejected' | 'down';

const EWMA_WEIGHT = 0.2;
/** A replica not sampled for this long is looked at afresh (its old latency may be stale). */
const STALE_LATENCY_MS = 5_000;
/** Keeps in-flight counts meaningful while latencies are unknown (0) or tiny. */
const SCORE_FLOOR_MS = 0.05;

export class Replica {
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
  /** An on-demand contact (ReplicaMembership.recheck) in flight, shared by every read that needs it. */
  contact: Promise<unknown> | undefined;
  lastError: string | undefined;
  stats: StatsResponse | undefined;
  statsAt = 0;
  /** Last stats request, answered or not. */
  checkedAt = 0;
  /** Left the set (discovery no longer finds it): no probe is scheduled for it again. */
  retired = false;

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

  get health(): ReplicaHealth {
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

  /** The replica answered (with data or with a 4xx): it is alive. */
  noteAnswered(): void {
    this.consecutiveFailures = 0;
    this.contactFailed = false;
    this.lastError = undefined;
  }
}

/** The client's URL where it has one (HttpShardClient), else its name. */
export function urlOf(client: ShardClient): string {
  const url = (client as { url?: unknown }).url;
  return typeof url === 'string' ? url : client.name;
}
