// ShardClient for a shard process across the network: one undici Pool per shard, keep-alive
// connections reused across requests, JSON bodies, the protocol version on every request.
//
// Error mapping is what lets replica sets and the scatter decide what to do (docs/architecture.md §6.9):
// a shard's own 4xx envelope comes back as the same RagwayError code (the caller's mistake,
// retrying elsewhere would fail the same way); anything that says "this shard cannot answer
// now" — refused/reset connections, timeouts, 5xx — becomes RAGWAY_ERR_SHARD_UNAVAILABLE
// naming the shard and the cause; an abort by the caller stays the caller's abort, and a
// missed deadline is RAGWAY_ERR_DEADLINE_EXCEEDED (the request's budget, not the shard's fault).
import { Pool, type Dispatcher } from 'undici';
import { abortError, createError, errorFromEnvelope, isRagwayError, throwIfAborted, type RagwayError } from '../core/errors.js';
import {
  DEADLINE_HEADER,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  SHARD_PATHS,
  type DeleteRequest,
  type DeleteResponse,
  type DocumentResponse,
  type SearchRequest,
  type SearchResponse,
  type StatsResponse,
  type UpsertRequest,
  type UpsertResponse,
} from '../shards/protocol.js';
import { CLUSTER_TOKEN_HEADER, NAMESPACES_HEADER, formatNamespaceScope } from '../shards/access.js';
import type { ShardCallOptions, ShardClient } from './shard-client.js';

export { checkShard } from './check-shard.js';

export interface HttpShardClientOptions {
  /** Short label used in errors and metrics, e.g. "shard-1"; the URL is appended. Default "shard". */
  label?: string;
  /** Keep-alive connections to this shard. Default 16. */
  connections?: number;
  /** TCP connect timeout. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Limit on waiting for response headers and on gaps between body chunks. Default 30000 ms. */
  requestTimeoutMs?: number;
  /** The cluster credential, sent on every request (shards started with one refuse calls without it). */
  clusterToken?: string | undefined;
}

const DEFAULT_CONNECTIONS = 16;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const PROTOCOL_VALUE = String(PROTOCOL_VERSION);
// Enough of an unexpected body to recognise it in an error message, not enough to flood logs.
const BODY_EXCERPT_CHARS = 200;

export class HttpShardClient implements ShardClient {
  readonly name: string;
  readonly url: string;
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly requestTimeoutMs: number;
  private readonly clusterToken: string | undefined;

  constructor(url: string | URL, options: HttpShardClientOptions = {}) {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', `shard URL must be http(s), got ${parsed.href}`);
    }
    // A path prefix is kept so shards can sit behind a path-routing proxy.
    this.basePath = parsed.pathname.replace(/\/+$/, '');
    this.url = parsed.origin + this.basePath;
    this.name = `${options.label ?? 'shard'} (${this.url})`;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.clusterToken = options.clusterToken === '' ? undefined : options.clusterToken;
    this.pool = new Pool(parsed.origin, {
      connections: options.connections ?? DEFAULT_CONNECTIONS,
      connectTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      headersTimeout: this.requestTimeoutMs,
      bodyTimeout: this.requestTimeoutMs,
    });
  }

  search(request: SearchRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<SearchResponse> {
    return this.call<SearchResponse>('POST', SHARD_PATHS.search, request, signal, options);
  }

  upsert(request: UpsertRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<UpsertResponse> {
    return this.call<UpsertResponse>('POST', SHARD_PATHS.upsert, request, signal, options);
  }

  delete(request: DeleteRequest, signal?: AbortSignal, options?: ShardCallOptions): Promise<DeleteResponse> {
    return this.call<DeleteResponse>('POST', SHARD_PATHS.delete, request, signal, options);
  }

  async getDocument(
    namespace: string,
    documentId: string,
    signal?: AbortSignal,
    options?: ShardCallOptions,
  ): Promise<DocumentResponse | undefined> {
    const path = SHARD_PATHS.document
      .replace(':namespace', encodeURIComponent(namespace))
      .replace(':document_id', encodeURIComponent(documentId));
    try {
      return await this.call<DocumentResponse>('GET', path, undefined, signal, options);
    } catch (err) {
      if (isRagwayError(err) && (err.code === 'RAGWAY_ERR_NOT_FOUND' || err.code === 'RAGWAY_ERR_NAMESPACE_NOT_FOUND')) {
        return undefined;
      }
      throw err;
    }
  }

  stats(signal?: AbortSignal, options?: ShardCallOptions): Promise<StatsResponse> {
    return this.call<StatsResponse>('GET', SHARD_PATHS.stats, undefined, signal, options);
  }

  /**
   * GET /readyz: true on 200, false when the shard answers 503 (loading, catching up, shutting
   * down); a shard that cannot be reached rejects as any other call does.
   */
  async ready(signal?: AbortSignal): Promise<boolean> {
    throwIfAborted(signal);
    let response: Dispatcher.ResponseData;
    try {
      response = await this.pool.request({
        method: 'GET',
        path: this.basePath + SHARD_PATHS.ready,
        headers: this.baseHeaders(),
        signal: signal ?? null,
        headersTimeout: this.requestTimeoutMs,
        bodyTimeout: this.requestTimeoutMs,
      });
      await response.body.text();
    } catch (err) {
      throw this.transportError(err, signal);
    }
    if (response.statusCode === 200) return true;
    if (response.statusCode === 503) return false;
    throw createError('RAGWAY_ERR_SHARD_UNAVAILABLE', `${this.name} answered GET ${SHARD_PATHS.ready} with HTTP ${response.statusCode}`);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private async call<T>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
    options: ShardCallOptions | undefined,
  ): Promise<T> {
    throwIfAborted(signal);
    const headers = this.baseHeaders();
    if (options?.namespaces !== undefined) headers[NAMESPACES_HEADER] = formatNamespaceScope(options.namespaces);
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (options?.traceparent !== undefined) {
      headers['traceparent'] = options.traceparent;
      if (options.tracestate !== undefined) headers['tracestate'] = options.tracestate;
    }
    // Outside the transport's try: a body that cannot be serialised never reached the shard,
    // and must not be reported (or counted) as the shard being unavailable.
    const payload = body === undefined ? null : this.serialise(method, path, body);

    // A deadline becomes its own abort: the request stops at the deadline even when the
    // connection is healthy and the shard merely slow, and the shard learns how long we wait.
    let requestSignal = signal;
    let deadlineTimer: NodeJS.Timeout | undefined;
    let forward: (() => void) | undefined;
    if (options?.deadline !== undefined) {
      const remainingMs = Math.floor(options.deadline - Date.now());
      if (remainingMs <= 0) {
        throw createError('RAGWAY_ERR_DEADLINE_EXCEEDED', `${this.name}: the deadline passed before the request was sent`);
      }
      headers[DEADLINE_HEADER] = String(remainingMs);
      const controller = new AbortController();
      forward = (): void => controller.abort(signal?.reason);
      signal?.addEventListener('abort', forward, { once: true });
      deadlineTimer = setTimeout(
        () =>
          controller.abort(
            createError('RAGWAY_ERR_DEADLINE_EXCEEDED', `${this.name} did not answer ${method} ${path} within the ${remainingMs} ms left before the deadline`),
          ),
        remainingMs,
      );
      requestSignal = controller.signal;
    }

    let response: Dispatcher.ResponseData;
    let text: string;
    try {
      response = await this.pool.request({
        method,
        path: this.basePath + path,
        headers,
        body: payload,
        signal: requestSignal ?? null,
        headersTimeout: this.requestTimeoutMs,
        bodyTimeout: this.requestTimeoutMs,
      });
      text = await response.body.text();
    } catch (err) {
      throw this.transportError(err, requestSignal);
    } finally {
      clearTimeout(deadlineTimer);
      if (forward !== undefined) signal?.removeEventListener('abort', forward);
    }
    return this.interpret<T>(method, path, response, text);
  }

  private baseHeaders(): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json', [PROTOCOL_HEADER]: PROTOCOL_VALUE };
    if (this.clusterToken !== undefined) headers[CLUSTER_TOKEN_HEADER] = this.clusterToken;
    return headers;
  }

  /**
   * JSON of a request body. Running out of stack is what a client's absurdly nested metadata or
   * filter does: its own 400. Anything else JSON.stringify throws (a cycle, a BigInt) is a bug
   * here and stays a plain exception, which replica sets never blame on a replica.
   */
  private serialise(method: string, path: string, body: unknown): string {
    try {
      return JSON.stringify(body);
    } catch (err) {
      if (err instanceof RangeError) {
        throw createError('RAGWAY_ERR_INVALID_REQUEST', `the request could not be serialised for the shard (${err.message}): it is nested too deeply`, { cause: err });
      }
      throw err;
    }
  }

  private interpret<T>(method: string, path: string, response: Dispatcher.ResponseData, text: string): T {
    const status = response.statusCode;
    const parsed = parseJson(text);

    if (status >= 500) {
      const envelope = errorFromEnvelope(parsed.value, '');
      const detail = envelope ? `${envelope.code}: ${envelope.message}` : excerpt(text);
      throw createError('RAGWAY_ERR_SHARD_UNAVAILABLE', `${this.name} unavailable: HTTP ${status}${detail ? ` ${detail}` : ''}`);
    }

    const protocol = headerValue(response.headers[PROTOCOL_HEADER]);
    if (protocol !== undefined && protocol !== PROTOCOL_VALUE) {
      throw createError(
        'RAGWAY_ERR_PROTOCOL_MISMATCH',
        `${this.name} speaks shard protocol ${protocol}, this gateway speaks ${PROTOCOL_VALUE}; run the same ragway version on both`,
      );
    }

    if (status >= 400) {
      // The shard's own error envelope is the caller's problem, passed on as is.
      const envelope = errorFromEnvelope(parsed.value, `${this.name} rejected ${method} ${path} with HTTP ${status}`);
      if (envelope) throw envelope;
      throw createError('RAGWAY_ERR_SHARD_ERROR', `${this.name} answered ${method} ${path} with HTTP ${status} and no ragway error: ${excerpt(text)}`);
    }

    if (protocol === undefined) {
      // A 2xx without the header is not a ragway shard (a proxy's default page, another service).
      throw createError(
        'RAGWAY_ERR_PROTOCOL_MISMATCH',
        `${this.name} answered ${method} ${path} without a ${PROTOCOL_HEADER} header; is it a ragway shard?`,
      );
    }
    if (!parsed.ok || typeof parsed.value !== 'object' || parsed.value === null) {
      throw createError('RAGWAY_ERR_SHARD_ERROR', `${this.name} answered ${method} ${path} with a body that is not a JSON object: ${excerpt(text)}`);
    }
    return parsed.value as T;
  }

  private transportError(err: unknown, signal: AbortSignal | undefined): RagwayError {
    if (signal?.aborted) return abortError(signal);
    if (isRagwayError(err)) return err;
    return createError('RAGWAY_ERR_SHARD_UNAVAILABLE', `${this.name} unavailable: ${describeCause(err)}`, { cause: err });
  }
}

function parseJson(text: string): { ok: boolean; value: unknown } {
  if (text.length === 0) return { ok: false, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, value: undefined };
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > BODY_EXCERPT_CHARS ? `${flat.slice(0, BODY_EXCERPT_CHARS)}…` : flat;
}

/** "connect ECONNREFUSED 127.0.0.1:7001", "Headers Timeout Error (UND_ERR_HEADERS_TIMEOUT)", … */
function describeCause(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    // Happy-eyeballs connects (localhost → ::1 and 127.0.0.1) fail with an AggregateError whose
    // own message is empty; the per-address errors carry the story.
    return [...new Set(err.errors.map(describeCause))].join('; ');
  }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const message = err.message || err.name;
    return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
  }
  return String(err);
}
