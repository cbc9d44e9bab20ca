// The query path with no HTTP in it: retrieval cache → (single-flight) embed → scatter →
// merge. Routes, the answer service and benchmarks all call this, so what is measured is
// what is served.
//
// Freshness: a cached result remembers the write epoch of every shard it came from and is
// served only while the gateway's view of those epochs is unchanged. Writes through this
// gateway update that view at once; writes made elsewhere are seen at the next epoch poll.
import { compileFilter } from '../shards/filter.js';
import { DEFAULT_NAMESPACE, type Bm25Params } from '../shards/protocol.js';
import type { EmbeddingBatcher } from '../embedder/batcher.js';
import { searchByMode, type ModeOptions, type RetrievalMode } from '../retriever/hybrid-search.js';
import { coverageError, type Scatter } from '../retriever/scatter.js';
import { SingleFlight } from './cache/single-flight.js';
import { cacheKey, normalizeQuery, vectorKey } from './cache/keys.js';
import type { CacheControl, CacheStatus, CachedRetrieval, Caches } from './cache/cache-set.js';
import { createError, throwIfAborted } from '../core/errors.js';
import type { Coverage, SearchHit, SearchTimings } from './schemas.js';
import { roundMs } from './timing.js';
import type { RerankInfo, RerankRequest, RerankStage, WarnLog } from './rerank/stage.js';
import type { TraceSpan } from '../core/tracing.js';
import { SpanShardTrace } from './tracing/shard-trace.js';

/** Scatter or SearchCoalescer: anything that searches all shards for one vector. */
export type VectorSearch = Pick<Scatter, 'search'>;

export interface SearchInput {
  query?: string | undefined;
  vector?: readonly number[] | Float32Array | undefined;
  /** The embedding of normalizeQuery(`query`) when the caller already has it; the cache key is still the text. */
  queryVector?: Float32Array | undefined;
  k: number;
  /** hnswlib ef for this query; each shard's own default when absent. */
  ef?: number | undefined;
  namespace?: string | undefined;
  /**
   * The namespace patterns of the API key the search runs for, sent with every shard call (the
   * shards refuse any other namespace); undefined when no key is in play. Not part of the
   * cache key: the route has already checked the key may read `namespace`, and results for one
   * namespace are the same whichever allowed key asked.
   */
  namespaces?: readonly string[] | undefined;
  filter?: Record<string, unknown> | undefined;
  includeText: boolean;
  includeMetadata: boolean;
  cache?: CacheControl | undefined;
  /** Time budget in ms from now; past it the search fails with 504 or (by default) answers without the late shards. */
  deadlineMs?: number | undefined;
  /** 503 rather than an answer that lacks a shard. */
  requireComplete?: boolean | undefined;
  /** vector (default), lexical (BM25) or hybrid (both, fused); lexical and hybrid need `query`. */
  mode?: RetrievalMode | undefined;
  rrfK?: number | undefined;
  alpha?: number | undefined;
  mmrLambda?: number | undefined;
  candidates?: number | undefined;
  bm25?: Bm25Params | undefined;
  /** Rerank the first top_n candidates and keep the best k (text queries only). */
  rerank?: RerankRequest | undefined;
  /** The span the stages' spans go under (the request's, or the answer's); absent when tracing is off. */
  trace?: TraceSpan | undefined;
  /** The request's logger, for what a stage reports about this request (a reranker failing open). */
  log?: WarnLog | undefined;
}

export interface SearchOutput {
  model: string;
  results: SearchHit[];
  coverage: Coverage;
  timings: SearchTimings;
  cache: CacheStatus;
  /** The shard epochs the results were computed under (cache validity for answers built on them). */
  epochs: readonly number[];
  /** Present when reranking was asked for: whether it was applied, and why not. */
  rerank?: RerankInfo;
}

export type SearchStage = 'embed' | 'search' | 'rerank';
/** Told how long each stage of a computed search took, in seconds (single-flight followers and cache hits run none). */
export type StageObserver = (stage: SearchStage, seconds: number) => void;

interface Computed extends CachedRetrieval {
  epochs: number[];
  embedMs: number;
  searchMs: number;
}

export class SearchPipeline {
  readonly #batcher: EmbeddingBatcher;
  readonly #shards: VectorSearch;
  readonly #caches: Caches | undefined;
  readonly #flights = new SingleFlight<Computed>();
  readonly #embeddingFlights = new SingleFlight<Float32Array>();

  readonly #reranker: RerankStage | undefined;
  readonly #onStage: StageObserver | undefined;

  constructor(batcher: EmbeddingBatcher, shards: VectorSearch, caches?: Caches, reranker?: RerankStage, onStage?: StageObserver) {
    this.#batcher = batcher;
    this.#shards = shards;
    this.#caches = caches;
    this.#reranker = reranker;
    this.#onStage = onStage;
  }

  /** Metrics: a stage that ran (cache hits run none); a throwing observer is ignored. */
  #observe(stage: SearchStage, ms: number): void {
    try {
      this.#onStage?.(stage, ms / 1000);
    } catch {
      // A broken metric must never fail a search.
    }
  }

  get modelId(): string {
    return this.#batcher.backend.modelId;
  }

  /** The retrieval cache key: normalized query text (what is embedded), or the vector's hash, and every parameter that changes results. */
  retrievalKey(input: SearchInput): string {
    return cacheKey({
      query: input.vector === undefined ? normalizeQuery(input.query ?? '') : undefined,
      vector: input.vector === undefined ? undefined : vectorKey(input.vector instanceof Float32Array ? input.vector : Float32Array.from(input.vector)),
      model: this.modelId,
      k: input.k,
      ef: input.ef,
      namespace: input.namespace ?? DEFAULT_NAMESPACE,
      filter: input.filter,
      text: input.includeText,
      metadata: input.includeMetadata,
      mode: input.mode ?? 'vector',
      rrf_k: input.rrfK,
      alpha: input.alpha,
      mmr: input.mmrLambda,
      candidates: input.candidates,
      bm25: input.bm25,
    });
  }

  async search(request: SearchInput, callerSignal?: AbortSignal): Promise<SearchOutput> {
    const output =
      request.trace === undefined
        ? await this.#searchAndRerank(request, callerSignal)
        : // One span for the retrieval; the stages below open theirs under it.
          await request.trace.run('retrieve', { 'ragway.retrieval.mode': request.mode ?? 'vector', 'ragway.k': request.k }, async (span) => {
            const found = await this.#searchAndRerank({ ...request, trace: span }, callerSignal);
            span.set('ragway.cache.result', found.cache).set('ragway.coverage.partial', found.coverage.partial).set('ragway.results', found.results.length);
            return found;
          });
    const { coverage } = output;
    // The request's own line (reqId, trace id): which shards it went without, and why.
    if (coverage.partial) request.log?.warn({ coverage }, `answered without ${coverage.shards_total - coverage.shards_ok} of ${coverage.shards_total} shards`);
    return output;
  }

  async #searchAndRerank(request: SearchInput, callerSignal?: AbortSignal): Promise<SearchOutput> {
    const rerank = request.rerank;
    if (rerank === undefined) return this.#search(request, callerSignal);
    const started = performance.now();
    const reranker = this.#checkRerank(request, rerank);
    // The candidates are retrieved (and cached) as a search for top_n with text, whatever the
    // request shows: the reranker reads the text.
    const retrieved = await this.#search({ ...request, k: reranker.candidates(rerank, request.k), includeText: true, rerank: undefined }, callerSignal);
    const rerankInput = { query: request.query ?? '', hits: retrieved.results, keep: request.k, request: rerank, cache: request.cache, log: request.log };
    const reranked =
      request.trace === undefined
        ? await reranker.rerank(rerankInput, callerSignal)
        : await request.trace.run('rerank', { 'ragway.rerank.model': reranker.modelId }, async (span) => {
            const result = await reranker.rerank(rerankInput, callerSignal);
            span.set('ragway.rerank.applied', result.info.applied).set('ragway.rerank.candidates', result.info.candidates);
            if (!result.info.applied) span.set('ragway.rerank.failure', result.info.code);
            return result;
          });
    this.#observe('rerank', reranked.ms);
    const results = request.includeText ? reranked.hits : reranked.hits.map(({ text: _text, ...hit }) => hit);
    return {
      ...retrieved,
      results,
      rerank: reranked.info,
      timings: { ...retrieved.timings, rerank_ms: roundMs(reranked.ms), total_ms: roundMs(performance.now() - started) },
    };
  }

  /** The reranker for a request that asks for one, or the 400 that says why it cannot be had. */
  #checkRerank(request: SearchInput, rerank: RerankRequest): RerankStage {
    if (this.#reranker === undefined) {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', 'reranking was asked for, but no reranker is configured (RAGWAY_RERANK_URL or RAGWAY_RERANK_MODEL_DIR)', {
        param: 'rerank',
      });
    }
    if (request.query === undefined) {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', 'reranking needs a text query; a vector search cannot be reranked', { param: 'rerank' });
    }
    this.#reranker.model(rerank);
    return this.#reranker;
  }

  async #search(request: SearchInput, callerSignal?: AbortSignal): Promise<SearchOutput> {
    const started = performance.now();
    // A JSON vector becomes float32 once, for both the cache key and the shards. Query text is
    // normalised once, and that text is both the cache key and what gets embedded: a key that
    // folds what the model does not (full-width letters, say) would let one spelling's results
    // be served for another that embeds differently — cache poisoning.
    const input =
      request.vector === undefined
        ? { ...request, query: normalizeQuery(request.query ?? '') }
        : request.vector instanceof Float32Array
          ? request
          : { ...request, vector: Float32Array.from(request.vector) };
    const mode = input.cache?.mode ?? 'default';
    const layer = this.#caches?.retrieval;
    const epochs = this.#caches?.epochs;
    const key = layer !== undefined && mode !== 'bypass' ? this.retrievalKey(input) : undefined;
    if (key !== undefined && mode === 'default' && layer !== undefined && epochs !== undefined) {
      const lookup = input.trace?.child('cache lookup', { 'ragway.cache.layer': 'retrieval' });
      const current = epochs.current();
      const hit = layer.get(key, current);
      lookup?.set('ragway.cache.result', hit === undefined ? 'miss' : 'hit').end();
      if (hit !== undefined) return this.#output({ ...hit, epochs: [...current], embedMs: 0, searchMs: 0 }, 'hit', started);
    }

    // Everything below is the miss path; a hit needs neither of these.
    // Compiling here (not only on the shards) turns a bad filter into a 400 before any
    // embedding or network work is spent on it (a bad filter is never cached, so it always gets here).
    if (input.filter !== undefined) compileFilter(input.filter);
    const deadline = input.deadlineMs === undefined ? undefined : Date.now() + input.deadlineMs;
    // The budget covers the whole search (queueing for the embedder included), not only the shard calls.
    const signal =
      input.deadlineMs === undefined
        ? callerSignal
        : callerSignal === undefined
          ? AbortSignal.timeout(input.deadlineMs)
          : AbortSignal.any([callerSignal, AbortSignal.timeout(input.deadlineMs)]);

    if (key === undefined || layer === undefined || epochs === undefined) {
      const computed = await this.#compute(input, signal, deadline);
      this.#caches?.epochs.observe(computed.epochs);
      return this.#output(computed, layer === undefined ? 'miss' : 'bypass', started);
    }

    const { value, shared } = await this.#flights.run(key, (flightSignal) => this.#compute(input, flightSignal, deadline), signal);
    // A follower that insists on completeness may have joined a leader that did not.
    const incomplete = input.requireComplete === true ? coverageError(value.coverage) : undefined;
    if (incomplete !== undefined) throw incomplete;
    if (!shared) {
      epochs.observe(value.epochs);
      // A partial answer is not the corpus's answer: never remember it.
      if (!value.coverage.partial) {
        layer.set(key, { results: value.results, coverage: value.coverage }, { epochs: value.epochs, ttlMs: input.cache?.ttlMs });
      }
    }
    return this.#output(value, shared ? 'coalesced' : 'miss', started);
  }

  /** The embedding of exactly this text (callers pass normalizeQuery's), through the embedding cache and single-flight. */
  async embedQuery(query: string, signal?: AbortSignal, mode: CacheControl['mode'] = 'default', trace?: TraceSpan): Promise<Float32Array> {
    if (trace === undefined) return this.#embedQuery(query, signal, mode);
    return trace.run('embed', { 'ragway.embed.model': this.modelId }, (span) => this.#embedQuery(query, signal, mode, span));
  }

  async #embedQuery(query: string, signal: AbortSignal | undefined, mode: CacheControl['mode'], span?: TraceSpan): Promise<Float32Array> {
    const layer = this.#caches?.embeddings;
    const embed = async (embedSignal?: AbortSignal): Promise<Float32Array> => {
      const { vectors } = await this.#batcher.embed([query], { signal: embedSignal, param: 'query' });
      return vectors[0] as Float32Array;
    };
    if (layer === undefined || mode === 'bypass') return embed(signal);
    // Exact text: the tokenizer, not this cache, decides what counts as the same input.
    const key = `${this.modelId}\u0000${query}`;
    if (mode === 'default') {
      const hit = layer.get(key);
      span?.set('ragway.cache.result', hit === undefined ? 'miss' : 'hit');
      if (hit !== undefined) return hit;
    }
    const { value, shared } = await this.#embeddingFlights.run(key, embed, signal);
    if (shared) span?.set('ragway.cache.result', 'coalesced');
    if (!shared) layer.set(key, value);
    return value;
  }

  async #compute(input: SearchInput, signal: AbortSignal | undefined, deadline: number | undefined): Promise<Computed> {
    const started = performance.now();
    const namespace = input.namespace ?? DEFAULT_NAMESPACE;
    const mode = input.mode ?? 'vector';
    if (mode !== 'vector' && input.query === undefined) {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', `mode "${mode}" searches text: give a query, not a vector`, { param: 'mode' });
    }
    const vector =
      mode === 'lexical'
        ? undefined
        : input.vector !== undefined
        ? input.vector instanceof Float32Array
          ? input.vector
          : Float32Array.from(input.vector)
        : (input.queryVector ?? (await this.embedQuery(input.query ?? '', signal, input.cache?.mode, input.trace)));
    const embedded = performance.now();
    throwIfAborted(signal);
    // Without an ef, each shard uses its own --ef (raised to k there).
    const options = {
      k: input.k,
      namespace,
      ...(input.filter !== undefined ? { filter: input.filter } : {}),
      ...(input.ef !== undefined ? { ef: input.ef } : {}),
      ...(deadline !== undefined ? { deadline } : {}),
      ...(input.requireComplete === true ? { requireComplete: true } : {}),
      ...(input.namespaces !== undefined ? { namespaces: input.namespaces } : {}),
      includeText: input.includeText,
      includeMetadata: input.includeMetadata,
    };
    const modeOptions: ModeOptions = { mode, rrfK: input.rrfK, alpha: input.alpha, mmrLambda: input.mmrLambda, candidates: input.candidates, bm25: input.bm25 };
    const scatter = (shardOptions: typeof options & { trace?: SpanShardTrace }): ReturnType<VectorSearch['search']> =>
      mode === 'vector' && input.mmrLambda === undefined
        ? this.#shards.search(vector, shardOptions, signal)
        : searchByMode(this.#shards, { vector, text: input.query }, shardOptions, modeOptions, signal);
    const result =
      input.trace === undefined
        ? await scatter(options)
        : await input.trace.run('search shards', { 'ragway.retrieval.mode': mode }, async (span) => {
            const found = await scatter({ ...options, trace: new SpanShardTrace(span) });
            span.set('ragway.coverage.shards_ok', found.coverage.shards_ok).set('ragway.coverage.shards_total', found.coverage.shards_total);
            return found;
          });
    if (!result.namespaceFound && namespace !== DEFAULT_NAMESPACE) {
      throw createError('RAGWAY_ERR_NAMESPACE_NOT_FOUND', `namespace "${namespace}" has no documents on any shard`, {
        param: 'namespace',
      });
    }
    // A query made only of words the model does not know embeds to zeros: it is similar to
    // nothing (every score would be 0), so it matches nothing rather than returning noise.
    const results = mode === 'vector' && vector !== undefined && vector.every((value) => value === 0) ? [] : result.hits;
    const searched = performance.now();
    if (mode !== 'lexical' && input.vector === undefined && input.queryVector === undefined) this.#observe('embed', embedded - started);
    this.#observe('search', searched - embedded);
    return {
      results,
      coverage: result.coverage,
      epochs: result.epochs,
      embedMs: embedded - started,
      searchMs: searched - embedded,
    };
  }

  #output(computed: Computed, cache: CacheStatus, started: number): SearchOutput {
    return {
      model: this.modelId,
      results: computed.results,
      coverage: computed.coverage,
      timings: {
        embed_ms: roundMs(computed.embedMs),
        search_ms: roundMs(computed.searchMs),
        total_ms: roundMs(performance.now() - started),
      },
      cache,
      epochs: computed.epochs,
    };
  }
}
