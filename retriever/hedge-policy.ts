// When a search is hedged: once it has not answered by this shard's recent p95 (configurable),
// it is sent to a second replica as well and the first answer wins. Hedges are paid for from a
// token bucket refilled by `maxExtraFraction` per search, so they never add more than that
// fraction of extra shard calls — under overload, when every call is slow, hedging would
// otherwise double the load exactly when it hurts most.
import { LatencyWindow } from './latency-window.js';
import type { HedgeOptions } from './replica-types.js';

export const DEFAULT_HEDGE: HedgeOptions = {
  enabled: true,
  percentile: 0.95,
  minDelayMs: 5,
  maxExtraFraction: 0.1,
  burst: 5,
  minSamples: 20,
};

export class HedgePolicy {
  /** This shard's recent search latencies (every replica's), the percentile's source. */
  readonly latencies: LatencyWindow;
  readonly #options: HedgeOptions;
  /** The set's replicas (read live: discovery adds and removes them). */
  readonly #replicas: { readonly length: number };
  #tokens = 0;

  constructor(options: HedgeOptions, replicas: { readonly length: number }, window: number) {
    this.#options = options;
    this.#replicas = replicas;
    this.latencies = new LatencyWindow(window);
  }

  /** The delay after which a search is hedged now; undefined while hedging is off or unsure. */
  get delayMs(): number | undefined {
    if (!this.#options.enabled || this.#replicas.length < 2) return undefined;
    if (this.latencies.count < this.#options.minSamples) return undefined;
    const percentile = this.latencies.percentile(this.#options.percentile);
    return percentile === undefined ? undefined : Math.max(this.#options.minDelayMs, percentile);
  }

  /** Each search earns a fraction of a hedge, up to the burst. */
  earn(): void {
    this.#tokens = Math.min(this.#options.burst, this.#tokens + this.#options.maxExtraFraction);
  }

  /** Whether a whole hedge is saved up. The epsilon absorbs float drift: ten refills of 0.1 must buy one hedge. */
  get affordable(): boolean {
    return this.#tokens >= 1 - 1e-9;
  }

  spend(): void {
    this.#tokens = Math.max(0, this.#tokens - 1);
  }
}
