// Single flight: concurrent misses on one key share one computation, so a hot question that
// just fell out of the cache (or was never in it) costs one embed + one scatter, not one per
// waiting client — the thundering herd a cold or freshly invalidated cache otherwise sends to
// the shards.
//
// The computation runs on its own AbortSignal, not the first caller's: that caller's client
// may leave while others still wait for the same answer. The work is cancelled only when every
// waiter has gone. Nothing is cached here; the caller stores the value it gets back.
import { abortError } from '../../core/errors.js';

export interface SingleFlightResult<V> {
  value: V;
  /** True for followers: the value came from a computation another call started. */
  shared: boolean;
}

interface Flight<V> {
  readonly controller: AbortController;
  readonly promise: Promise<V>;
  /** Waiters that have neither aborted nor been answered yet. */
  waiters: number;
  settled: boolean;
}

export class SingleFlight<V> {
  readonly #flights = new Map<string, Flight<V>>();

  /** Keys with a computation in progress that someone still waits for. */
  get inFlight(): number {
    return this.#flights.size;
  }

  /**
   * Runs `compute` for `key` unless a computation for it is already in progress, in which case
   * this call waits for that one. Resolves with the value or rejects with the computation's
   * error (the same error object for every waiter). A caller whose signal aborts is rejected at
   * once with `abortError(callerSignal)`; the computation's own signal aborts only when every
   * waiter has aborted.
   */
  run(key: string, compute: (signal: AbortSignal) => Promise<V>, callerSignal?: AbortSignal): Promise<SingleFlightResult<V>> {
    if (callerSignal?.aborted) return Promise.reject(abortError(callerSignal));
    let flight = this.#flights.get(key);
    const shared = flight !== undefined;
    if (flight === undefined) flight = this.#start(key, compute);
    return this.#wait(key, flight, shared, callerSignal);
  }

  #start(key: string, compute: (signal: AbortSignal) => Promise<V>): Flight<V> {
    const controller = new AbortController();
    // Called from a then(), so a compute that throws synchronously rejects like any other
    // failure instead of throwing out of run().
    const promise = Promise.resolve().then(() => compute(controller.signal));
    const flight: Flight<V> = { controller, promise, waiters: 0, settled: false };
    this.#flights.set(key, flight);
    // Registered before any waiter's handlers, so the key is gone by the time a waiter sees the
    // outcome: a waiter that calls run(key) again from its continuation computes afresh.
    const done = (): void => {
      flight.settled = true;
      if (this.#flights.get(key) === flight) this.#flights.delete(key);
    };
    promise.then(done, done);
    return flight;
  }

  #wait(key: string, flight: Flight<V>, shared: boolean, signal: AbortSignal | undefined): Promise<SingleFlightResult<V>> {
    flight.waiters += 1;
    return new Promise<SingleFlightResult<V>>((resolve, reject) => {
      let answered = false;
      const onAbort = (): void => {
        if (answered || signal === undefined) return;
        answered = true;
        flight.waiters -= 1;
        reject(abortError(signal));
        if (flight.waiters === 0 && !flight.settled) {
          // Nobody is left to use the result. Unregister first, so a caller arriving while the
          // cancelled work winds down starts a fresh computation rather than joining a dead one.
          if (this.#flights.get(key) === flight) this.#flights.delete(key);
          flight.controller.abort(abortError(signal));
        }
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const finish = (): boolean => {
        if (answered) return false;
        answered = true;
        flight.waiters -= 1;
        signal?.removeEventListener('abort', onAbort);
        return true;
      };
      flight.promise.then(
        (value) => {
          if (finish()) resolve({ value, shared });
        },
        (err: unknown) => {
          if (finish()) reject(err);
        },
      );
    });
  }
}
