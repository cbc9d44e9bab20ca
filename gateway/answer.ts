// Grounded answers with no HTTP in it: retrieve (through the search pipeline) → number the
// sources and build the prompt within a token budget → stream the chosen generator →
// check the citations. /v1/query and /v1/chat/completions frame the same run differently.
import { DEFAULT_NAMESPACE } from '../shards/protocol.js';
import { buildPrompt, checkCitations } from './generation/prompt.js';
import { abortError } from './errors.js';
import type { SearchPipeline } from './pipeline.js';
import type { ChatMessage, FinishReason, GenerationRequest, Generator, Source, Usage } from './providers/provider.js';
import type { GeneratorRegistry } from './providers/registry.js';
import type { Coverage } from './schemas.js';
import { roundMs } from './timing.js';

export interface RagOptions {
  enabled: boolean;
  k: number;
  namespace?: string | undefined;
  filter?: Record<string, unknown> | undefined;
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
}

export interface AnswerSummary {
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  citations: number[];
  invalidCitations: number[];
  timings: Required<AnswerTimings>;
}

export interface AnswerServiceOptions {
  systemTemplate: string;
  contextBudgetTokens: number;
  countTokens: (text: string) => number;
}

export class AnswerService {
  readonly #search: SearchPipeline;
  readonly #generators: GeneratorRegistry;
  readonly #options: AnswerServiceOptions;

  constructor(search: SearchPipeline, generators: GeneratorRegistry, options: AnswerServiceOptions) {
    this.#search = search;
    this.#generators = generators;
    this.#options = options;
  }

  get generators(): GeneratorRegistry {
    return this.#generators;
  }

  /** Everything before the first token: model lookup (404 early), retrieval, prompt. */
  async prepare(input: AnswerInput, signal: AbortSignal): Promise<PreparedAnswer> {
    const startedAt = performance.now();
    const generator = this.#generators.get(input.model);
    let retrieved: Source[] = [];
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
        },
        signal,
      );
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
    return { generator, request, sources: prompt.sources, droppedSources: prompt.droppedSources, coverage, timings, startedAt };
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
    for await (const event of prepared.generator.stream(prepared.request, signal)) {
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
    const { cited, invalid } = checkCitations(text, prepared.sources.length);
    const promptTokens = usage?.prompt_tokens ?? prepared.request.messages.reduce((sum, m) => sum + this.#options.countTokens(m.content), 0);
    const completionTokens = usage?.completion_tokens ?? this.#options.countTokens(text);
    return {
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
}
