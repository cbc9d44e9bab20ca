// Grounded answers with no HTTP in it: retrieve (through the search pipeline) → number the
// sources and build the prompt within a token budget → stream the chosen generator →
// check the citations. /v1/query and /v1/chat/completions frame the same run differently.
//
// Answers are cached (when the policy allows) with the shard epochs of their sources and
// replayed through the same event stream as a live answer; concurrent identical requests
// share one generation; optionally, a near-identical earlier question's answer is served
// (the semantic cache), still subject to the same epoch check.
import { DEFAULT_NAMESPACE } from '../shards/protocol.js';
import { cacheKey, normalizeQuery } from './cache/keys.js';
import type { SemanticCache } from './cache/semantic-cache.js';
import type { CacheControl, CacheStatus, CachedAnswer, Caches } from './caches.js';
import { buildPrompt, checkCitations, PROMPT_TEMPLATE_VERSION } from './generation/prompt.js';
import { SharedGenerations } from './generation/shared-generation.js';
import { abortError } from '../core/errors.js';
import type { SearchPipeline } from './pipeline.js';
import type { ChatMessage, FinishReason, GenerationEvent, GenerationRequest, Generator, Source, Usage } from './providers/provider.js';
import type { GeneratorRegistry } from './providers/registry.js';
import type { Coverage } from './schemas.js';
import { roundMs } from './timing.js';

export interface RagOptions {
  enabled: boolean;
  k: number;
  namespace?: string | undefined;
  filter?: Record<string, unknown> | undefined;
  /** Budget of the retrieval, ms. */
  deadlineMs?: number | undefined;
  requireComplete?: boolean | undefined;
}

export interface AnswerInput {
  question: string;
  /** Earlier turns (and client system messages), oldest first, without the question. */
  history: ChatMessage[];
  model?: string | undefined;
  rag: RagOptions;
  maxTokens?: number | undefined;
  temperature?: number | undefined;
  topP?: number | undefined;
  stop?: string[] | undefined;
  cache?: CacheControl | undefined;
}

export interface AnswerTimings {
  embed_ms: number;
  search_ms: number;
  retrieval_ms: number;
  first_token_ms?: number;
  generation_ms?: number;
  total_ms?: number;
}

export interface PreparedAnswer {
  generator: Generator;
  request: GenerationRequest;
  /** The sources in the prompt, numbered from 1 (what [n] refers to). */
  sources: Source[];
  /** Retrieved sources left out of the prompt for the token budget. */
  droppedSources: number;
  coverage: Coverage | undefined;
  timings: AnswerTimings;
  startedAt: number;
  /** Set when this answer may be cached and shared. */
  cacheKey: string | undefined;
  cacheMode: CacheControl['mode'];
  cacheTtlMs: number | undefined;
  /** The replay, on a cache hit. */
  cached: CachedAnswer | undefined;
  /** hit, or what is expected at admission (a run may still become the leader of a coalesced group). */
  cacheStatus: CacheStatus;
  /** Similarity of the earlier question, when the semantic cache answered. */
  semanticSimilarity: number | undefined;
  epochs: readonly number[];
  /** For the semantic cache: the question's embedding and lookup scope. */
  semantic: { vector: Float32Array; scope: string } | undefined;
}

export interface AnswerSummary {
  cacheStatus: CacheStatus;
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  citations: number[];
  invalidCitations: number[];
  timings: Required<AnswerTimings>;
}

export type AnswerCachePolicy = 'deterministic' | 'always' | 'off';

export interface AnswerServiceOptions {
  systemTemplate: string;
  contextBudgetTokens: number;
  countTokens: (text: string) => number;
  caches?: Caches;
  /** deterministic: only answers that repeat exactly (ragway-extractive, temperature 0). */
  cachePolicy?: AnswerCachePolicy;
  /** Off unless given. Its values are answer-cache keys, so staleness is the answer cache's epoch check. */
  semantic?: SemanticCache<string>;
  /** Told the nearest similarity and the outcome (hit, or why not) of each semantic lookup. */
  onSemanticLookup?: (similarity: number | undefined, outcome: string) => void;
}

const DETERMINISTIC_GENERATORS = new Set(['ragway-extractive']);

export class AnswerService {
  readonly #search: SearchPipeline;
  readonly #generators: GeneratorRegistry;
  readonly #options: AnswerServiceOptions;
  readonly #shared = new SharedGenerations();
  readonly #templateKey: string;

  constructor(search: SearchPipeline, generators: GeneratorRegistry, options: AnswerServiceOptions) {
    this.#search = search;
    this.#generators = generators;
    this.#options = options;
    this.#templateKey = cacheKey({ version: PROMPT_TEMPLATE_VERSION, template: options.systemTemplate });
  }

  #cacheable(generator: Generator, input: AnswerInput): boolean {
    if (this.#options.caches?.answers === undefined) return false;
    switch (this.#options.cachePolicy ?? 'deterministic') {
      case 'off':
        return false;
      case 'always':
        return true;
      case 'deterministic':
        return DETERMINISTIC_GENERATORS.has(generator.id) || input.temperature === 0;
    }
  }

  #answerKey(generator: Generator, input: AnswerInput): string {
    return cacheKey({
      question: normalizeQuery(input.question),
      history: input.history,
      model: generator.id,
      embedding: this.#search.modelId,
      rag: input.rag.enabled ? { k: input.rag.k, namespace: input.rag.namespace ?? DEFAULT_NAMESPACE, filter: input.rag.filter } : false,
      maxTokens: input.maxTokens,
      temperature: input.temperature,
      topP: input.topP,
      stop: input.stop,
      template: this.#templateKey,
    });
  }

  /** Scope for the semantic cache: everything but the question's wording must match. */
  #semanticScope(generator: Generator, input: AnswerInput): string {
    return this.#answerKey(generator, { ...input, question: '' });
  }

  get generators(): GeneratorRegistry {
    return this.#generators;
  }

  /** Everything before the first token: model lookup (404 early), retrieval, prompt. */
  async prepare(input: AnswerInput, signal: AbortSignal): Promise<PreparedAnswer> {
    const startedAt = performance.now();
    const generator = this.#generators.get(input.model);
    const mode = input.cache?.mode ?? 'default';
    const caches = this.#options.caches;
    const cacheable = this.#cacheable(generator, input);
    const key = cacheable ? this.#answerKey(generator, input) : undefined;
    const base = { generator, startedAt, cacheKey: key, cacheMode: mode, cacheTtlMs: input.cache?.ttlMs };
    let semantic: PreparedAnswer['semantic'];
    if (key !== undefined && caches?.answers !== undefined && mode === 'default') {
      const current = caches.epochs.current();
      let hit = caches.answers.get(key, current);
      let similarity: number | undefined;
      const semanticCache = this.#options.semantic;
      if (hit === undefined && semanticCache !== undefined) {
        const vector = await this.#search.embedQuery(input.question, signal);
        semantic = { vector, scope: this.#semanticScope(generator, input) };
        const found = semanticCache.lookup(input.question, vector, semantic.scope);
        if ('value' in found) {
          hit = caches.answers.get(found.value, current);
          similarity = found.similarity;
        }
        this.#options.onSemanticLookup?.(found.similarity, 'value' in found ? (hit === undefined ? 'stale' : 'hit') : found.miss);
      }
      if (hit !== undefined) {
        return {
          ...base,
          request: { model: generator.id, messages: [], question: input.question, sources: hit.sources },
          sources: hit.sources,
          droppedSources: hit.droppedSources,
          coverage: hit.coverage,
          timings: { embed_ms: 0, search_ms: 0, retrieval_ms: 0 },
          cached: hit,
          cacheStatus: 'hit',
          semanticSimilarity: similarity,
          epochs: current,
          semantic,
        };
      }
    }
    let retrieved: Source[] = [];
    let epochs: readonly number[] = caches?.epochs.current() ?? [];
    let coverage: Coverage | undefined;
    let timings: AnswerTimings = { embed_ms: 0, search_ms: 0, retrieval_ms: 0 };
    if (input.rag.enabled) {
      const result = await this.#search.search(
        {
          query: input.question,
          k: input.rag.k,
          namespace: input.rag.namespace ?? DEFAULT_NAMESPACE,
          filter: input.rag.filter,
          includeText: true,
          includeMetadata: true,
          cache: input.cache,
          deadlineMs: input.rag.deadlineMs,
          requireComplete: input.rag.requireComplete,
        },
        signal,
      );
      epochs = result.epochs;
      retrieved = result.results.map((hit, i) => ({
        index: i + 1,
        id: hit.id,
        document_id: hit.document_id,
        text: hit.text ?? '',
        score: hit.score,
        metadata: hit.metadata ?? {},
      }));
      coverage = result.coverage;
      timings = { embed_ms: result.timings.embed_ms, search_ms: result.timings.search_ms, retrieval_ms: result.timings.total_ms };
    }
    const prompt = buildPrompt({
      question: input.question,
      history: input.history,
      sources: retrieved,
      systemTemplate: this.#options.systemTemplate,
      contextBudgetTokens: this.#options.contextBudgetTokens,
      countTokens: this.#options.countTokens,
      partialCoverage: coverage?.partial === true,
    });
    const request: GenerationRequest = {
      model: generator.id,
      messages: prompt.messages,
      question: input.question,
      sources: prompt.sources,
    };
    if (input.maxTokens !== undefined) request.maxTokens = input.maxTokens;
    if (input.temperature !== undefined) request.temperature = input.temperature;
    if (input.topP !== undefined) request.topP = input.topP;
    if (input.stop !== undefined) request.stop = input.stop;
    const cacheStatus: CacheStatus =
      key === undefined ? 'miss' : mode === 'bypass' ? 'bypass' : this.#shared.isRunning(key) ? 'coalesced' : 'miss';
    return {
      ...base,
      semanticSimilarity: undefined,
      semantic,
      request,
      sources: prompt.sources,
      droppedSources: prompt.droppedSources,
      coverage,
      timings,
      cached: undefined,
      cacheStatus,
      epochs,
    };
  }

  /**
   * Streams the answer's text deltas to `onDelta` (awaited: a slow client slows the
   * generator) and resolves the summary. Errors before the first delta reject with the
   * generator's RagwayError; errors after it reject too, after the deltas already sent —
   * the caller turns them into an in-stream error event.
   */
  async run(prepared: PreparedAnswer, signal: AbortSignal, onDelta: (text: string) => Promise<void> | void): Promise<AnswerSummary> {
    const generationStarted = performance.now();
    let firstTokenAt: number | undefined;
    let text = '';
    let finishReason: FinishReason | undefined;
    let usage: Usage | undefined;
    const { events, cacheStatus, recorded } = this.#events(prepared, signal);
    for await (const event of events) {
      if (signal.aborted) throw abortError(signal);
      if (event.type === 'delta') {
        firstTokenAt ??= performance.now();
        text += event.text;
        await onDelta(event.text);
      } else {
        finishReason = event.finishReason;
        usage = event.usage;
      }
    }
    const finished = performance.now();
    if (recorded !== undefined && cacheStatus === 'miss') this.#remember(prepared, recorded);
    const { cited, invalid } = checkCitations(text, prepared.sources.length);
    const promptTokens = usage?.prompt_tokens ?? prepared.request.messages.reduce((sum, m) => sum + this.#options.countTokens(m.content), 0);
    const completionTokens = usage?.completion_tokens ?? this.#options.countTokens(text);
    return {
      cacheStatus,
      text,
      finishReason: finishReason ?? 'stop',
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
      citations: cited,
      invalidCitations: invalid,
      timings: {
        ...prepared.timings,
        first_token_ms: roundMs((firstTokenAt ?? finished) - generationStarted),
        generation_ms: roundMs(finished - generationStarted),
        total_ms: roundMs(finished - prepared.startedAt),
      },
    };
  }

  /** Where the events come from: a cached replay, a shared generation, or the generator alone. */
  #events(
    prepared: PreparedAnswer,
    signal: AbortSignal,
  ): { events: AsyncIterable<GenerationEvent>; cacheStatus: CacheStatus; recorded: readonly GenerationEvent[] | undefined } {
    if (prepared.cached !== undefined) return { events: replay(prepared.cached.events), cacheStatus: 'hit', recorded: undefined };
    const key = prepared.cacheKey;
    if (key === undefined || prepared.cacheMode === 'bypass') {
      return { events: prepared.generator.stream(prepared.request, signal), cacheStatus: prepared.cacheStatus, recorded: undefined };
    }
    const stream = this.#shared.subscribe(key, (generationSignal) => prepared.generator.stream(prepared.request, generationSignal), signal);
    return { events: stream.events, cacheStatus: stream.shared ? 'coalesced' : 'miss', recorded: stream.recorded };
  }

  #remember(prepared: PreparedAnswer, events: readonly GenerationEvent[]): void {
    const caches = this.#options.caches;
    const key = prepared.cacheKey;
    if (caches?.answers === undefined || key === undefined) return;
    // Only whole answers from the whole corpus are worth replaying.
    if (prepared.coverage?.partial === true || events.at(-1)?.type !== 'done') return;
    caches.answers.set(
      key,
      { events: [...events], sources: prepared.sources, droppedSources: prepared.droppedSources, coverage: prepared.coverage },
      { epochs: [...prepared.epochs], ttlMs: prepared.cacheTtlMs },
    );
    if (prepared.semantic !== undefined) {
      this.#options.semantic?.remember(prepared.request.question, prepared.semantic.vector, prepared.semantic.scope, key);
    }
  }
}

async function* replay(events: readonly GenerationEvent[]): AsyncGenerator<GenerationEvent> {
  for (const event of events) yield event;
}
