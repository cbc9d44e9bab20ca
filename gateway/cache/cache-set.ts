// The gateway's cache layers and what keeps them honest: the shards' write epochs. Built
// once per app (no globals). A layer sized 0 bytes is off.
import { CacheLayer, type CacheLayerObserver } from './lru-layer.js';
import { EpochTracker } from './epoch-tracker.js';
import type { SearchHit, Coverage } from '../schemas.js';
import type { GenerationEvent, Source } from '../providers/provider.js';

export type CacheMode = 'default' | 'bypass' | 'refresh';
/** What the response header `x-ragway-cache` says. */
export type CacheStatus = 'hit' | 'miss' | 'bypass' | 'coalesced';

export interface CacheControl {
  mode: CacheMode;
  ttlMs?: number | undefined;
}

export interface CachedRetrieval {
  results: SearchHit[];
  coverage: Coverage;
}

export interface CachedAnswer {
  events: GenerationEvent[];
  sources: Source[];
  droppedSources: number;
  coverage: Coverage | undefined;
}

export interface Caches {
  embeddings: CacheLayer<Float32Array> | undefined;
  retrieval: CacheLayer<CachedRetrieval> | undefined;
  answers: CacheLayer<CachedAnswer> | undefined;
  epochs: EpochTracker;
}

export interface CacheSizes {
  embeddingsBytes: number;
  embeddingsTtlMs: number;
  retrievalBytes: number;
  retrievalTtlMs: number;
  answersBytes: number;
  answersTtlMs: number;
}

/** Rough bytes of a JSON-like value: what it would cost serialized, which tracks heap use. */
function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value)) * 2;
}

export function createCaches(sizes: CacheSizes, epochs: EpochTracker, observer: CacheLayerObserver): Caches {
  return {
    embeddings:
      sizes.embeddingsBytes > 0
        ? new CacheLayer<Float32Array>('embeddings', {
            maxBytes: sizes.embeddingsBytes,
            ttlMs: sizes.embeddingsTtlMs,
            sizeOf: (vector) => vector.byteLength + 64,
            observer,
          })
        : undefined,
    retrieval:
      sizes.retrievalBytes > 0
        ? new CacheLayer<CachedRetrieval>('retrieval', { maxBytes: sizes.retrievalBytes, ttlMs: sizes.retrievalTtlMs, sizeOf: jsonBytes, observer })
        : undefined,
    answers:
      sizes.answersBytes > 0
        ? new CacheLayer<CachedAnswer>('answers', { maxBytes: sizes.answersBytes, ttlMs: sizes.answersTtlMs, sizeOf: jsonBytes, observer })
        : undefined,
    epochs,
  };
}
