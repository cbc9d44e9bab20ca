// POST /v1/query — ragway's native RAG endpoint: retrieve, generate, cite. JSON by default;
// with `stream: true` (or `Accept: text/event-stream`) an SSE stream of
// `sources` → `delta`… → `done` | `error`, with `: ping` comments while idle.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Namespace } from '../../../shards/protocol.js';
import { requestSignal } from '../../../core/request-signal.js';
import { NativeAnswerEncoder } from '../../answer/encoders.js';
import { BoundedFilter, Coverage, RerankBody, RerankInfo, RetrievalFields } from '../../schemas.js';
import { replyWithAnswer } from '../answer-reply.js';
import { CacheControlBody, CacheControlHeaders, DeadlineMs, cacheControl, ragOptions } from '../client-controls.js';

export function queryBodySchema(options: { maxK: number; maxFilterBytes: number }) {
  return Type.Object(
    {
      query: Type.String({ minLength: 1, maxLength: 65_536 }),
      k: Type.Optional(Type.Integer({ minimum: 1, maximum: options.maxK })),
      namespace: Type.Optional(Namespace),
      filter: Type.Optional(BoundedFilter(options.maxFilterBytes)),
      model: Type.Optional(Type.String({ minLength: 1 })),
      stream: Type.Optional(Type.Boolean()),
      max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
      temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
      cache: Type.Optional(CacheControlBody),
      deadline_ms: Type.Optional(DeadlineMs),
      require_complete: Type.Optional(Type.Boolean()),
      ...RetrievalFields,
      rerank: Type.Optional(RerankBody),
    },
    { additionalProperties: false },
  );
}
export type QueryBody = Static<ReturnType<typeof queryBodySchema>>;

export const SourceSchema = Type.Object({
  index: Type.Integer(),
  id: Type.String(),
  document_id: Type.String(),
  score: Type.Number(),
  text: Type.String(),
  metadata: Type.Record(Type.String(), Type.Unknown()),
});

const Citation = Type.Object({ index: Type.Integer(), id: Type.String(), document_id: Type.String() });

const QueryResponse = Type.Object({
  object: Type.Literal('query.result'),
  model: Type.String(),
  answer: Type.String(),
  finish_reason: Type.String(),
  citations: Type.Array(Citation),
  invalid_citations: Type.Array(Type.Integer()),
  sources: Type.Array(SourceSchema),
  dropped_sources: Type.Integer(),
  coverage: Type.Union([Coverage, Type.Null()]),
  rerank: Type.Optional(RerankInfo),
  usage: Type.Object({ prompt_tokens: Type.Integer(), completion_tokens: Type.Integer(), total_tokens: Type.Integer() }),
  timings: Type.Record(Type.String(), Type.Number()),
});

function wantsStream(body: QueryBody, accept: string | undefined): boolean {
  if (body.stream !== undefined) return body.stream;
  return accept?.includes('text/event-stream') === true;
}

export default async function queryRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: QueryBody; Headers: CacheControlHeaders }>(
    '/v1/query',
    {
      bodyLimit: app.config.maxQueryBodyBytes,
      schema: {
        body: queryBodySchema({ maxK: app.config.searchMaxK, maxFilterBytes: app.config.maxFilterBytes }),
        headers: CacheControlHeaders,
        response: { 200: QueryResponse },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const answer = app.answers.answer(
        {
          question: body.query,
          history: [],
          model: body.model,
          rag: ragOptions(body, request.headers, { ...app.config, k: app.config.answerK, deadlineMs: app.config.deadlineMs }, request.namespaces),
          maxTokens: body.max_tokens,
          temperature: body.temperature,
          cache: cacheControl(body.cache, request.headers, app.config.cacheMaxTtlMs),
          trace: request.traceSpan,
          log: request.log,
        },
        requestSignal(request, reply),
      );
      return replyWithAnswer(request, reply, answer, new NativeAnswerEncoder(), {
        stream: wantsStream(body, request.headers.accept),
        pingIntervalMs: app.config.ssePingMs,
        stallTimeoutMs: app.config.sseStallTimeoutMs,
      });
    },
  );
}
