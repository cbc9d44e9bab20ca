// POST /v1/search — semantic search over every shard: embed the query (or take a vector),
// scatter, merge the shards' top-k. The schema is built from the running config and model
// (max k, vector dimension), so every bad request is refused before any work starts.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Namespace } from '../../../shards/protocol.js';
import { CacheControlBody, CacheControlHeaders, DeadlineMs, cacheControl, deadlineMs, setCacheStatus } from '../client-controls.js';
import { requestSignal } from '../../../core/request-signal.js';
import { BoundedFilter, Coverage, RerankBody, RerankInfo, RetrievalFields, SearchHit, SearchTimings, retrievalInput } from '../../schemas.js';
import type { SearchHit as SearchHitType } from '../../schemas.js';

// Largest finite float32; JSON numbers beyond it (1e999 parses as Infinity) are refused.
const FLOAT32_MAX = 3.4028234663852886e38;
const INCLUDE_FIELDS = ['text', 'metadata'] as const;

export function searchBodySchema(options: { maxK: number; dimensions: number; maxFilterBytes: number }) {
  return Type.Object(
    {
      query: Type.Optional(Type.String({ minLength: 1, maxLength: 65_536 })),
      vector: Type.Optional(
        Type.Array(Type.Number({ minimum: -FLOAT32_MAX, maximum: FLOAT32_MAX }), {
          minItems: options.dimensions,
          maxItems: options.dimensions,
        }),
      ),
      k: Type.Optional(Type.Integer({ minimum: 1, maximum: options.maxK })),
      /** hnswlib's search breadth for this query (recall vs speed); default: each shard's --ef. */
      ef: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
      namespace: Type.Optional(Namespace),
      filter: Type.Optional(BoundedFilter(options.maxFilterBytes)),
      include: Type.Optional(Type.Array(Type.Union(INCLUDE_FIELDS.map((field) => Type.Literal(field))), { uniqueItems: true })),
      cache: Type.Optional(CacheControlBody),
      deadline_ms: Type.Optional(DeadlineMs),
      require_complete: Type.Optional(Type.Boolean()),
      ...RetrievalFields,
      /** Rerank the first top_n candidates (default RAGWAY_RERANK_TOP_N) and return the best k. */
      rerank: Type.Optional(RerankBody),
    },
    {
      additionalProperties: false,
      allOf: [
        { anyOf: [{ required: ['query'] }, { required: ['vector'] }], errorMessage: 'give a query (text) or a vector' },
        { not: { required: ['query', 'vector'] }, errorMessage: 'give either query or vector, not both' },
      ],
    },
  );
}

export type SearchBody = Static<ReturnType<typeof searchBodySchema>>;

export const SearchResponseSchema = Type.Object({
  object: Type.Literal('search.result'),
  model: Type.String(),
  results: Type.Array(SearchHit),
  coverage: Coverage,
  timings: SearchTimings,
  rerank: Type.Optional(RerankInfo),
});

export default async function searchRoutes(app: FastifyInstance): Promise<void> {
  const body = searchBodySchema({ maxK: app.config.searchMaxK, dimensions: app.embedder.backend.dimensions, maxFilterBytes: app.config.maxFilterBytes });
  // A cache hit returns the very results array the cache holds, so its JSON can be kept
  // beside it (and dies with it): a hot query is serialized once, not on every hit. The
  // payload has exactly the shape SearchResponseSchema documents.
  const serializedResults = new WeakMap<readonly SearchHitType[], string>();
  app.post<{ Body: SearchBody; Headers: CacheControlHeaders }>(
    '/v1/search',
    { bodyLimit: app.config.maxQueryBodyBytes, schema: { body, headers: CacheControlHeaders, response: { 200: SearchResponseSchema } } },
    async (request, reply) => {
      const { query, vector, k, ef, namespace, filter, include } = request.body;
      const result = await app.pipeline.search(
        {
          query,
          vector,
          k: k ?? app.config.searchDefaultK,
          ef,
          namespace,
          namespaces: request.namespaces,
          filter,
          includeText: include === undefined || include.includes('text'),
          includeMetadata: include === undefined || include.includes('metadata'),
          cache: cacheControl(request.body.cache, request.headers, app.config.cacheMaxTtlMs),
          deadlineMs: deadlineMs(request.body.deadline_ms, request.headers, app.config.deadlineMs),
          requireComplete: request.body.require_complete,
          ...retrievalInput(request.body, app.config),
          rerank: request.body.rerank,
          trace: request.traceSpan,
          log: request.log,
        },
        requestSignal(request, reply),
      );
      setCacheStatus(reply, result.cache);
      let results = serializedResults.get(result.results);
      if (results === undefined) {
        results = JSON.stringify(result.results);
        serializedResults.set(result.results, results);
      }
      reply.type('application/json; charset=utf-8');
      // A partial answer says which shards are missing, in words a client may read.
      const coverage =
        result.coverage.missing === undefined
          ? result.coverage
          : { ...result.coverage, missing: result.coverage.missing.map((entry) => ({ ...entry, reason: app.publicMessage(entry.reason, request.id) })) };
      return `{"object":"search.result","model":${JSON.stringify(result.model)},"results":${results},"coverage":${JSON.stringify(coverage)},"timings":${JSON.stringify(result.timings)}${result.rerank === undefined ? '' : `,"rerank":${JSON.stringify(result.rerank)}`}}`;
    },
  );
}
