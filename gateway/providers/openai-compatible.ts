// What an OpenAI-compatible LLM server (vLLM, TGI, llama.cpp, Ollama `/v1`, OpenAI itself)
// looks like as data: path, auth header, request body, how a stream chunk reads. What differs
// between such servers is a ProviderDescriptor (docs/architecture.md, conventions); the
// transport that all of them share is upstream-generator.ts.
import type { FinishReason, GenerationRequest, Usage } from './provider.js';

/** What one upstream SSE event means. An event may carry several of these at once. */
export interface ParsedChunk {
  /** Content text of the first choice, when the chunk has any. */
  text?: string;
  finishReason?: FinishReason;
  usage?: Usage;
  /** The upstream reported an error inside the stream (or sent something unreadable). */
  error?: { message: string; status?: number };
  /** The stream's own terminator (OpenAI's `[DONE]`). */
  done?: boolean;
}

export interface ProviderDescriptor {
  /** Used as `owned_by` unless the generator is given one. */
  name: string;
  /** Path of the streaming chat endpoint, joined onto the upstream's base URL. */
  chatPath: string;
  headers(apiKey?: string): Record<string, string>;
  buildBody(request: GenerationRequest, upstreamModel: string): unknown;
  /** Reads one SSE event's data (`event` is its `event:` field, "message" by default). */
  parseEvent(data: string, event?: string): ParsedChunk;
}

export const OPENAI_COMPATIBLE: ProviderDescriptor = {
  name: 'openai-compatible',
  chatPath: '/v1/chat/completions',
  headers(apiKey) {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream' };
    if (apiKey !== undefined && apiKey !== '') headers.authorization = `Bearer ${apiKey}`;
    return headers;
  },
  buildBody(request, upstreamModel) {
    return {
      model: upstreamModel,
      messages: request.messages.map(({ role, content }) => ({ role, content })),
      stream: true,
      stream_options: { include_usage: true },
      ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {}),
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
      ...(request.topP !== undefined ? { top_p: request.topP } : {}),
      ...(request.stop !== undefined && request.stop.length > 0 ? { stop: request.stop } : {}),
    };
  },
  parseEvent(data) {
    if (data.trim() === '[DONE]') return { done: true };
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      return { error: { message: `sent a chunk that is not JSON: ${excerpt(data)}` } };
    }
    if (!isObject(json)) return { error: { message: `sent a chunk that is not a JSON object: ${excerpt(data)}` } };
    if (json.error !== undefined && json.error !== null) {
      const status = statusOf(json.error);
      return { error: { message: errorMessageOf(json) ?? excerpt(data), ...(status !== undefined ? { status } : {}) } };
    }
    const parsed: ParsedChunk = {};
    const choices = Array.isArray(json.choices) ? (json.choices as unknown[]) : [];
    // With n=1 there is one choice; still pick index 0 so a server that sends others is not mixed in.
    const choice = choices.find((c) => isObject(c) && (c.index === 0 || c.index === undefined));
    if (isObject(choice)) {
      const delta = choice.delta;
      if (isObject(delta) && typeof delta.content === 'string' && delta.content.length > 0) parsed.text = delta.content;
      if (typeof choice.finish_reason === 'string') parsed.finishReason = toFinishReason(choice.finish_reason);
    }
    const usage = toUsage(json.usage);
    if (usage !== undefined) parsed.usage = usage;
    return parsed;
  },
};

const BODY_EXCERPT_CHARS = 300;

function toFinishReason(value: string): FinishReason {
  if (value === 'length' || value === 'max_tokens') return 'length';
  if (value === 'content_filter') return 'content_filter';
  // stop, eos_token, stop_sequence, tool_calls, …: the model ended its answer itself.
  return 'stop';
}

function toUsage(value: unknown): Usage | undefined {
  if (!isObject(value)) return undefined;
  const prompt = value.prompt_tokens;
  const completion = value.completion_tokens;
  if (typeof prompt !== 'number' || typeof completion !== 'number') return undefined;
  const total = typeof value.total_tokens === 'number' ? value.total_tokens : prompt + completion;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total };
}

/** The message in the error bodies servers actually send: OpenAI/vLLM, TGI/llama.cpp, FastAPI. */
export function errorMessageOf(body: unknown): string | undefined {
  if (!isObject(body)) return undefined;
  const { error, message, detail } = body;
  if (isObject(error) && typeof error.message === 'string') return error.message;
  if (typeof error === 'string') return error;
  if (typeof message === 'string') return message;
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    const first: unknown = detail[0];
    if (isObject(first) && typeof first.msg === 'string') return first.msg;
  }
  return undefined;
}

function statusOf(error: unknown): number | undefined {
  if (!isObject(error)) return undefined;
  for (const candidate of [error.code, error.status]) {
    const n = typeof candidate === 'string' ? Number(candidate) : candidate;
    if (typeof n === 'number' && Number.isInteger(n) && n >= 400 && n < 600) return n;
  }
  return undefined;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > BODY_EXCERPT_CHARS ? `${flat.slice(0, BODY_EXCERPT_CHARS)}…` : flat;
}
