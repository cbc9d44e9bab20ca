// What every answer generator looks like to the gateway: an LLM behind an OpenAI-compatible
// upstream, or the built-in extractive generator. Both stream through exactly the same path
// (routes → SSE), so a client cannot tell a cached replay, an extractive answer or an LLM
// apart by the wire format — only by the model id.

import type { TraceHeaders } from '../../core/tracing.js';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** A retrieved chunk as the generator sees it; `index` is its citation number, from 1. */
export interface Source {
  index: number;
  id: string;
  document_id: string;
  text: string;
  score: number;
  metadata: Record<string, unknown>;
}

export interface GenerationRequest {
  /** The model id the client asked for (as listed by /v1/models). */
  model: string;
  /** The full prompt: system message with numbered sources, conversation history, question. */
  messages: ChatMessage[];
  /** The question on its own (the latest user message), for generators that do not read prompts. */
  question: string;
  /** The sources the prompt cites, numbered from 1. */
  sources: Source[];
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stop?: string[];
  /** W3C trace context of the generation's span, sent upstream as `traceparent`/`tracestate` (tracing on only). */
  trace?: TraceHeaders;
}

export type FinishReason = 'stop' | 'length' | 'content_filter';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type GenerationEvent =
  | { type: 'delta'; text: string }
  | { type: 'done'; finishReason: FinishReason; usage?: Usage };

/** What an upstream answered to a chat request forwarded as it came (retrieval off). */
export interface ProxiedChat {
  /** The model name the upstream was asked for (it names it in its response). */
  upstreamModel: string;
  contentType: string;
  /**
   * Hands the response body to `sink` as it arrives (SSE bytes for a streamed request, else
   * one JSON document); resolves at its end, rejects when it breaks. A sink that returns a
   * promise pauses the upstream until it settles. Call once.
   */
  pipe(sink: (chunk: Buffer) => void | Promise<void>): Promise<void>;
}

/**
 * One model a client can ask for. `stream` yields deltas then exactly one `done`.
 * Failures before the first delta are thrown as RagwayErrors (the caller may fail over or
 * answer with an error status); failures after it are thrown from the iterator and become
 * an in-stream error event — never a silently truncated answer.
 */
export interface Generator {
  /** The id clients use (`model` in requests, listed by /v1/models). */
  readonly id: string;
  readonly ownedBy: string;
  stream(request: GenerationRequest, signal: AbortSignal): AsyncIterable<GenerationEvent>;
  /**
   * Only LLM upstreams: sends an OpenAI chat body unchanged but for `model` (tools,
   * response_format, seed… and unknown fields included). Failures before the response are
   * thrown as RagwayErrors, like `stream`'s before the first delta.
   */
  proxy?(body: Readonly<Record<string, unknown>>, signal: AbortSignal, trace?: TraceHeaders): Promise<ProxiedChat>;
}
