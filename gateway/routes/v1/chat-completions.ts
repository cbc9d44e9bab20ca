// POST /v1/chat/completions — OpenAI-compatible, retrieval-augmented from the latest user
// message unless `rag.enabled` is false. Sources ride along in a `rag` field that OpenAI
// SDKs ignore. Streaming follows OpenAI's chunk format exactly (ARCHITECTURE §4): constant
// id/created, role on the first delta, one finish_reason, the usage chunk when asked for,
// then `[DONE]` — and an error after the headers is a `data: {"error":…}` frame plus `[DONE]`.
import { randomUUID } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Namespace } from '../../../shards/protocol.js';
import type { AnswerSummary, PreparedAnswer } from '../../answer.js';
import { createError } from '../../../core/errors.js';
import { toRagwayError } from '../../../core/http-errors.js';
import type { ChatMessage } from '../../providers/provider.js';
import { CacheControlBody, answerCacheHeaders, CacheControlHeaders, DeadlineMs, cacheControl, deadlineMs, setCacheStatus } from '../../request-control.js';
import { requestSignal } from '../../../core/request-signal.js';
import { SseStream } from '../../sse.js';
import { BoundedFilter, Nullable } from '../../schemas.js';
import { citationsOf } from './query.js';

const TextPart = Type.Object({ type: Type.Literal('text'), text: Type.String() });
const Content = Type.Union([Type.String(), Type.Array(TextPart, { minItems: 1 })], {
  errorMessage: 'content must be a string or an array of {"type":"text","text":…} parts (images and audio are not supported)',
});

const Message = Type.Object({
  role: Type.Union([Type.Literal('system'), Type.Literal('developer'), Type.Literal('user'), Type.Literal('assistant')], {
    errorMessage: 'role must be system, developer, user or assistant (tool and function messages are not supported)',
  }),
  content: Content,
  name: Type.Optional(Type.String()),
});

export function chatBodySchema(options: { maxK: number; maxFilterBytes: number }) {
  return Type.Object({
    model: Type.String({ minLength: 1 }),
    messages: Type.Array(Message, { minItems: 1 }),
    stream: Type.Optional(Nullable(Type.Boolean())),
    stream_options: Type.Optional(Nullable(Type.Object({ include_usage: Type.Optional(Type.Boolean()) }))),
    max_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
    max_completion_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
    temperature: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 2 }))),
    top_p: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 1 }))),
    n: Type.Optional(Nullable(Type.Literal(1, { errorMessage: 'n must be 1: ragway generates one choice' }))),
    stop: Type.Optional(Nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })]))),
    user: Type.Optional(Type.String()),
    rag: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean()),
          k: Type.Optional(Type.Integer({ minimum: 1, maximum: options.maxK })),
          namespace: Type.Optional(Namespace),
          filter: Type.Optional(BoundedFilter(options.maxFilterBytes)),
          require_complete: Type.Optional(Type.Boolean()),
          deadline_ms: Type.Optional(DeadlineMs),
        },
        { additionalProperties: false },
      ),
    ),
    cache: Type.Optional(CacheControlBody),
    // Other OpenAI parameters (presence_penalty, seed, logit_bias, …) are accepted and not
    // forwarded: clients such as LangChain send them by default.
  });
}
export type ChatBody = Static<ReturnType<typeof chatBodySchema>>;

const ChatCompletionResponse = Type.Object({
  id: Type.String(),
  object: Type.Literal('chat.completion'),
  created: Type.Integer(),
  model: Type.String(),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      message: Type.Object({ role: Type.Literal('assistant'), content: Type.String(), refusal: Type.Null() }),
      logprobs: Type.Null(),
      finish_reason: Type.String(),
    }),
  ),
  usage: Type.Object({ prompt_tokens: Type.Integer(), completion_tokens: Type.Integer(), total_tokens: Type.Integer() }),
  /** ragway's extension: the sources, coverage and citations behind the answer. */
  rag: Type.Record(Type.String(), Type.Unknown()),
});

function text(content: Static<typeof Content>): string {
  return typeof content === 'string' ? content : content.map((part) => part.text).join('\n');
}

/** Splits the conversation into history and the question (the latest message, which must be the user's). */
export function conversation(messages: ChatBody['messages']): { question: string; history: ChatMessage[] } {
  const last = messages.at(-1);
  if (last === undefined || last.role !== 'user') {
    throw createError('RAGWAY_ERR_INVALID_REQUEST', 'the last message must come from the user', {
      param: `messages[${messages.length - 1}].role`,
    });
  }
  const question = text(last.content);
  if (question.trim() === '') {
    throw createError('RAGWAY_ERR_INVALID_REQUEST', 'the last user message is empty', { param: `messages[${messages.length - 1}].content` });
  }
  const history = messages.slice(0, -1).map(
    (message): ChatMessage => ({ role: message.role === 'developer' ? 'system' : message.role, content: text(message.content) }),
  );
  return { question, history };
}

function ragField(prepared: PreparedAnswer, summary?: AnswerSummary): Record<string, unknown> {
  return {
    sources: prepared.sources,
    dropped_sources: prepared.droppedSources,
    coverage: prepared.coverage ?? null,
    ...(summary ? { citations: citationsOf(prepared, summary), invalid_citations: summary.invalidCitations, timings: summary.timings } : {}),
  };
}

export default async function chatCompletionRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: ChatBody; Headers: CacheControlHeaders }>(
    '/v1/chat/completions',
    {
      bodyLimit: app.config.maxQueryBodyBytes,
      schema: {
        body: chatBodySchema({ maxK: app.config.searchMaxK, maxFilterBytes: app.config.maxFilterBytes }),
        headers: CacheControlHeaders,
        response: { 200: ChatCompletionResponse },
      },
    },
    async (request, reply) => {
    const body = request.body;
    const signal = requestSignal(request, reply);
    const { question, history } = conversation(body.messages);
    const prepared = await app.answers.prepare(
      {
        question,
        history,
        model: body.model,
        rag: {
          enabled: body.rag?.enabled ?? true,
          k: body.rag?.k ?? app.config.answerK,
          namespace: body.rag?.namespace,
          filter: body.rag?.filter,
          deadlineMs: deadlineMs(body.rag?.deadline_ms, request.headers, app.config.deadlineMs),
          requireComplete: body.rag?.require_complete,
        },
        maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
        temperature: body.temperature ?? undefined,
        topP: body.top_p ?? undefined,
        stop: body.stop === null || body.stop === undefined ? undefined : typeof body.stop === 'string' ? [body.stop] : body.stop,
        cache: cacheControl(body.cache, request.headers),
      },
      signal,
    );
    const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
    const created = Math.floor(Date.now() / 1000);
    const model = prepared.generator.id;

    if (body.stream !== true) {
      const summary = await app.answers.run(prepared, signal, () => undefined);
      reply.headers(answerCacheHeaders(prepared));
      setCacheStatus(reply, summary.cacheStatus);
      return {
        id,
        object: 'chat.completion' as const,
        created,
        model,
        choices: [
          { index: 0, message: { role: 'assistant', content: summary.text, refusal: null }, logprobs: null, finish_reason: summary.finishReason },
        ],
        usage: summary.usage,
        rag: ragField(prepared, summary),
      };
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): string =>
      JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices, ...(includeUsage ? { usage: null } : {}), ...extra });
    const sse = new SseStream(reply, { pingIntervalMs: app.config.ssePingMs, stallTimeoutMs: app.config.sseStallTimeoutMs });
    sse.open(answerCacheHeaders(prepared));
    await sse.send(
      chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], { rag: ragField(prepared) }),
    );
    try {
      const summary = await app.answers.run(prepared, signal, (delta) =>
        sse.send(chunk([{ index: 0, delta: { content: delta }, logprobs: null, finish_reason: null }])),
      );
      await sse.send(
        chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: summary.finishReason }], {
          rag: { citations: citationsOf(prepared, summary), invalid_citations: summary.invalidCitations, timings: summary.timings },
        }),
      );
      if (includeUsage) {
        await sse.send(JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: summary.usage }));
      }
    } catch (err) {
      const error = toRagwayError(err);
      if (error.statusCode >= 500) request.log.error({ err }, 'chat completion stream failed');
      await sse.send(JSON.stringify(error.toEnvelope()));
    } finally {
      await sse.send('[DONE]');
      sse.end();
    }
    return reply;
    },
  );
}
