// One cache layer (results, query embeddings...) over lru-cache, bounded by BYTES rather than
// entries: a result with 50 chunks of text and one with 3 differ by orders of magnitude, so an
// entry count says nothing about memory. Entries may carry the shard epochs they were computed
// at; a lookup with the current epochs drops an entry from before the last write.
import { LRUCache } from 'lru-cache';

/** Why an entry left: lru-cache's dispose reasons, plus 'stale' for an epoch mismatch. */
export type EvictionReason = 'evict' | 'expire' | 'delete' | 'set' | 'stale';

export interface CacheLayerObserver {
  onHit?(layer: string): void;
  onMiss?(layer: string): void;
  onEvict?(layer: string, reason: EvictionReason): void;
}

export interface CacheLayerOptions<V> {
  /** Byte budget of the layer: the sum of entry sizes never exceeds it. */
  maxBytes: number;
  /**
   * Approximate bytes the value holds (e.g. 2 per string char, 4 per float32). The layer adds
   * 2 per key char and 8 per epoch. Must be a finite number ≥ 0; it is rounded up.
   */
  sizeOf: (value: V, key: string) => number;
  /** Default time to live of an entry, ms; 0 or absent: entries live until evicted. */
  ttlMs?: number;
  /** Optional cap on the number of entries too (lru-cache preallocates for it). */
  maxEntries?: number;
  observer?: CacheLayerObserver;
  /**
   * Remove expired entries on a timer instead of on their next lookup. Costs a timer per
   * entry; without it an expired entry holds its bytes until looked up or LRU-evicted.
   */
  ttlAutopurge?: boolean;
  /** Clock for TTLs (tests). Must not return 0: lru-cache reads a start time of 0 as "no TTL". */
  now?: () => number;
}

export interface CacheSetOptions {
  /** Overrides the layer's ttlMs for this entry; 0: no expiry. */
  ttlMs?: number;
  /** Shard epochs the value was computed at; get() with other current epochs drops it. */
  epochs?: readonly number[];
}

export interface CacheLayerStats {
  name: string;
  /** Entries held, expired ones not yet looked up or purged included (they still hold bytes). */
  entries: number;
  /** Sum of entry sizes as the layer counts them (lru-cache's calculatedSize); ≤ maxBytes. */
  bytes: number;
  maxBytes: number;
  hits: number;
  /** Lookups that found nothing usable, stale ones included. */
  misses: number;
  /** Lookups that found an entry from other epochs (also counted in misses and evictions.stale). */
  stale: number;
  evictions: Record<EvictionReason, number>;
  /** set() calls refused because the entry alone is bigger than the layer. */
  oversize: number;
}

interface Entry<V> {
  value: V;
  epochs: readonly number[] | undefined;
}

const BYTES_PER_KEY_CHAR = 2;
const BYTES_PER_EPOCH = 8;

export class CacheLayer<V> {
  readonly name: string;
  readonly maxBytes: number;
  readonly #cache: LRUCache<string, Entry<V>>;
  readonly #observer: CacheLayerObserver;
  readonly #ttlMs: number;
  #hits = 0;
  #misses = 0;
  #stale = 0;
  #oversize = 0;
  readonly #evictions: Record<EvictionReason, number> = { evict: 0, expire: 0, delete: 0, set: 0, stale: 0 };
  /** Set while get() removes a stale entry, so its dispose counts as 'stale', not 'delete'. */
  #removingStale = false;

  constructor(name: string, options: CacheLayerOptions<V>) {
    const { maxBytes, sizeOf, ttlMs = 0, maxEntries, observer = {}, ttlAutopurge = false, now } = options;
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new RangeError(`cache layer ${name}: maxBytes must be a positive integer, got ${maxBytes}`);
    checkTtl(name, ttlMs);
    this.name = name;
    this.maxBytes = maxBytes;
    this.#observer = observer;
    this.#ttlMs = ttlMs;
    const cacheOptions: LRUCache.Options<string, Entry<V>, unknown> = {
      maxSize: maxBytes,
      sizeCalculation: (entry, key) => entrySize(name, sizeOf(entry.value, key), key, entry.epochs),
      dispose: (_entry, _key, reason) => this.#evicted(this.#removingStale ? 'stale' : reason === 'fetch' ? 'delete' : reason),
      ttlAutopurge,
      // Age counts from set(): a hot entry must still expire, reading it is no write.
      updateAgeOnGet: false,
      allowStale: false,
    };
    if (ttlMs > 0) cacheOptions.ttl = ttlMs;
    if (maxEntries !== undefined) cacheOptions.max = maxEntries;
    if (now !== undefined) {
      cacheOptions.perf = { now };
      // lru-cache otherwise reuses a clock reading for 1 ms of real time, which would hide a
      // jump of the injected clock.
      cacheOptions.ttlResolution = 0;
    }
    this.#cache = new LRUCache<string, Entry<V>>(cacheOptions);
  }

  /**
   * The value, or undefined on a miss. With `currentEpochs`, an entry stored with other epochs
   * is a miss and is deleted (counted as stale); an entry stored without epochs is not
   * epoch-bound and is returned whatever `currentEpochs` says.
   */
  get(key: string, currentEpochs?: readonly number[]): V | undefined {
    const entry = this.#cache.get(key);
    if (entry === undefined) {
      this.#miss();
      return undefined;
    }
    if (currentEpochs !== undefined && entry.epochs !== undefined && !sameEpochs(entry.epochs, currentEpochs)) {
      this.#stale += 1;
      this.#removingStale = true;
      try {
        this.#cache.delete(key);
      } finally {
        this.#removingStale = false;
      }
      this.#miss();
      return undefined;
    }
    this.#hits += 1;
    this.#observer.onHit?.(this.name);
    return entry.value;
  }

  /** True when a live entry is there; no recency update, no hit/miss counted, epochs not checked. */
  has(key: string): boolean {
    return this.#cache.has(key);
  }

  /**
   * Stores the value, evicting least recently used entries to stay within maxBytes. Returns
   * false when the entry alone exceeds maxBytes: it is not stored, and an older entry under the
   * same key is dropped (it would otherwise outlive the value that replaced it).
   */
  set(key: string, value: V, options: CacheSetOptions = {}): boolean {
    const ttlMs = options.ttlMs ?? this.#ttlMs;
    checkTtl(this.name, ttlMs);
    // Copied: the caller's array may be reused or mutated after the entry is stored.
    const entry: Entry<V> = { value, epochs: options.epochs === undefined ? undefined : [...options.epochs] };
    const status: LRUCache.Status<string, Entry<V>> = {};
    this.#cache.set(key, entry, { ttl: ttlMs, status });
    if (status.maxEntrySizeExceeded === true) {
      this.#oversize += 1;
      return false;
    }
    return true;
  }

  delete(key: string): boolean {
    return this.#cache.delete(key);
  }

  /** Drops every entry (each counted as a 'delete' eviction); counters are kept. */
  clear(): void {
    this.#cache.clear();
  }

  stats(): CacheLayerStats {
    return {
      name: this.name,
      entries: this.#cache.size,
      bytes: this.#cache.calculatedSize,
      maxBytes: this.maxBytes,
      hits: this.#hits,
      misses: this.#misses,
      stale: this.#stale,
      evictions: { ...this.#evictions },
      oversize: this.#oversize,
    };
  }

  #miss(): void {
    this.#misses += 1;
    this.#observer.onMiss?.(this.name);
  }

  #evicted(reason: EvictionReason): void {
    this.#evictions[reason] += 1;
    this.#observer.onEvict?.(this.name, reason);
  }
}

function entrySize(name: string, valueBytes: number, key: string, epochs: readonly number[] | undefined): number {
  if (!Number.isFinite(valueBytes) || valueBytes < 0) {
    throw new TypeError(`cache layer ${name}: sizeOf returned ${valueBytes}; expected a finite number ≥ 0`);
  }
  // lru-cache throws on a size that is not a positive integer.
  return Math.max(1, Math.ceil(valueBytes) + key.length * BYTES_PER_KEY_CHAR + (epochs?.length ?? 0) * BYTES_PER_EPOCH);
}

function checkTtl(name: string, ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 0) throw new RangeError(`cache layer ${name}: ttlMs must be an integer ≥ 0, got ${ttlMs}`);
}

function sameEpochs(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}
