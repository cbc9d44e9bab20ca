// Response pieces shared by several routes. Response schemas let Fastify serialize with
// fast-json-stringify and document the API; types for handlers derive from them.
import { Type, type Static } from '@sinclair/typebox';
import { ShardHit } from '../shards/protocol.js';

/** A search result is exactly what the shards return, merged. */
export const SearchHit = ShardHit;

/** `T | null`: OpenAI clients send null for unset optional parameters. */
export const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);
export type SearchHit = ShardHit;

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
  total_ms: Type.Number(),
});
export type SearchTimings = Static<typeof SearchTimings>;
