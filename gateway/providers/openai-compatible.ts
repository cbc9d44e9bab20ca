// Generators backed by an OpenAI-compatible LLM server (vLLM, TGI, llama.cpp, Ollama `/v1`,
// OpenAI itself). What differs between such servers — path, auth header, request body, how a
// stream chunk reads — is a ProviderDescriptor, i.e. data (ARCHITECTURE §5.10); the transport
// below (keep-alive pool, timeouts, error mapping, backpressure, abort) is shared by all.
//
// The stream contract with the rest of the gateway (provider.ts):
// - before the first delta every failure is thrown from the first `next()`, as an UpstreamError
//   that says whether another upstream could do better (`transient`), so FailoverGenerator can
//   move on and the route can still answer with a proper status;
// - after it, a broken upstream stream is thrown from the iterator, never a silent end;
// - deltas are yielded as their chunk is read and the body is read only as fast as the
//   consumer asks, so a slow client slows the upstream instead of growing a buffer here;
// - a consumer that stops (return()/break) or a caller abort closes the upstream connection,
//   which is how vLLM & co. learn to stop generating.
import { Pool, type Dispatcher } from 'undici';
import { abortError, createError, isRagwayError, RagwayError, type ErrorCode, type RagwayErrorOptions } from '../../core/errors.js';
import type { FinishReason, GenerationEvent, GenerationRequest, Generator, Usage } from './provider.js';
import { SseParser } from './sse-parser.js';

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

export interface UpstreamGeneratorOptions {
  /** The model id clients use. */
  id: string;
  /** The model name sent to the upstream. */
  upstreamModel: string;
  /** Base URL, e.g. http://127.0.0.1:8000 or https://api.example.com/v1 (a trailing /v1 is not doubled). */
  url: string;
  apiKey?: string;
  /** Default OPENAI_COMPATIBLE. */
  descriptor?: ProviderDescriptor;
  /** `owned_by` in /v1/models; default the descriptor's name. */
  ownedBy?: string;
  connectTimeoutMs: number;
  /** From sending the request to the first content delta. */
  firstTokenTimeoutMs: number;
  /** Longest wait for the next chunk once tokens flow. */
  idleTimeoutMs: number;
  /** Keep-alive connections to this upstream. Default 64. */
  connections?: number;
}

/**
 * A failure talking to one upstream. `transient` says whether another upstream (or a retry)
 * could succeed where this one failed; it is false once deltas have reached the caller, because
 * retrying then would repeat text the client already has.
 */
export class UpstreamError extends RagwayError {
  /** The upstream's base URL. */
  readonly upstream: string;
  /** What went wrong, without the upstream's name ("answered 500: …"). */
  readonly reason: string;
  readonly transient: boolean;

  /** `options.message` replaces the default message, "upstream <upstream> <reason>". */
  constructor(code: ErrorCode, upstream: string, reason: string, transient: boolean, options: RagwayErrorOptions & { message?: string } = {}) {
    super(code, options.message ?? `upstream ${upstream} ${reason}`, options);
    this.upstream = upstream;
    this.reason = reason;
    this.transient = transient;
  }
}

export function isTransientUpstreamError(err: unknown): err is UpstreamError {
  return err instanceof UpstreamError && err.transient;
}

const DEFAULT_CONNECTIONS = 64;
// Enough of an error body to show the upstream's message; the rest is not read.
const ERROR_BODY_LIMIT_BYTES = 16 * 1024;
const BODY_EXCERPT_CHARS = 300;
// After [DONE] the rest of the body is read (normally just the chunked terminator) so the
// connection goes back to the pool; a server that keeps it open longer than this loses it.
const DRAIN_LIMIT_MS = 1_000;

type Phase = 'request' | 'stream';

export class UpstreamGenerator implements Generator {
  readonly id: string;
  readonly ownedBy: string;
  readonly upstreamModel: string;
  /** The base URL as errors name it: origin plus any path prefix, no trailing slash. */
  readonly url: string;
  private readonly descriptor: ProviderDescriptor;
  private readonly apiKey: string | undefined;
  private readonly path: string;
  private readonly pool: Pool;
  private readonly connectTimeoutMs: number;
  private readonly firstTokenTimeoutMs: number;
  private readonly idleTimeoutMs: number;

  constructor(options: UpstreamGeneratorOptions) {
    const parsed = new URL(options.url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', `LLM upstream URL must be http(s), got ${parsed.href}`);
    }
    this.descriptor = options.descriptor ?? OPENAI_COMPATIBLE;
    const basePath = parsed.pathname.replace(/\/+$/, '');
    this.url = parsed.origin + basePath;
    this.path = joinOverlapping(basePath, this.descriptor.chatPath);
    this.id = options.id;
    this.ownedBy = options.ownedBy ?? this.descriptor.name;
    this.upstreamModel = options.upstreamModel;
    this.apiKey = options.apiKey;
    this.connectTimeoutMs = options.connectTimeoutMs;
    this.firstTokenTimeoutMs = options.firstTokenTimeoutMs;
    this.idleTimeoutMs = options.idleTimeoutMs;
    this.pool = new Pool(parsed.origin, {
      connections: options.connections ?? DEFAULT_CONNECTIONS,
      connectTimeout: options.connectTimeoutMs,
      // The first-token and idle timers below own these waits: undici's would count time the
      // consumer spends not reading, and could not tell the two cases apart in the error.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  stream(request: GenerationRequest, signal: AbortSignal): AsyncIterable<GenerationEvent> {
    return this.run(request, signal);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private async *run(request: GenerationRequest, signal: AbortSignal): AsyncGenerator<GenerationEvent, void, undefined> {
    if (signal.aborted) throw abortError(signal);
    // One controller for everything that ends the upstream request: the caller's abort, our
    // timers, and the consumer leaving. undici destroys the socket when it fires mid-response.
    const controller = new AbortController();
    const onCallerAbort = (): void => controller.abort(signal.reason);
    signal.addEventListener('abort', onCallerAbort, { once: true });

    let timer: NodeJS.Timeout | undefined;
    let timedOut: UpstreamError | undefined;
    const arm = (ms: number, error: () => UpstreamError): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = error();
        controller.abort(timedOut);
      }, ms);
    };
    const disarm = (): void => {
      clearTimeout(timer);
      timer = undefined;
    };

    let deltas = 0;
    // Set once the response body has been read to its end: only then may the connection stay.
    let drained = false;
    const fail = (err: unknown, phase: Phase): RagwayError => {
      if (signal.aborted) return abortError(signal);
      if (timedOut !== undefined) return timedOut;
      if (isRagwayError(err)) return err;
      return this.transportError(err, phase, deltas);
    };

    try {
      arm(this.firstTokenTimeoutMs, () => this.error('RAGWAY_ERR_UPSTREAM_TIMEOUT', `sent no token within ${this.firstTokenTimeoutMs} ms`, true));
      let response: Dispatcher.ResponseData;
      try {
        response = await this.pool.request({
          method: 'POST',
          path: this.path,
          headers: this.descriptor.headers(this.apiKey),
          body: JSON.stringify(this.descriptor.buildBody(request, this.upstreamModel)),
          signal: controller.signal,
        });
      } catch (err) {
        throw fail(err, 'request');
      }
      const reader = response.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      const read = async (phase: Phase): Promise<IteratorResult<Buffer>> => {
        try {
          return await reader.next();
        } catch (err) {
          throw fail(err, phase);
        }
      };

      if (response.statusCode < 200 || response.statusCode >= 300) {
        const text = await readLimited(read, ERROR_BODY_LIMIT_BYTES);
        throw this.statusError(response.statusCode, response.headers, text);
      }
      const contentType = headerValue(response.headers['content-type']) ?? '';
      if (!contentType.toLowerCase().includes('text/event-stream')) {
        const text = await readLimited(read, ERROR_BODY_LIMIT_BYTES);
        const message = errorMessageOf(parseJson(text));
        throw this.error(
          'RAGWAY_ERR_UPSTREAM_UNAVAILABLE',
          `answered ${response.statusCode} with ${contentType || 'no content-type'} instead of an event stream${message !== undefined ? `: ${message}` : ''}`,
          true,
        );
      }

      const parser = new SseParser();
      let finishReason: FinishReason | undefined;
      let usage: Usage | undefined;
      let sawDone = false;
      reading: for (;;) {
        // Before the first delta the first-token timer runs; after it, only the wait for the
        // next chunk is timed — not the time the consumer takes between pulls.
        if (deltas > 0) {
          arm(this.idleTimeoutMs, () =>
            this.error('RAGWAY_ERR_UPSTREAM_TIMEOUT', `sent nothing for ${this.idleTimeoutMs} ms after ${deltas} deltas`, false),
          );
        }
        const chunk = await read('stream');
        if (deltas > 0) disarm();
        const events = chunk.done ? parser.end() : parser.push(chunk.value);
        for (const event of events) {
          const parsed = this.descriptor.parseEvent(event.data, event.event);
          if (parsed.error !== undefined) throw this.streamError(parsed.error, deltas);
          if (parsed.finishReason !== undefined) finishReason = parsed.finishReason;
          if (parsed.usage !== undefined) usage = parsed.usage;
          if (parsed.text !== undefined && parsed.text.length > 0) {
            if (deltas === 0) disarm();
            deltas++;
            yield { type: 'delta', text: parsed.text };
            if (signal.aborted) throw abortError(signal);
          }
          if (parsed.done === true) {
            sawDone = true;
            break reading;
          }
        }
        if (chunk.done) break;
      }
      disarm();

      if (!sawDone && finishReason === undefined) {
        throw this.error(
          'RAGWAY_ERR_UPSTREAM_UNAVAILABLE',
          `ended the stream without [DONE] or a finish_reason after ${deltas} deltas`,
          deltas === 0,
        );
      }
      yield { type: 'done', finishReason: finishReason ?? 'stop', ...(usage !== undefined ? { usage } : {}) };

      if (sawDone) {
        // Keep the connection reusable; if the rest does not come promptly, give it up.
        arm(Math.min(this.idleTimeoutMs, DRAIN_LIMIT_MS), () => this.error('RAGWAY_ERR_UPSTREAM_TIMEOUT', 'kept the stream open after [DONE]', false));
        try {
          while (!(await reader.next()).done);
          drained = true;
        } catch {
          // The answer is complete; a connection lost while draining only costs a reconnect.
        }
      } else {
        drained = true;
      }
    } finally {
      disarm();
      signal.removeEventListener('abort', onCallerAbort);
      // Anything but a fully read response (a consumer that stopped, an error, a drain given
      // up) must close the connection: that is what tells the upstream to stop generating.
      if (!drained) controller.abort(new Error('the stream consumer stopped reading'));
    }
  }

  private error(code: ErrorCode, reason: string, transient: boolean, options?: RagwayErrorOptions): UpstreamError {
    return new UpstreamError(code, this.url, reason, transient, options);
  }

  private transportError(err: unknown, phase: Phase, deltas: number): UpstreamError {
    const cause = describeCause(err);
    const code = errorCode(err);
    if (code === 'UND_ERR_CONNECT_TIMEOUT') {
      return this.error('RAGWAY_ERR_UPSTREAM_TIMEOUT', `did not accept a connection within ${this.connectTimeoutMs} ms`, true, { cause: err });
    }
    if (phase === 'request') return this.error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `did not answer: ${cause}`, true, { cause: err });
    if (deltas === 0) {
      return this.error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `broke the stream before the first token: ${cause}`, true, { cause: err });
    }
    return this.error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `broke the stream after ${deltas} deltas: ${cause}`, false, { cause: err });
  }

  private statusError(status: number, headers: Dispatcher.ResponseData['headers'], text: string): UpstreamError {
    const message = errorMessageOf(parseJson(text)) ?? excerpt(text);
    const detail = message.length > 0 ? `: ${message}` : '';
    if (status === 429) {
      const retryAfterSeconds = parseRetryAfter(headers);
      return this.error('RAGWAY_ERR_UPSTREAM_RATE_LIMITED', `rate-limited ragway (HTTP 429)${detail}`, true, {
        ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
      });
    }
    if (status === 401 || status === 403) {
      // Our key, our configuration: not the client's fault. Another upstream has its own key,
      // so it is worth trying.
      return this.error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `rejected ragway's API key (HTTP ${status})${detail}`, true);
    }
    if (status === 404) {
      // Almost always a wrong base URL or model name in our configuration, not a bad request.
      return this.error(
        'RAGWAY_ERR_UPSTREAM_UNAVAILABLE',
        `answered 404 for POST ${this.path} with model "${this.upstreamModel}"${detail}`,
        true,
      );
    }
    if (status === 408) return this.error('RAGWAY_ERR_UPSTREAM_TIMEOUT', `answered 408${detail}`, true);
    if (status >= 500) return this.error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `answered ${status}${detail}`, true);
    if (status >= 400) return this.error('RAGWAY_ERR_UPSTREAM_REJECTED', `rejected the request (HTTP ${status})${detail}`, false);
    return this.error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `answered an unexpected HTTP ${status}${detail}`, true);
  }

  private streamError(error: { message: string; status?: number }, deltas: number): UpstreamError {
    const status = error.status;
    if (deltas > 0) return this.error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `failed mid-stream after ${deltas} deltas: ${error.message}`, false);
    if (status === 429) return this.error('RAGWAY_ERR_UPSTREAM_RATE_LIMITED', `rate-limited ragway: ${error.message}`, true);
    if (status !== undefined && status >= 400 && status < 500 && status !== 401 && status !== 403 && status !== 404 && status !== 408) {
      return this.error('RAGWAY_ERR_UPSTREAM_REJECTED', `rejected the request (HTTP ${status}): ${error.message}`, false);
    }
    return this.error('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', `failed before the first token: ${error.message}`, true);
  }
}

/**
 * Joins a base path and an endpoint path without repeating the segments they share:
 * "/v1" + "/v1/chat/completions" → "/v1/chat/completions", "/openai/v1" + the same →
 * "/openai/v1/chat/completions", "" + the same → unchanged.
 */
export function joinOverlapping(basePath: string, endpoint: string): string {
  const base = basePath.split('/').filter((s) => s.length > 0);
  const tail = endpoint.split('/').filter((s) => s.length > 0);
  for (let overlap = Math.min(base.length, tail.length); overlap > 0; overlap--) {
    const suffix = base.slice(base.length - overlap);
    if (suffix.every((segment, i) => segment === tail[i])) {
      return `/${[...base, ...tail.slice(overlap)].join('/')}`;
    }
  }
  return `/${[...base, ...tail].join('/')}`;
}

/** Retry-After as whole seconds (delta-seconds or an HTTP date), or retry-after-ms. */
export function parseRetryAfter(headers: Record<string, string | string[] | undefined>, now: number = Date.now()): number | undefined {
  const value = headerValue(headers['retry-after'])?.trim();
  if (value !== undefined && value !== '') {
    if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value));
    const date = Date.parse(value);
    if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - now) / 1000));
  }
  const ms = headerValue(headers['retry-after-ms'])?.trim();
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms)) return Math.ceil(Number(ms) / 1000);
  return undefined;
}

async function readLimited(read: (phase: Phase) => Promise<IteratorResult<Buffer>>, limit: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  while (size < limit) {
    const chunk = await read('stream');
    if (chunk.done) break;
    parts.push(chunk.value);
    size += chunk.value.length;
  }
  return Buffer.concat(parts).subarray(0, limit).toString('utf8');
}

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
function errorMessageOf(body: unknown): string | undefined {
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

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > BODY_EXCERPT_CHARS ? `${flat.slice(0, BODY_EXCERPT_CHARS)}…` : flat;
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** "connect ECONNREFUSED 127.0.0.1:8000", "other side closed (UND_ERR_SOCKET)", … */
function describeCause(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    // Happy-eyeballs connects (localhost → ::1 and 127.0.0.1) fail with an AggregateError whose
    // own message is empty; the per-address errors carry the story.
    return [...new Set(err.errors.map(describeCause))].join('; ');
  }
  if (err instanceof Error) {
    const code = errorCode(err);
    const message = err.message || err.name;
    return code !== undefined && !message.includes(code) ? `${message} (${code})` : message;
  }
  return String(err);
}
