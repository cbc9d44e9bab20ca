// A reranker over HTTP, in the two API shapes servers speak:
// - TEI (text-embeddings-inference, also Infinity's /rerank): POST /rerank
//   {query, texts, truncate} → [{index, score}]
// - Cohere / Jina / Voyage / vLLM's /v1/rerank: POST /v1/rerank
//   {model, query, documents, top_n} → {results: [{index, relevance_score}]}
// One keep-alive pool per reranker; every call has its own timeout on top of the caller's
// signal, and any failure is thrown for the rerank stage to turn into "not reranked".
import { Pool } from 'undici';
import { checkScores, type RerankBackend, type RerankCall, type RerankScore } from './backend.js';

export type RerankFormat = 'tei' | 'cohere';

export interface RemoteRerankOptions {
  /** Base URL (`http://host:port`, or with a path prefix); `/rerank` or `/v1/rerank` is appended unless it already ends with `/rerank`. */
  url: string;
  format: RerankFormat;
  /** Sent as the model of the Cohere form; reported as the model id either way. */
  model: string;
  apiKey?: string;
  timeoutMs: number;
  connections?: number;
}

export class RemoteRerankBackend implements RerankBackend {
  readonly modelId: string;
  readonly anyModel: boolean;
  readonly #pool: Pool;
  readonly #path: string;
  readonly #options: RemoteRerankOptions;

  constructor(options: RemoteRerankOptions) {
    const url = new URL(options.url);
    const base = url.pathname.replace(/\/+$/, '');
    this.#path = base.endsWith('/rerank') ? base : `${base}${options.format === 'tei' ? '/rerank' : '/v1/rerank'}`;
    this.#pool = new Pool(url.origin, { connections: options.connections ?? 16, headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs });
    this.#options = options;
    this.modelId = options.model !== '' ? options.model : `${options.format}@${url.host}`;
    // A TEI server serves the one model it was started with; hosted /v1/rerank APIs serve several.
    this.anyModel = options.format === 'cohere';
  }

  async rerank(call: RerankCall): Promise<RerankScore[]> {
    const { format, apiKey, timeoutMs } = this.#options;
    const body =
      format === 'tei'
        ? { query: call.query, texts: call.texts, truncate: true, return_text: false }
        : { model: call.model, query: call.query, documents: call.texts, top_n: Math.min(call.topN, call.texts.length), return_documents: false };
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (apiKey !== undefined && apiKey !== '') headers['authorization'] = `Bearer ${apiKey}`;
    const signal = AbortSignal.any([call.signal, AbortSignal.timeout(timeoutMs)]);
    const response = await this.#pool.request({ method: 'POST', path: this.#path, headers, body: JSON.stringify(body), signal });
    const text = await response.body.text();
    if (response.statusCode < 200 || response.statusCode >= 300) {
      throw new Error(`reranker answered HTTP ${response.statusCode}${text === '' ? '' : `: ${text.slice(0, 200)}`}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error('reranker answered with something that is not JSON');
    }
    return checkScores(parseScores(format, parsed), call.texts.length, call.topN);
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

function parseScores(format: RerankFormat, body: unknown): { index: unknown; score: unknown }[] {
  if (format === 'tei') {
    if (!Array.isArray(body)) throw new TypeError('a TEI /rerank answer is an array of {index, score}');
    return body.map((entry: { index?: unknown; score?: unknown } | null) => ({ index: entry?.index, score: entry?.score }));
  }
  const results = (body as { results?: unknown } | null)?.results;
  if (!Array.isArray(results)) throw new TypeError('a /v1/rerank answer has results: [{index, relevance_score}]');
  return results.map((entry: { index?: unknown; relevance_score?: unknown } | null) => ({ index: entry?.index, score: entry?.relevance_score }));
}
