// Admission control: a fixed number of requests of one route class run at once, a few more
// wait briefly in a FIFO queue, and the rest are refused at once (503 + Retry-After) instead
// of joining a pile-up that makes every request slow. Past the point where the gateway is
// busy, admitting more only adds queueing delay; refusing keeps admitted requests fast and
// tells clients (and load balancers) to back off.
import { abortError, createError } from '../../core/errors.js';

export type RouteClass = 'search' | 'generation' | 'ingest';

export interface GateLimits {
  concurrency: number;
  queueLength: number;
  queueTimeoutMs: number;
}

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
  onAbort: () => void;
  signal: AbortSignal | undefined;
}

export class AdmissionGate {
  readonly name: RouteClass;
  readonly #limits: GateLimits;
  #active = 0;
  readonly #queue: Waiter[] = [];
  rejected = 0;

  constructor(name: RouteClass, limits: GateLimits) {
    this.name = name;
    this.#limits = limits;
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Resolves with a release function once a slot is free; rejects with 503 when none frees in time. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.#active < this.#limits.concurrency) {
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

  #saturated(): Error {
    this.rejected += 1;
    return createError(
      'RAGWAY_ERR_SATURATED',
      `the gateway is at its limit of ${this.#limits.concurrency} ${this.name} requests at once; retry shortly`,
      { retryAfterSeconds: 1 },
    );
  }

  #remove(waiter: Waiter): void {
    const index = this.#queue.indexOf(waiter);
    if (index >= 0) this.#queue.splice(index, 1);
    waiter.signal?.removeEventListener('abort', waiter.onAbort);
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#queue.shift();
      if (next === undefined) {
        this.#active -= 1;
        return;
      }
      // The slot passes straight to the next waiter; the active count stays.
      clearTimeout(next.timer);
      next.signal?.removeEventListener('abort', next.onAbort);
      next.resolve(this.#releaser());
    };
  }
}
