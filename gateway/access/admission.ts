// Admission control: a limited number of requests of one route class run at once, a few more
// wait briefly in a FIFO queue, and the rest are refused at once (503 + Retry-After) instead
// of joining a pile-up that makes every request slow. Past the point where the gateway is
// busy, admitting more only adds queueing delay; refusing keeps admitted requests fast and
// tells clients (and load balancers) to back off.
//
// The limit is fixed, or adaptive (AIMD on latency, after Netflix's concurrency-limits): the
// time each admitted request takes is compared with the lowest seen lately; while a smoothed
// latency stays within `tolerance` times that floor and the limit is in use, the limit grows by
// one per limit's worth of completions; once it passes, the limit shrinks by a tenth (at most
// once per limit's worth of completions, so one slow burst does not collapse it). The floor is
// the lowest latency seen, drifting up to a window's minimum by at most a tenth per window of
// samples, so it follows a machine that became slower or faster. The fixed `concurrency` is
// then the ceiling. Capacity is found by the gateway itself rather than guessed in a setting:
// the right limit depends on cores, shards and query mix.
import { abortError, createError, type RagwayError } from '../../core/errors.js';

export type RouteClass = 'search' | 'generation' | 'ingest';

export interface GateLimits {
  /** The limit; with `adaptive`, its ceiling. */
  concurrency: number;
  queueLength: number;
  queueTimeoutMs: number;
  adaptive?: AdaptiveLimits | undefined;
}

export interface AdaptiveLimits {
  /** The floor of the limit. */
  minConcurrency: number;
  /** Smoothed latency above this many times the lowest seen lately shrinks the limit. */
  tolerance: number;
}

/** Samples per window of the latency floor: it drops at once, and rises at most FLOOR_RISE per window. */
const FLOOR_WINDOW = 250;
const FLOOR_RISE = 1.1;
/** Weight of a new sample in the smoothed latency. */
const SMOOTHING = 0.1;
const DECREASE = 0.9;

/** The AIMD limit of one gate. */
export class AdaptiveLimit {
  readonly #min: number;
  readonly #max: number;
  readonly #tolerance: number;
  #limit: number;
  #smoothed: number | undefined;
  #floor = Number.POSITIVE_INFINITY;
  #windowMin = Number.POSITIVE_INFINITY;
  #samples = 0;
  #sinceChange = 0;

  constructor(limits: AdaptiveLimits, max: number) {
    this.#min = Math.max(1, Math.min(limits.minConcurrency, max));
    this.#max = max;
    this.#tolerance = limits.tolerance;
    this.#limit = this.#min;
  }

  get value(): number {
    return Math.floor(this.#limit);
  }

  /** One admitted request took `ms`; `busy` says whether the limit was in use when it started. */
  observe(ms: number, busy: boolean): void {
    this.#windowMin = Math.min(this.#windowMin, ms);
    this.#floor = Math.min(this.#floor, ms);
    this.#samples += 1;
    if (this.#samples >= FLOOR_WINDOW) {
      // Rising slowly: sustained queueing must not pass for a slower machine, or the limit
      // would grow back into the very overload it is there to shed.
      this.#floor = Math.min(this.#windowMin, this.#floor * FLOOR_RISE);
      this.#windowMin = Number.POSITIVE_INFINITY;
      this.#samples = 0;
    }
    this.#smoothed = this.#smoothed === undefined ? ms : this.#smoothed + SMOOTHING * (ms - this.#smoothed);
    this.#sinceChange += 1;
    if (this.#smoothed > this.#tolerance * this.#floor) {
      if (this.#sinceChange >= this.#limit) {
        this.#limit = Math.max(this.#min, this.#limit * DECREASE);
        this.#sinceChange = 0;
      }
    } else if (busy) {
      this.#limit = Math.min(this.#max, this.#limit + 1 / this.#limit);
    }
  }
}

interface Waiter {
  resolve: (release: (informative?: boolean) => void) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
  onAbort: () => void;
  signal: AbortSignal | undefined;
}

export class AdmissionGate {
  readonly name: RouteClass;
  readonly #limits: GateLimits;
  readonly #adaptive: AdaptiveLimit | undefined;
  #active = 0;
  readonly #queue: Waiter[] = [];
  rejected = 0;

  constructor(name: RouteClass, limits: GateLimits) {
    this.name = name;
    this.#limits = limits;
    this.#adaptive = limits.adaptive === undefined ? undefined : new AdaptiveLimit(limits.adaptive, limits.concurrency);
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Requests allowed to run at once right now (the adaptive limit moves). */
  get limit(): number {
    return this.#adaptive?.value ?? this.#limits.concurrency;
  }

  /** True when a request arriving now would be refused at once: checked before its body is read. */
  get full(): boolean {
    return this.#active >= this.limit && this.#queue.length >= this.#limits.queueLength;
  }

  /** Refuses a request now, as acquire() would have (the 503, counted). */
  refuse(): RagwayError {
    return this.#saturated();
  }

  /** Resolves with a release function once a slot is free; rejects with 503 when none frees in time. */
  acquire(signal?: AbortSignal): Promise<(informative?: boolean) => void> {
    if (this.#active < this.limit) {
      this.#active += 1;
      return Promise.resolve(this.#releaser());
    }
    if (this.#queue.length >= this.#limits.queueLength) return Promise.reject(this.#saturated());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        timer: setTimeout(() => {
          this.#remove(waiter);
          reject(this.#saturated());
        }, this.#limits.queueTimeoutMs),
        onAbort: () => {
          this.#remove(waiter);
          clearTimeout(waiter.timer);
          reject(abortError(signal as AbortSignal));
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  #saturated(): RagwayError {
    this.rejected += 1;
    return createError(
      'RAGWAY_ERR_SATURATED',
      `the gateway is at its limit of ${this.limit} ${this.name} requests at once; retry shortly`,
      { retryAfterSeconds: 1 },
    );
  }

  #remove(waiter: Waiter): void {
    const index = this.#queue.indexOf(waiter);
    if (index >= 0) this.#queue.splice(index, 1);
    waiter.signal?.removeEventListener('abort', waiter.onAbort);
  }

  /**
   * The release of one slot. `informative: false` keeps its latency out of the adaptive limit
   * (a cache hit says nothing about how loaded the search path is).
   */
  #releaser(): (informative?: boolean) => void {
    let released = false;
    const started = performance.now();
    const busy = this.#active >= this.limit;
    return (informative = true) => {
      if (released) return;
      released = true;
      if (informative) this.#adaptive?.observe(performance.now() - started, busy);
      // A limit that shrank takes its slot back instead of passing it on.
      const next = this.#active > this.limit ? undefined : this.#queue.shift();
      if (next === undefined) {
        this.#active -= 1;
        this.#drain();
        return;
      }
      // The slot passes straight to the next waiter; the active count stays.
      clearTimeout(next.timer);
      next.signal?.removeEventListener('abort', next.onAbort);
      next.resolve(this.#releaser());
    };
  }

  /** A limit that grew admits waiters beyond the one a release hands its slot to. */
  #drain(): void {
    while (this.#active < this.limit) {
      const next = this.#queue.shift();
      if (next === undefined) return;
      clearTimeout(next.timer);
      next.signal?.removeEventListener('abort', next.onAbort);
      this.#active += 1;
      next.resolve(this.#releaser());
    }
  }
}
