// Response pieces shared by several routes. Response schemas let Fastify serialize with
// fast-json-stringify and document the API; types for handlers derive from them.
import { Type, type Static } from '@sinclair/typebox';
import type { Coverage as ScatterCoverage } from '../retriever/scatter.js';
import { ShardHit } from '../shards/protocol.js';

/** A search result is exactly what the shards return, merged. */
export const SearchHit = ShardHit;

/** `T | null`: OpenAI clients send null for unset optional parameters. */
export const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);
export type SearchHit = ShardHit;

/** What part of the corpus answered; `partial` is never hidden (docs/architecture.md §5.4). */
export const Coverage = Type.Object({
  shards_total: Type.Integer(),
  shards_ok: Type.Integer(),
  partial: Type.Boolean(),
  /** Only on a partial answer: the shards left out and why. */
  missing: Type.Optional(Type.Array(Type.Object({ shard: Type.Integer(), code: Type.String(), reason: Type.String() }))),
});
/** The retriever's own type (its `missing[].code` is a catalog code); the schema above describes it on the wire. */
export type Coverage = ScatterCoverage;

export const SearchTimings = Type.Object({
  embed_ms: Type.Number(),
  search_ms: Type.Number(),
  total_ms: Type.Number(),
});
export type SearchTimings = Static<typeof SearchTimings>;
