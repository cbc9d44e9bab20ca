// Response pieces shared by several routes. Response schemas let Fastify serialize with
// fast-json-stringify and document the API; types for handlers derive from them.
import { Type, type Static } from '@sinclair/typebox';
import { ShardHit } from '../shards/protocol.js';

/** A search result is what the shards return, merged; `rerank_score` when a reranker re-ordered it. */
export const SearchHit = Type.Object({ ...ShardHit.properties, rerank_score: Type.Optional(Type.Number()) });

/** `T | null`: OpenAI clients send null for unset optional parameters. */
export const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);
export type SearchHit = Static<typeof SearchHit>;

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
