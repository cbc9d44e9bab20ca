// The query path with no HTTP in it: (cache, later) → embed → scatter → merge. Routes, the
// CLI and benchmarks all call this, so what is measured is what is served.
import { DEFAULT_NAMESPACE } from '../shards/protocol.js';
import { compileFilter } from '../shards/filter.js';
import type { EmbeddingBatcher } from '../embedder/batcher.js';
import type { Scatter } from '../retriever/scatter.js';

/** Scatter or SearchCoalescer: anything that searches all shards for one vector. */
export type VectorSearch = Pick<Scatter, 'search'>;
import { createError, throwIfAborted } from './errors.js';
import { roundMs } from './timing.js';
import type { Coverage, SearchHit, SearchTimings } from './schemas.js';

export interface SearchInput {
  query?: string | undefined;
  vector?: readonly number[] | undefined;
  k: number;
  namespace?: string | undefined;
  filter?: Record<string, unknown> | undefined;
  includeText: boolean;
  includeMetadata: boolean;
}

export interface SearchOutput {
  model: string;
  results: SearchHit[];
  coverage: Coverage;
  timings: SearchTimings;
}

export class SearchPipeline {
  readonly #batcher: EmbeddingBatcher;
  readonly #shards: VectorSearch;

  constructor(batcher: EmbeddingBatcher, shards: VectorSearch) {
    this.#batcher = batcher;
    this.#shards = shards;
  }

  async search(input: SearchInput, signal?: AbortSignal): Promise<SearchOutput> {
    const started = performance.now();
    // Compiling here (not only on the shards) turns a bad filter into a 400 before any
    // embedding or network work is spent on it.
    if (input.filter !== undefined) compileFilter(input.filter);
    const namespace = input.namespace ?? DEFAULT_NAMESPACE;

    const vector = input.vector !== undefined ? Float32Array.from(input.vector) : await this.#embedQuery(input.query, signal);
    const embedded = performance.now();
    throwIfAborted(signal);
    // ef is left to each shard (its --ef, raised to k there).
    const result = await this.#shards.search(
      vector,
      {
        k: input.k,
        namespace,
        ...(input.filter !== undefined ? { filter: input.filter } : {}),
        includeText: input.includeText,
        includeMetadata: input.includeMetadata,
      },
      signal,
    );
    if (!result.namespaceFound && namespace !== DEFAULT_NAMESPACE) {
      throw createError('RAGWAY_ERR_NAMESPACE_NOT_FOUND', `namespace "${namespace}" has no documents on any shard`, {
        param: 'namespace',
      });
    }
    // A query made only of words the model does not know embeds to zeros: it is similar to
    // nothing (every score would be 0), so it matches nothing rather than returning noise.
    const hits = vector.every((value) => value === 0) ? [] : result.hits;
    return this.#output(hits, result.coverage, started, embedded);
  }

  #output(results: SearchHit[], coverage: Coverage, started: number, embedded: number): SearchOutput {
    const finished = performance.now();
    return {
      model: this.#batcher.backend.modelId,
      results,
      coverage,
      timings: {
        embed_ms: roundMs(embedded - started),
        search_ms: roundMs(finished - embedded),
        total_ms: roundMs(finished - started),
      },
    };
  }

  async #embedQuery(query: string | undefined, signal: AbortSignal | undefined): Promise<Float32Array> {
    if (query === undefined) throw createError('RAGWAY_ERR_INVALID_REQUEST', 'give a query (text) or a vector', { param: 'query' });
    const { vectors } = await this.#batcher.embed([query], { signal, param: 'query' });
    return vectors[0] as Float32Array;
  }
}
