// The one answer stream both answer routes serve: `sources` (what the prompt cites, and what
// the cache did), `delta`… (text as it is generated), then exactly one `done` or `error`. A
// cached replay and a live generation yield the same sequence; only an encoder (native SSE
// for /v1/query, OpenAI chunks for /v1/chat/completions) differs between the routes.
import type { RagwayError } from '../../core/errors.js';
import type { CacheStatus } from '../cache/cache-set.js';
import type { FinishReason, Source, Usage } from '../providers/provider.js';
import type { Coverage } from '../schemas.js';

export interface AnswerTimings {
  embed_ms: number;
  search_ms: number;
  retrieval_ms: number;
  /** From the start of generation to its first delta. */
  first_token_ms: number;
  /** From the request reaching the answer service (cache lookup and retrieval included) to the first delta: what a client waits for. */
  time_to_first_token_ms: number;
  generation_ms: number;
  total_ms: number;
}

/** A valid [n] in the answer, resolved to the chunk it names. */
export interface Citation {
  index: number;
  id: string;
  document_id: string;
}

/** What the cache did for this answer, known before its first byte (so it can be a header). */
export interface AnswerCache {
  status: CacheStatus;
  /** Only on a semantic-cache hit: how similar the earlier question was. */
  similarity?: number;
}

export interface SourcesEvent {
  type: 'sources';
  /** The generation model that answers (the id clients use). */
  model: string;
  /** The sources in the prompt, numbered from 1 (what [n] refers to). */
  sources: Source[];
  /** Retrieved sources left out of the prompt for the token budget. */
  droppedSources: number;
  /** Undefined when retrieval was off. */
  coverage: Coverage | undefined;
  cache: AnswerCache;
}

export interface DeltaEvent {
  type: 'delta';
  text: string;
}

export interface DoneEvent {
  type: 'done';
  /** The whole answer (the deltas joined). */
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  citations: Citation[];
  /** [n] markers that name no source. */
  invalidCitations: number[];
  timings: AnswerTimings;
}

/** A failure after `sources`: headers are gone, so it travels in the stream. */
export interface ErrorEvent {
  type: 'error';
  error: RagwayError;
}

export type AnswerEvent = SourcesEvent | DeltaEvent | DoneEvent | ErrorEvent;
