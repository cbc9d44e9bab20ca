// Write versions for last-writer-wins replicas (shards/protocol.ts `Version`): a hybrid logical
// clock, wall-clock milliseconds × 1024 plus a counter. Every replica of a shard gets the same
// version for one write, so they converge whatever order writes reach them in; two writes from
// this process are always ordered as they were issued, even when the wall clock steps back
// (NTP) or more than 1024 writes land in one millisecond (the counter then borrows from the
// next millisecond: still monotonic, still within 2^53 for the next few hundred thousand years).
//
// Owned by whoever builds the Scatter (no process-wide singleton): two gateways order their
// writes by wall clock, which is the best last-writer-wins can do without coordination.

/** Counter slots per millisecond. */
export const VERSION_TICKS_PER_MS = 1024;

export class VersionClock {
  #last = 0;
  readonly #now: () => number;

  /** `now` is injectable so tests can freeze or rewind time. */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** A version greater than every version this clock has issued or observed. */
  next(): number {
    const physical = Math.floor(this.#now()) * VERSION_TICKS_PER_MS;
    this.#last = physical > this.#last ? physical : this.#last + 1;
    return this.#last;
  }

  /**
   * Moves the clock past a version seen elsewhere (the HLC receive rule), so a write issued
   * after reading another gateway's version is ordered after it even if our clock lags.
   */
  observe(version: number): void {
    if (Number.isSafeInteger(version) && version > this.#last) this.#last = version;
  }

  /** The last version issued or observed (0 before the first). */
  get last(): number {
    return this.#last;
  }
}
