// Recent latencies in a fixed ring, with percentiles over what it holds: the per-replica and
// per-shard windows replica choice, hedging and the cluster view read from.

/** Percentiles are re-sorted after this many new samples, not on every read. */
const PERCENTILE_REFRESH_SAMPLES = 8;

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
