// Grounded answers with no HTTP in it: retrieve (through the search pipeline) → number the
// sources and build the prompt within a token budget → stream the chosen generator → check
// the citations, all yielded as one event stream (events.ts) that both answer routes encode.
//
// Answers are cached (when the policy allows) with the shard epochs of their sources and
// replayed through the same event stream as a live answer; concurrent identical requests
// share one generation; optionally, a near-identical earlier question's answer is served
// (the semantic cache), still subject to the same epoch check.
import { abortError } from '../../core/errors.js';
import { toRagwayError } from '../../core/http-errors.js';
import { DEFAULT_NAMESPACE } from '../../shards/protocol.js';
import type { CacheControl, CacheStatus, CachedAnswer, Caches } from '../cache/cache-set.js';
import { cacheKey, normalizeQuery } from '../cache/keys.js';
import type { SemanticCache } from '../cache/semantic-cache.js';
import { buildPrompt, checkCitations, PROMPT_TEMPLATE_VERSION } from '../generation/prompt.js';
import { SharedGenerations } from '../generation/shared-generation.js';
import type { ChatMessage, FinishReason, GenerationEvent, GenerationRequest, Generator, Source, Usage } from '../providers/provider.js';
import type { GeneratorRegistry } from '../providers/registry.js';
import type { Coverage } from '../schemas.js';
import type { RetrievalInput } from '../schemas.js';
import type { SearchPipeline } from '../search-pipeline.js';
import { roundMs } from '../timing.js';
import type { AnswerCache, AnswerEvent, AnswerTimings, Citation, SourcesEvent } from './events.js';
import type { RerankInfo, RerankRequest, WarnLog } from '../rerank/stage.js';
import type { TraceSpan } from '../../core/tracing.js';

export interface RagOptions {
  enabled: boolean;
  k: number;
  namespace?: string | undefined;
  /** The calling key's namespace patterns, for the shards (SearchInput.namespaces). */
  namespaces?: readonly string[] | undefined;
  filter?: Record<string, unknown> | undefined;
  /** Budget of the retrieval, ms. */
  deadlineMs?: number | undefined;
  requireComplete?: boolean | undefined;
  /** Search mode and fusion settings (gateway/schemas.ts RetrievalFields); vector search when absent. */
  retrieval?: RetrievalInput | undefined;
  /** Rerank the retrieved candidates before they become sources. */
  rerank?: RerankRequest | undefined;
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
  /** The request's span: the stages open theirs under it (tracing on only). */
  trace?: TraceSpan | undefined;
  /** The request's logger, for what a stage reports about this request. */
  log?: WarnLog | undefined;
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
  /** Told the time to the first token and the generation time of each answer generated (not replayed from the cache), in seconds. */
  onGenerated?: (timeToFirstTokenSeconds: number, generationSeconds: number) => void;
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

  /** `question` is normalizeQuery's; '' gives the semantic cache's scope (everything but the question must match). */
  #answerKey(generator: Generator, question: string, input: AnswerInput): string {
    return cacheKey({
      question,
      history: input.history,
      model: generator.id,
      embedding: this.#search.modelId,
      rag: input.rag.enabled
        ? {
            k: input.rag.k,
            namespace: input.rag.namespace ?? DEFAULT_NAMESPACE,
            filter: input.rag.filter,
            retrieval: input.rag.retrieval,
            rerank: input.rag.rerank,
          }
        : false,
      maxTokens: input.maxTokens,
      temperature: input.temperature,
      topP: input.topP,
      stop: input.stop,
      template: this.#templateKey,
    });
  }

  get generators(): GeneratorRegistry {
    return this.#generators;
  }

  /**
   * The answer as events: `sources`, `delta`…, then `done` or `error`. Everything before the
   * first event (model lookup — 404 early —, cache lookup, retrieval, prompt) throws, so the
   * route can still answer with a status; after it, a failure is one `error` event.
   */
  async *answer(input: AnswerInput, signal: AbortSignal): AsyncGenerator<AnswerEvent, void, undefined> {
    const plan = await this.#plan(input, signal);
    let reading = false;
    try {
      yield plan.sources;
      reading = true;
      yield* this.#generate(plan, signal);
    } finally {
      // Abandoned after `sources`: a shared generation must not wait for this subscriber.
      if (!reading) plan.release();
      plan.span?.end();
    }
  }

  async *#generate(plan: Plan, signal: AbortSignal): AsyncGenerator<AnswerEvent, void, undefined> {
    const generationStarted = performance.now();
    let firstTokenAt: number | undefined;
    let text = '';
    let finishReason: FinishReason | undefined;
    let usage: Usage | undefined;
    try {
      for await (const event of plan.events) {
        if (signal.aborted) throw abortError(signal);
        if (event.type === 'delta') {
          firstTokenAt ??= performance.now();
          text += event.text;
          yield { type: 'delta', text: event.text };
        } else {
          finishReason = event.finishReason;
          usage = event.usage;
        }
      }
    } catch (err) {
      plan.span?.fail(err);
      yield { type: 'error', error: toRagwayError(err) };
      return;
    }
    const finished = performance.now();
    plan.span?.set('ragway.finish_reason', finishReason ?? 'stop');
    try {
      this.#options.onGenerated?.(((firstTokenAt ?? finished) - plan.startedAt) / 1000, (finished - generationStarted) / 1000);
    } catch {
      // A broken metric must never fail an answer.
    }
    plan.remember?.();
    const { sources } = plan.sources;
    const { cited, invalid } = checkCitations(text, sources.length);
    const promptTokens = usage?.prompt_tokens ?? plan.request.messages.reduce((sum, m) => sum + this.#options.countTokens(m.content), 0);
    const completionTokens = usage?.completion_tokens ?? this.#options.countTokens(text);
    yield {
      type: 'done',
      text,
      finishReason: finishReason ?? 'stop',
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
      citations: cited.flatMap((index): Citation[] => {
        const source = sources[index - 1];
        return source === undefined ? [] : [{ index, id: source.id, document_id: source.document_id }];
      }),
      invalidCitations: invalid,
      timings: {
        ...plan.retrievalTimings,
        first_token_ms: roundMs((firstTokenAt ?? finished) - generationStarted),
        time_to_first_token_ms: roundMs((firstTokenAt ?? finished) - plan.startedAt),
        generation_ms: roundMs(finished - generationStarted),
        total_ms: roundMs(finished - plan.startedAt),
      },
    };
  }

  /** Everything before the first token, ending with where the events come from. */
  async #plan(input: AnswerInput, signal: AbortSignal): Promise<Plan> {
    const startedAt = performance.now();
    const generator = this.#generators.get(input.model);
    const mode = input.cache?.mode ?? 'default';
    const caches = this.#options.caches;
    // One normalisation: the answer key, the semantic lookup, retrieval and the extractive
    // generator all see this text, so requests that share a key get the same answer. (An LLM
    // reads the prompt, which keeps the client's spelling: the key's case folding is a
    // deliberate trade for hit rate, see cache/keys.ts.)
    const question = normalizeQuery(input.question);
    const key = this.#cacheable(generator, input) ? this.#answerKey(generator, question, input) : undefined;
    let semantic: { vector: Float32Array; scope: string } | undefined;
    if (key !== undefined && caches?.answers !== undefined && mode === 'default') {
      const lookup = input.trace?.child('cache lookup', { 'ragway.cache.layer': 'answers' });
      const current = caches.epochs.current();
      let hit = caches.answers.get(key, current);
      lookup?.set('ragway.cache.result', hit === undefined ? 'miss' : 'hit').end();
      let similarity: number | undefined;
      const semanticCache = this.#options.semantic;
      if (hit === undefined && semanticCache !== undefined) {
        const vector = await this.#search.embedQuery(question, signal, 'default', input.trace);
        semantic = { vector, scope: this.#answerKey(generator, '', input) };
        // The guard reads the client's own spelling (case marks names); the vector is of `question`.
        const found = semanticCache.lookup(input.question, vector, semantic.scope);
        if ('value' in found) {
          hit = caches.answers.get(found.value, current);
          similarity = found.similarity;
        }
        this.#options.onSemanticLookup?.(found.similarity, 'value' in found ? (hit === undefined ? 'stale' : 'hit') : found.miss);
      }
      if (hit !== undefined) return replayPlan(generator, question, hit, startedAt, similarity);
    }

    let retrieved: Source[] = [];
    let epochs: readonly number[] = caches?.epochs.current() ?? [];
    let coverage: Coverage | undefined;
    let rerank: RerankInfo | undefined;
    let retrievalTimings: RetrievalTimings = { embed_ms: 0, search_ms: 0, retrieval_ms: 0 };
    if (input.rag.enabled) {
      const result = await this.#search.search(
        {
          query: question,
          // The semantic lookup has embedded the question already: embed it once.
          ...(semantic !== undefined ? { queryVector: semantic.vector } : {}),
          k: input.rag.k,
          namespace: input.rag.namespace ?? DEFAULT_NAMESPACE,
          namespaces: input.rag.namespaces,
          filter: input.rag.filter,
          includeText: true,
          includeMetadata: true,
          cache: input.cache,
          deadlineMs: input.rag.deadlineMs,
          requireComplete: input.rag.requireComplete,
          ...input.rag.retrieval,
          rerank: input.rag.rerank,
          trace: input.trace,
          log: input.log,
        },
        signal,
      );
      rerank = result.rerank;
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
      retrievalTimings = { embed_ms: result.timings.embed_ms, search_ms: result.timings.search_ms, retrieval_ms: result.timings.total_ms };
      if (result.timings.rerank_ms !== undefined) retrievalTimings.rerank_ms = result.timings.rerank_ms;
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
    const request: GenerationRequest = { model: generator.id, messages: prompt.messages, question, sources: prompt.sources };
    if (input.maxTokens !== undefined) request.maxTokens = input.maxTokens;
    if (input.temperature !== undefined) request.temperature = input.temperature;
    if (input.topP !== undefined) request.topP = input.topP;
    if (input.stop !== undefined) request.stop = input.stop;
    // Opened before the generator is called: an upstream is sent this span's context.
    const span = input.trace?.child('generate', { 'gen_ai.request.model': generator.id, 'ragway.sources': prompt.sources.length });
    if (span !== undefined) request.trace = span.headers;
    const sources = (status: CacheStatus): SourcesEvent => ({
      type: 'sources',
      model: generator.id,
      sources: prompt.sources,
      droppedSources: prompt.droppedSources,
      coverage,
      ...(rerank !== undefined ? { rerank } : {}),
      cache: { status },
    });
    const base = { request, startedAt, retrievalTimings, span };
    if (key === undefined || mode === 'bypass') {
      return { ...base, sources: sources(key === undefined ? 'miss' : 'bypass'), events: generator.stream(request, signal), release: () => undefined };
    }
    // Joined here, before `sources` is yielded, so the status it announces is the one that happens.
    const stream = this.#shared.subscribe(key, (generationSignal) => generator.stream(request, generationSignal), signal);
    const answer = { sources: prompt.sources, droppedSources: prompt.droppedSources, coverage, ...(rerank !== undefined ? { rerank } : {}) };
    return {
      ...base,
      sources: sources(stream.shared ? 'coalesced' : 'miss'),
      events: stream.events,
      release: stream.release,
      remember: stream.shared ? undefined : () => this.#remember(key, answer, stream.recorded, { epochs, ttlMs: input.cache?.ttlMs, question: input.question, semantic }),
    };
  }

  #remember(
    key: string,
    answer: Omit<CachedAnswer, 'events'>,
    events: readonly GenerationEvent[],
    context: { epochs: readonly number[]; ttlMs: number | undefined; question: string; semantic: { vector: Float32Array; scope: string } | undefined },
  ): void {
    const answers = this.#options.caches?.answers;
    if (answers === undefined) return;
    // Only whole answers from the whole corpus are worth replaying.
    // Nor is an answer whose reranking failed open: once the reranker is back it would be wrong.
    if (answer.coverage?.partial === true || answer.rerank?.applied === false || events.at(-1)?.type !== 'done') return;
    answers.set(key, { ...answer, events: [...events] }, { epochs: [...context.epochs], ttlMs: context.ttlMs });
    if (context.semantic !== undefined) this.#options.semantic?.remember(context.question, context.semantic.vector, context.semantic.scope, key);
  }
}

type RetrievalTimings = Pick<AnswerTimings, 'embed_ms' | 'search_ms' | 'retrieval_ms' | 'rerank_ms'>;

/** Where one answer's events come from, decided before the first of them. */
interface Plan {
  sources: SourcesEvent;
  events: AsyncIterable<GenerationEvent>;
  /** The prompt (empty on a cached replay, whose usage was recorded). */
  request: GenerationRequest;
  startedAt: number;
  retrievalTimings: RetrievalTimings;
  /** Leaves a shared generation that was joined but never read. */
  release: () => void;
  /** Set for the leader of a cacheable generation: caches what it produced. */
  remember?: (() => void) | undefined;
  /** The generation's span (tracing on, not for a cached replay); ended with the answer. */
  span?: TraceSpan | undefined;
}

function replayPlan(generator: Generator, question: string, hit: CachedAnswer, startedAt: number, similarity: number | undefined): Plan {
  const cache: AnswerCache = similarity === undefined ? { status: 'hit' } : { status: 'hit', similarity };
  return {
    sources: {
      type: 'sources',
      model: generator.id,
      sources: hit.sources,
      droppedSources: hit.droppedSources,
      coverage: hit.coverage,
      ...(hit.rerank !== undefined ? { rerank: hit.rerank } : {}),
      cache,
    },
    events: replay(hit.events),
    request: { model: generator.id, messages: [], question, sources: hit.sources },
    startedAt,
    retrievalTimings: { embed_ms: 0, search_ms: 0, retrieval_ms: 0 },
    release: () => undefined,
  };
}

async function* replay(events: readonly GenerationEvent[]): AsyncGenerator<GenerationEvent> {
  for (const event of events) yield event;
}
