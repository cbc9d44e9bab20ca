// POST /v1/query — ragway's native RAG endpoint: retrieve, generate, cite. JSON by default;
// with `stream: true` (or `Accept: text/event-stream`) an SSE stream of
// `sources` → `delta`… → `done` | `error`, with `: ping` comments while idle.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Namespace } from '../../../shards/protocol.js';
import type { AnswerSummary, PreparedAnswer } from '../../answer.js';
import { toRagwayError } from '../../../core/http-errors.js';
import { CacheControlBody, answerCacheHeaders, CacheControlHeaders, DeadlineMs, cacheControl, deadlineMs, setCacheStatus } from '../../request-control.js';
import { requestSignal } from '../../../core/request-signal.js';
import { BoundedFilter, Coverage } from '../../schemas.js';
import { SseStream } from '../../sse.js';

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
  usage: Type.Object({ prompt_tokens: Type.Integer(), completion_tokens: Type.Integer(), total_tokens: Type.Integer() }),
  timings: Type.Record(Type.String(), Type.Number()),
});

export function citationsOf(prepared: PreparedAnswer, summary: AnswerSummary): Static<typeof Citation>[] {
  return summary.citations.flatMap((index) => {
    const source = prepared.sources[index - 1];
    return source === undefined ? [] : [{ index, id: source.id, document_id: source.document_id }];
  });
}

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
      const signal = requestSignal(request, reply);
      const prepared = await app.answers.prepare(
        {
          question: body.query,
          history: [],
          model: body.model,
          rag: {
            enabled: true,
            k: body.k ?? app.config.answerK,
            namespace: body.namespace,
            filter: body.filter,
            deadlineMs: deadlineMs(body.deadline_ms, request.headers, app.config.deadlineMs),
            requireComplete: body.require_complete,
          },
          maxTokens: body.max_tokens,
          temperature: body.temperature,
          cache: cacheControl(body.cache, request.headers),
        },
        signal,
      );

      if (!wantsStream(body, request.headers.accept)) {
        const summary = await app.answers.run(prepared, signal, () => undefined);
        reply.headers(answerCacheHeaders(prepared));
        setCacheStatus(reply, summary.cacheStatus);
        return {
          object: 'query.result' as const,
          model: prepared.generator.id,
          answer: summary.text,
          finish_reason: summary.finishReason,
          citations: citationsOf(prepared, summary),
          invalid_citations: summary.invalidCitations,
          sources: prepared.sources,
          dropped_sources: prepared.droppedSources,
          coverage: prepared.coverage ?? null,
          usage: summary.usage,
          timings: summary.timings,
        };
      }

      const sse = new SseStream(reply, { pingIntervalMs: app.config.ssePingMs, stallTimeoutMs: app.config.sseStallTimeoutMs });
      sse.open(answerCacheHeaders(prepared));
      await sse.send(
        JSON.stringify({
          model: prepared.generator.id,
          sources: prepared.sources,
          dropped_sources: prepared.droppedSources,
          coverage: prepared.coverage ?? null,
        }),
        'sources',
      );
      try {
        const summary = await app.answers.run(prepared, signal, (text) => sse.send(JSON.stringify({ text }), 'delta'));
        await sse.send(
          JSON.stringify({
            finish_reason: summary.finishReason,
            usage: summary.usage,
            citations: citationsOf(prepared, summary),
            invalid_citations: summary.invalidCitations,
            coverage: prepared.coverage ?? null,
            timings: summary.timings,
          }),
          'done',
        );
      } catch (err) {
        // Headers are gone: the failure travels in the stream, never as a silent end.
        const error = toRagwayError(err);
        if (error.statusCode >= 500) request.log.error({ err }, 'answer stream failed');
        await sse.send(JSON.stringify(error.toEnvelope()), 'error');
      } finally {
        sse.end();
      }
      return reply;
    },
  );
}
