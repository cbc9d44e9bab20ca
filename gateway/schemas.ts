// Response pieces shared by several routes. Response schemas let Fastify serialize with
// fast-json-stringify and document the API; types for handlers derive from them.
import { Type, type Static } from '@sinclair/typebox';

export const SearchHit = Type.Object({
  id: Type.String(),
  document_id: Type.String(),
  score: Type.Number(),
  text: Type.Optional(Type.String()),
  metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type SearchHit = Static<typeof SearchHit>;

/** What part of the corpus answered; `partial` is never hidden (ARCHITECTURE §4). */
export const Coverage = Type.Object({
  shards_total: Type.Integer(),
  shards_ok: Type.Integer(),
  partial: Type.Boolean(),
});
export type Coverage = Static<typeof Coverage>;

export const SearchTimings = Type.Object({
  embed_ms: Type.Number(),
  search_ms: Type.Number(),
  total_ms: Type.Number(),
});
export type SearchTimings = Static<typeof SearchTimings>;
