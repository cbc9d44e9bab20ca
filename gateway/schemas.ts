// Response pieces shared by several routes. Response schemas let Fastify serialize with
// fast-json-stringify and document the API; types for handlers derive from them.
import { Type, type Static } from '@sinclair/typebox';
import { Bm25Params, ShardHit, type Bm25Params as Bm25ParamsType } from '../shards/protocol.js';

/** A search result is what the shards return, merged; `rerank_score` when a reranker re-ordered it. */
export const SearchHit = Type.Object({ ...ShardHit.properties, rerank_score: Type.Optional(Type.Number()) });

/** `T | null`: OpenAI clients send null for unset optional parameters. */
export const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);
export type SearchHit = Static<typeof SearchHit>;

/**
 * Request-side metadata and filters, bounded in size (the `x-max-json-bytes` keyword,
 * core/http-errors.ts); their depth is bounded by the body parser before this runs.
 */
export const BoundedMetadata = (maxBytes: number) => Type.Record(Type.String(), Type.Unknown(), { 'x-max-json-bytes': maxBytes });
export const BoundedFilter = (maxBytes: number) => Type.Record(Type.String(), Type.Unknown(), { 'x-max-json-bytes': maxBytes });

/** What part of the corpus answered; one definition, beside the scatter that builds it. */
export { Coverage } from '../retriever/coverage.js';

export const SearchTimings = Type.Object({
  embed_ms: Type.Number(),
  search_ms: Type.Number(),
  /** Only when reranking was asked for (also when it failed open). */
  rerank_ms: Type.Optional(Type.Number()),
  total_ms: Type.Number(),
});

/** Whether the results were reranked; when not, why (the reranker failed and the stage failed open). */
export const RerankInfo = Type.Object({
  applied: Type.Boolean(),
  model: Type.String(),
  candidates: Type.Integer(),
  cache: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String()),
  code: Type.Optional(Type.String()),
});

/** `rerank: {top_n, model}` on search, query and chat `rag`. */
export const RerankBody = Type.Object(
  {
    top_n: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000 })),
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  },
  { additionalProperties: false },
);
export type SearchTimings = Static<typeof SearchTimings>;

/** Retrieval-mode fields shared by /v1/search, /v1/query and chat `rag` (see README "Search modes"). */
export const RetrievalFields = {
  /** vector (ANN), lexical (BM25 with global statistics) or hybrid (both, fused); default RAGWAY_SEARCH_MODE. */
  mode: Type.Optional(Type.Union([Type.Literal('vector'), Type.Literal('lexical'), Type.Literal('hybrid')])),
  /** Hybrid: "weighted" (alpha) or "rrf" (reciprocal rank fusion); default RAGWAY_SEARCH_HYBRID_FUSION, and an alpha or rrf_k picks its own. */
  fusion: Type.Optional(Type.Union([Type.Literal('weighted'), Type.Literal('rrf')])),
  /** Hybrid: reciprocal rank fusion constant (default RAGWAY_SEARCH_RRF_K). */
  rrf_k: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000 })),
  /** Hybrid, weighted fusion: alpha × vector + (1 − alpha) × lexical, scores min-max normalized (default RAGWAY_SEARCH_HYBRID_ALPHA). */
  alpha: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  /** MMR diversity over the candidates: 1 = relevance only, lower = more diverse. */
  mmr_lambda: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  /** Hybrid/MMR candidates per list (default RAGWAY_SEARCH_HYBRID_CANDIDATES). */
  candidates: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  /** Lexical/hybrid: BM25 parameters (default k1 0.9, b 0.4; shards/lexical/bm25-index.ts). */
  bm25: Type.Optional(Bm25Params),
};

export interface RetrievalBody {
  /** A request that gives a vector and no mode searches by vector, whatever the default. */
  vector?: unknown;
  mode?: 'vector' | 'lexical' | 'hybrid' | undefined;
  fusion?: 'weighted' | 'rrf' | undefined;
  rrf_k?: number | undefined;
  alpha?: number | undefined;
  mmr_lambda?: number | undefined;
  candidates?: number | undefined;
  bm25?: Bm25ParamsType | undefined;
}

export interface RetrievalDefaults {
  searchMode: 'vector' | 'lexical' | 'hybrid';
  searchRrfK: number;
  searchHybridCandidates: number;
  searchHybridFusion: 'weighted' | 'rrf';
  searchHybridAlpha: number;
}

export interface RetrievalInput {
  mode: 'vector' | 'lexical' | 'hybrid';
  rrfK: number;
  alpha: number | undefined;
  mmrLambda: number | undefined;
  candidates: number;
  bm25: Bm25ParamsType | undefined;
}

/** The pipeline's SearchInput fields for a request's retrieval options, config defaults filled in. */
export function retrievalInput(body: RetrievalBody, defaults: RetrievalDefaults): RetrievalInput {
  return {
    mode: body.mode ?? (body.vector !== undefined ? 'vector' : defaults.searchMode),
    rrfK: body.rrf_k ?? defaults.searchRrfK,
    // RRF when asked for (or when only rrf_k is given); otherwise the weighted sum with alpha.
    alpha: rrf(body, defaults) ? undefined : (body.alpha ?? defaults.searchHybridAlpha),
    mmrLambda: body.mmr_lambda,
    candidates: body.candidates ?? defaults.searchHybridCandidates,
    bm25: body.bm25,
  };
}

function rrf(body: RetrievalBody, defaults: RetrievalDefaults): boolean {
  if (body.fusion !== undefined) return body.fusion === 'rrf';
  if (body.alpha !== undefined) return false;
  if (body.rrf_k !== undefined) return true;
  return defaults.searchHybridFusion === 'rrf';
}
