// Which replicas of a shard are in rotation. A replica that fails `ejection.failures` times in
// a row is ejected (no reads, no writes) and probed back with exponential backoff, capped low
// (1 s by default) so that a replica restarted during a rolling restart is read from again
// about a second after it says it is ready, not after a backoff grown to tens of seconds. It
// returns once it answers, and serves reads once it also says it is ready. A background
// refresh asks every replica for its stats and readiness each period, so a replica nobody
// reads from is still noticed when it dies, starts catching up, or becomes ready again.
//
// `recheck` is the same contact on demand: a read that finds no readable replica asks the
// others now (panic routing) instead of trusting what the last probe saw.
import type { StatsResponse } from '../shards/protocol.js';
import type { Replica } from './replica.js';
import { describe } from './replica-failure.js';
import type { EjectionOptions, ReplicaSetObserver } from './replica-types.js';

export interface MembershipOptions {
  shard: number;
  ejection: EjectionOptions;
  emit: (hook: (observer: ReplicaSetObserver) => void) => void;
  random: () => number;
  probeIntervalMs: number;
  probeTimeoutMs: number;
}

export class ReplicaMembership {
  readonly replicas: readonly Replica[];
  readonly #options: MembershipOptions;
  #refreshTimer: NodeJS.Timeout | undefined;
  #refreshing = false;
  #closed = false;

  constructor(replicas: readonly Replica[], options: MembershipOptions) {
    this.replicas = replicas;
    this.#options = options;
  }

  get ejection(): EjectionOptions {
    return this.#options.ejection;
  }

  /** Time since the least recently contacted replica was asked for stats; Infinity before all were (0 with none). */
  get viewAgeMs(): number {
    const now = Date.now();
    if (this.replicas.length === 0) return 0;
    return Math.max(...this.replicas.map((replica) => (replica.checkedAt === 0 ? Infinity : now - replica.checkedAt)));
  }

  recordFailure(replica: Replica, err: unknown): void {
    replica.consecutiveFailures += 1;
    replica.contactFailed = true;
    replica.lastError = describe(err);
    if (!replica.ejected && !replica.retired && replica.consecutiveFailures >= this.#options.ejection.failures) this.#eject(replica);
  }

  noteStats(replica: Replica, stats: StatsResponse): void {
    replica.stats = stats;
    replica.statsAt = Date.now();
    // Shards from before replica catch-up existed send no state: they are always ready.
    replica.catchingUp = (stats.state as string | undefined) === 'catching-up';
  }

  /**
   * Asks every replica not already being probed for its stats and readiness now: what the
   * background refresh does each period. A replica that cannot be reached counts a failure
   * (so a replica nobody reads from is still noticed, and ejected, when it dies).
   */
  async refresh(): Promise<void> {
    await Promise.all(
      this.replicas.map(async (replica) => {
        if (replica.ejected || replica.probing || replica.probeTimer !== undefined) return;
        const error = await this.#contact(replica);
        if (this.#closed || replica.retired) return;
        if (error !== undefined) this.recordFailure(replica, error);
        else if (!replica.readable) this.#scheduleProbe(replica, this.#options.ejection.baseBackoffMs);
      }),
    );
  }

  /** Starts the periodic refresh (unref'd: it never keeps the process alive). Idempotent. */
  start(): void {
    if (this.#closed || this.#refreshTimer !== undefined || this.#options.probeIntervalMs <= 0) return;
    const tick = (): void => {
      if (this.#refreshing) return;
      this.#refreshing = true;
      void this.refresh().finally(() => {
        this.#refreshing = false;
      });
    };
    this.#refreshTimer = setInterval(tick, this.#options.probeIntervalMs);
    this.#refreshTimer.unref();
    tick();
  }

  /** Stops the periodic refresh (probes of ejected replicas go on until close()). */
  stop(): void {
    clearInterval(this.#refreshTimer);
    this.#refreshTimer = undefined;
  }

  close(): void {
    this.#closed = true;
    this.stop();
    for (const replica of this.replicas) {
      clearTimeout(replica.probeTimer);
      replica.probeTimer = undefined;
    }
  }

  /**
   * A replica that left the set (replica-changes.ts): its timers stop and no contact still under
   * way schedules another. Calls already in flight to it finish on their own.
   */
  forget(replica: Replica): void {
    replica.retired = true;
    clearTimeout(replica.probeTimer);
    replica.probeTimer = undefined;
  }

  #eject(replica: Replica): void {
    replica.ejected = true;
    replica.backoffMs = this.#options.ejection.baseBackoffMs;
    this.#options.emit((observer) => observer.onReplicaEjected?.(this.#options.shard, replica.url));
    this.#scheduleProbe(replica, replica.backoffMs);
  }

  #scheduleProbe(replica: Replica, delayMs: number): void {
    if (this.#closed || replica.retired) return;
    clearTimeout(replica.probeTimer);
    // Jitter (50–100 %) so replicas ejected together are not probed in lockstep.
    const delay = Math.max(1, Math.round(delayMs * (0.5 + this.#options.random() * 0.5)));
    replica.probeTimer = setTimeout(() => void this.#probe(replica), delay);
    replica.probeTimer.unref();
  }

  /**
   * Contacts the replica now (stats + /readyz), or joins the contact already under way, and
   * applies what it learns as a probe would: restored when an ejected replica answers, a
   * failure counted when a replica in rotation does not. Resolves the contact's error, if any.
   */
  async recheck(replica: Replica): Promise<unknown> {
    if (replica.contact !== undefined) return replica.contact;
    const contact = this.#contact(replica).then((error) => {
      if (!this.#closed && !replica.retired) this.#afterContact(replica, error);
      return error;
    });
    replica.contact = contact;
    try {
      return await contact;
    } finally {
      replica.contact = undefined;
    }
  }

  async #probe(replica: Replica): Promise<void> {
    replica.probeTimer = undefined;
    if (this.#closed) return;
    // Joins a recheck already under way: it does what this probe would, next probe included.
    await this.recheck(replica);
  }

  #afterContact(replica: Replica, error: unknown): void {
    const { baseBackoffMs, maxBackoffMs } = this.#options.ejection;
    if (error !== undefined) {
      if (replica.ejected) {
        replica.backoffMs = Math.min(maxBackoffMs, Math.max(baseBackoffMs, replica.backoffMs * 2));
        this.#scheduleProbe(replica, replica.backoffMs);
      } else {
        this.recordFailure(replica, error);
        if (!replica.ejected) this.#scheduleProbe(replica, baseBackoffMs);
      }
      return;
    }
    if (replica.ejected) {
      // It answers again: writes resume now (a catching-up replica needs them); reads once ready.
      replica.ejected = false;
      replica.consecutiveFailures = 0;
      replica.backoffMs = 0;
      replica.lastError = undefined;
      this.#options.emit((observer) => observer.onReplicaRestored?.(this.#options.shard, replica.url));
    }
    if (!replica.readable) {
      this.#scheduleProbe(replica, baseBackoffMs);
    } else {
      // Back in rotation: a probe still pending from the ejection would only keep the periodic
      // refresh (which skips replicas with one) from watching it.
      clearTimeout(replica.probeTimer);
      replica.probeTimer = undefined;
    }
  }

  /** Stats, then /readyz where the client has it; resolves the error when it could not. */
  async #contact(replica: Replica): Promise<unknown> {
    replica.probing = true;
    replica.checkedAt = Date.now();
    const signal = AbortSignal.timeout(this.#options.probeTimeoutMs);
    try {
      const stats = await replica.client.stats(signal);
      this.noteStats(replica, stats);
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
}
