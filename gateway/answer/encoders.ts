// The two wire forms of one answer event stream. An encoder turns each event into SSE frames
// (streaming) or a whole answer into one JSON body; nothing else differs between /v1/query
// and /v1/chat/completions. Pure: no Fastify, no sockets, so both can be tested on events.
import type { AnswerEvent, DoneEvent, SourcesEvent } from './events.js';

export interface SseFrame {
  /** The `event:` field; absent means the default, "message" (what OpenAI clients read). */
  event?: string;
  data: string;
}

export interface AnswerEncoder {
  /** The frames one event becomes on an SSE stream. */
  frames(event: AnswerEvent): SseFrame[];
  /** Frames after the last event (OpenAI's `[DONE]`). */
  end(): SseFrame[];
  /** The JSON response of a whole answer, when the client did not ask for a stream. */
  body(sources: SourcesEvent, done: DoneEvent): unknown;
}

function sourcesFields(sources: SourcesEvent): Record<string, unknown> {
  return { sources: sources.sources, dropped_sources: sources.droppedSources, coverage: sources.coverage ?? null };
}

function outcomeFields(done: DoneEvent): Record<string, unknown> {
  return { citations: done.citations, invalid_citations: done.invalidCitations, timings: done.timings };
}

/**
 * ragway's native RAG stream: `event: sources` → `event: delta` ({text})… → `event: done`
 * ({finish_reason, usage, citations, timings}) or `event: error` (the catalog envelope).
 */
export class NativeAnswerEncoder implements AnswerEncoder {
  #coverage: SourcesEvent['coverage'];

  frames(event: AnswerEvent): SseFrame[] {
    switch (event.type) {
      case 'sources':
        this.#coverage = event.coverage;
        return [{ event: 'sources', data: JSON.stringify({ model: event.model, ...sourcesFields(event) }) }];
      case 'delta':
        return [{ event: 'delta', data: JSON.stringify({ text: event.text }) }];
      case 'done':
        return [
          {
            event: 'done',
            data: JSON.stringify({
              finish_reason: event.finishReason,
              usage: event.usage,
              citations: event.citations,
              invalid_citations: event.invalidCitations,
              coverage: this.#coverage ?? null,
              timings: event.timings,
            }),
          },
        ];
      case 'error':
        return [{ event: 'error', data: JSON.stringify(event.error.toEnvelope()) }];
    }
  }

  end(): SseFrame[] {
    return [];
  }

  body(sources: SourcesEvent, done: DoneEvent): unknown {
    return {
      object: 'query.result',
      model: sources.model,
      answer: done.text,
      finish_reason: done.finishReason,
      citations: done.citations,
      invalid_citations: done.invalidCitations,
      ...sourcesFields(sources),
      usage: done.usage,
      timings: done.timings,
    };
  }
}

export interface OpenAiChunkOptions {
  /** Constant over the stream, as OpenAI's are. */
  id: string;
  created: number;
  /** `stream_options.include_usage`: `usage: null` on every chunk, then one usage-only chunk. */
  includeUsage: boolean;
}

/**
 * OpenAI's chat completion format: constant id/created, role on the first delta, exactly one
 * finish_reason, the usage chunk when asked for, then `[DONE]`; an error after the headers is a
 * `data: {"error":…}` frame (still followed by `[DONE]`). ragway's sources, citations and
 * timings ride in a `rag` field that OpenAI SDKs ignore.
 */
export class OpenAiChunkEncoder implements AnswerEncoder {
  readonly #options: OpenAiChunkOptions;
  #model = '';

  constructor(options: OpenAiChunkOptions) {
    this.#options = options;
  }

  #chunk(choices: unknown[], extra: Record<string, unknown> = {}): SseFrame {
    const { id, created, includeUsage } = this.#options;
    return { data: JSON.stringify({ id, object: 'chat.completion.chunk', created, model: this.#model, choices, ...(includeUsage ? { usage: null } : {}), ...extra }) };
  }

  frames(event: AnswerEvent): SseFrame[] {
    switch (event.type) {
      case 'sources':
        this.#model = event.model;
        return [this.#chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], { rag: sourcesFields(event) })];
      case 'delta':
        return [this.#chunk([{ index: 0, delta: { content: event.text }, logprobs: null, finish_reason: null }])];
      case 'done': {
        const frames = [this.#chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: event.finishReason }], { rag: outcomeFields(event) })];
        if (this.#options.includeUsage) {
          const { id, created } = this.#options;
          frames.push({ data: JSON.stringify({ id, object: 'chat.completion.chunk', created, model: this.#model, choices: [], usage: event.usage }) });
        }
        return frames;
      }
      case 'error':
        return [{ data: JSON.stringify(event.error.toEnvelope()) }];
    }
  }

  end(): SseFrame[] {
    return [{ data: '[DONE]' }];
  }

  body(sources: SourcesEvent, done: DoneEvent): unknown {
    return {
      id: this.#options.id,
      object: 'chat.completion',
      created: this.#options.created,
      model: sources.model,
      choices: [{ index: 0, message: { role: 'assistant', content: done.text, refusal: null }, logprobs: null, finish_reason: done.finishReason }],
      usage: done.usage,
      rag: { ...sourcesFields(sources), ...outcomeFields(done) },
    };
  }
}
