// The gateway's view of each shard's write epoch. A shard bumps its epoch on every upsert and
// delete, and a cached result remembers the epochs it was computed at, so "is this result
// still right?" is "are those epochs still the current ones?" — no TTL guesswork and no
// cross-gateway invalidation messages: a write through any gateway moves the shard's epoch,
// and every gateway sees it in its next response from that shard or its next poll.
//
// Two sources feed it. Responses (search results, write acks) are free and arrive all the time
// on a busy gateway. Polls (stats of every shard) cover the quiet gateway that only serves
// from cache, and writes made through another gateway.
import { raceAbort } from '../../core/errors.js';

/** What current() reports for a shard not heard from yet. Real epochs start at 0. */
export const UNKNOWN_EPOCH = -1;

export interface EpochTrackerOptions {
  /**
   * Reads every shard's epoch (e.g. `stats` of each), by shard index; undefined for a shard
   * that could not be asked this time. A rejection is ignored and retried next tick.
   */
  poll?: (signal: AbortSignal) => Promise<readonly (number | undefined)[]>;
  /** Time between polls. Default 1000. */
  pollIntervalMs?: number;
  /** A poll slower than this is abandoned (its signal aborts) and counts as failed. Default pollIntervalMs. */
  pollTimeoutMs?: number;
  /** Told about each failed poll (for logs/metrics); the tracker itself just tries again. */
  onPollError?: (err: unknown) => void;
}

export class EpochTracker {
  readonly #epochs: number[];
  /** Bumped per shard by every observe(): a poll only overrides shards not observed while it ran. */
  readonly #observed: number[];
  readonly #poll: EpochTrackerOptions['poll'];
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #onPollError: ((err: unknown) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #polling: AbortController | undefined;
  #pollAgain = false;

  constructor(shardCount: number, options: EpochTrackerOptions = {}) {
    if (!Number.isInteger(shardCount) || shardCount < 1) throw new RangeError(`shardCount must be a positive integer, got ${shardCount}`);
    this.#epochs = new Array<number>(shardCount).fill(UNKNOWN_EPOCH);
    this.#observed = new Array<number>(shardCount).fill(0);
    this.#poll = options.poll;
    this.#intervalMs = positive(options.pollIntervalMs, 1000, 'pollIntervalMs');
    this.#timeoutMs = positive(options.pollTimeoutMs, this.#intervalMs, 'pollTimeoutMs');
    this.#onPollError = options.onPollError;
  }

  get shardCount(): number {
    return this.#epochs.length;
  }

  /** True while periodic polling is on. */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Records the epochs a response reported, by shard index (undefined: that shard was not part
   * of it). The reported value is taken as is, even when lower: a shard that lost its tail on
   * restart comes back with a smaller epoch, and results cached at the old one must stop being
   * served. A lower value can also be an old search answering after a newer write ack, so a
   * lower report also asks for a poll right away (when polling is on) to settle which it was.
   * Entries past shardCount and non-integers are ignored.
   */
  observe(epochs: readonly (number | undefined)[]): void {
    let lowered = false;
    const count = Math.min(epochs.length, this.#epochs.length);
    for (let shard = 0; shard < count; shard += 1) {
      const epoch = epochs[shard];
      if (epoch === undefined || !Number.isInteger(epoch) || epoch < 0) continue;
      const previous = this.#epochs[shard] ?? UNKNOWN_EPOCH;
      if (epoch < previous) lowered = true;
      this.#epochs[shard] = epoch;
      this.#observed[shard] = (this.#observed[shard] ?? 0) + 1;
    }
    if (lowered && this.#timer !== undefined) this.#pollSoon();
  }

  /** Each shard's epoch as last seen, UNKNOWN_EPOCH (-1) for a shard not heard from yet. */
  current(): readonly number[] {
    return [...this.#epochs];
  }

  /** True when every shard is known and `epochs` matches them all. */
  isCurrent(epochs: readonly number[]): boolean {
    if (epochs.length !== this.#epochs.length) return false;
    for (let shard = 0; shard < epochs.length; shard += 1) {
      const current = this.#epochs[shard];
      if (current === UNKNOWN_EPOCH || current !== epochs[shard]) return false;
    }
    return true;
  }

  /** Starts periodic polling (a poll now, then every pollIntervalMs). No-op without a poll function. */
  start(): void {
    if (this.#poll === undefined || this.#timer !== undefined) return;
    // A tick that finds the previous poll still out skips: polls never overlap or pile up.
    this.#timer = setInterval(() => void this.pollNow(), this.#intervalMs);
    // A poll timer alone must not keep the process alive: shutdown goes through stop() (onClose).
    this.#timer.unref();
    void this.pollNow();
  }

  /** Stops polling and abandons a poll in progress. Safe to call twice. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#pollAgain = false;
    this.#polling?.abort();
  }

  /**
   * Polls once, now, unless a poll is already running (then resolves false without waiting).
   * Resolves true when the poll answered and was applied; false when it failed, was skipped or
   * was aborted — never rejects, since a failed poll only means "keep the last view".
   */
  async pollNow(signal?: AbortSignal): Promise<boolean> {
    const poll = this.#poll;
    if (poll === undefined || this.#polling !== undefined || signal?.aborted) return false;
    const controller = new AbortController();
    this.#polling = controller;
    const onAbort = (): void => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timeout = setTimeout(() => {
      timedOut = true;
      controller.abort(new DOMException(`epoch poll took over ${this.#timeoutMs} ms`, 'TimeoutError'));
    }, this.#timeoutMs);
    timeout.unref();
    const observedBefore = [...this.#observed];
    try {
      const epochs = await raceAbort(poll(controller.signal), controller.signal);
      if (epochs.length !== this.#epochs.length) {
        throw new RangeError(`epoch poll returned ${epochs.length} epochs for ${this.#epochs.length} shards`);
      }
      for (let shard = 0; shard < epochs.length; shard += 1) {
        const epoch = epochs[shard];
        if (epoch === undefined || !Number.isInteger(epoch) || epoch < 0) continue;
        // A response observed while the poll was out may be newer than what the shard said
        // when asked (a write ack racing the poll): keep it; the next poll settles the rest.
        if (this.#observed[shard] !== observedBefore[shard]) continue;
        // Whatever differs is authoritative, lower included: the shard says so itself.
        this.#epochs[shard] = epoch;
      }
      return true;
    } catch (err) {
      // stop() and the caller's own abort are not failures worth reporting; a timeout is.
      if (!controller.signal.aborted || timedOut) this.#onPollError?.(err);
      return false;
    } finally {
      clearTimeout(timeout);
      signal?.removeEventListener('abort', onAbort);
      this.#polling = undefined;
      if (this.#pollAgain && this.#timer !== undefined) {
        this.#pollAgain = false;
        void this.pollNow();
      }
    }
  }

  /** Polls now, or right after the poll in progress (which may have asked before the change). */
  #pollSoon(): void {
    if (this.#polling !== undefined) {
      this.#pollAgain = true;
      return;
    }
    void this.pollNow();
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number of ms, got ${value}`);
  return value;
}

