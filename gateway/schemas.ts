// Response pieces shared by several routes. Response schemas let Fastify serialize with
// fast-json-stringify and document the API; types for handlers derive from them.
import { Type, type Static } from '@sinclair/typebox';
import { ShardHit } from '../shards/protocol.js';

/** A search result is exactly what the shards return, merged. */
export const SearchHit = ShardHit;
export type SearchHit = ShardHit;

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
