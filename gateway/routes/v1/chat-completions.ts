// POST /v1/chat/completions — OpenAI-compatible, retrieval-augmented from the latest user
// message unless `rag.enabled` is false. Sources ride along in a `rag` field that OpenAI
// SDKs ignore. Streaming follows OpenAI's chunk format exactly (answer/encoders.ts).
import { randomUUID } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Namespace } from '../../../shards/protocol.js';
import { createError } from '../../../core/errors.js';
import { requestSignal } from '../../../core/request-signal.js';
import { OpenAiChunkEncoder } from '../../answer/encoders.js';
import type { ChatMessage } from '../../providers/provider.js';
import { BoundedFilter, Nullable, RerankBody, RetrievalFields } from '../../schemas.js';
import { replyWithAnswer } from '../answer-reply.js';
import { proxyChat } from '../chat-proxy.js';
import { CacheControlBody, CacheControlHeaders, DeadlineMs, cacheControl, ragOptions } from '../client-controls.js';

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

function ragSchema(options: { maxK: number; maxFilterBytes: number }) {
  return {
    k: Type.Optional(Type.Integer({ minimum: 1, maximum: options.maxK })),
    namespace: Type.Optional(Namespace),
    filter: Type.Optional(BoundedFilter(options.maxFilterBytes)),
    require_complete: Type.Optional(Type.Boolean()),
    deadline_ms: Type.Optional(DeadlineMs),
    ...RetrievalFields,
    rerank: Type.Optional(RerankBody),
  };
}

function ragChatBodySchema(options: { maxK: number; maxFilterBytes: number }) {
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
    rag: Type.Optional(Type.Object({ enabled: Type.Optional(Type.Boolean()), ...ragSchema(options) }, { additionalProperties: false })),
    cache: Type.Optional(CacheControlBody),
    // Other OpenAI parameters (presence_penalty, seed, logit_bias, …) are accepted and not
    // forwarded: clients such as LangChain send them by default.
  });
}

/** Retrieval off: the body goes to the upstream as it is, so only what ragway reads is checked. */
function proxyChatBodySchema(options: { maxK: number; maxFilterBytes: number }) {
  return Type.Object({
    model: Type.String({ minLength: 1 }),
    messages: Type.Array(Type.Object({}), { minItems: 1 }),
    stream: Type.Optional(Nullable(Type.Boolean())),
    rag: Type.Object({ enabled: Type.Literal(false), ...ragSchema(options) }, { additionalProperties: false }),
    cache: Type.Optional(CacheControlBody),
  });
}

const RAG_OFF = { type: 'object', required: ['rag'], properties: { rag: { type: 'object', required: ['enabled'], properties: { enabled: { const: false } } } } };

export function chatBodySchema(options: { maxK: number; maxFilterBytes: number }) {
  const rag = ragChatBodySchema(options);
  const proxy = proxyChatBodySchema(options);
  return Type.Unsafe<Static<typeof rag> | Static<typeof proxy>>({ type: 'object', if: RAG_OFF, then: proxy, else: rag });
}
export type ChatBody = Static<ReturnType<typeof ragChatBodySchema>>;
type ProxyChatBody = Static<ReturnType<typeof proxyChatBodySchema>>;

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

function text(content: Static<typeof Content>, param: string): string {
  if (typeof content === 'string') return content;
  // Reached unchecked only with retrieval off on a generator that is no LLM upstream.
  if (!Array.isArray(content) || !content.every((part) => typeof part?.text === 'string')) {
    throw createError('RAGWAY_ERR_INVALID_REQUEST', `${param} must be text: ragway-extractive reads no images, audio or tool calls`, { param });
  }
  return content.map((part) => part.text).join('\n');
}

const ROLES: ReadonlySet<string> = new Set(['system', 'developer', 'user', 'assistant']);

/** Splits the conversation into history and the question (the latest message, which must be the user's). */
export function conversation(messages: ChatBody['messages']): { question: string; history: ChatMessage[] } {
  const last = messages.at(-1);
  if (last === undefined || last.role !== 'user') {
    throw createError('RAGWAY_ERR_INVALID_REQUEST', 'the last message must come from the user', {
      param: `messages[${messages.length - 1}].role`,
    });
  }
  const question = text(last.content, `messages[${messages.length - 1}].content`);
  if (question.trim() === '') {
    throw createError('RAGWAY_ERR_INVALID_REQUEST', 'the last user message is empty', { param: `messages[${messages.length - 1}].content` });
  }
  const history = messages.slice(0, -1).map((message, i): ChatMessage => {
    if (!ROLES.has(message.role)) {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', `messages[${i}].role must be system, developer, user or assistant for ragway-extractive`, {
        param: `messages[${i}].role`,
      });
    }
    return { role: message.role === 'developer' ? 'system' : message.role, content: text(message.content, `messages[${i}].content`) };
  });
  return { question, history };
}

export default async function chatCompletionRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: ChatBody | ProxyChatBody; Headers: CacheControlHeaders }>(
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
      if (request.body.rag?.enabled === false) {
        const generator = app.generators.get(request.body.model);
        const proxy = generator.proxy;
        if (proxy !== undefined) {
          return proxyChat(request, reply, { id: generator.id, proxy: proxy.bind(generator) }, request.body as ProxyChatBody, {
            pingIntervalMs: app.config.ssePingMs,
            stallTimeoutMs: app.config.sseStallTimeoutMs,
          });
        }
      }
      // The RAG schema applied, or the generator is not an LLM upstream (ragway-extractive,
      // which reads the conversation as text: conversation() refuses what it cannot read).
      const body = request.body as ChatBody;
      const { question, history } = conversation(body.messages);
      const answer = app.answers.answer(
        {
          question,
          history,
          model: body.model,
          rag: ragOptions(body.rag ?? {}, request.headers, { ...app.config, k: app.config.answerK, deadlineMs: app.config.deadlineMs }, request.namespaces),
          maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
          temperature: body.temperature ?? undefined,
          topP: body.top_p ?? undefined,
          stop: body.stop === null || body.stop === undefined ? undefined : typeof body.stop === 'string' ? [body.stop] : body.stop,
          cache: cacheControl(body.cache, request.headers, app.config.cacheMaxTtlMs),
          trace: request.traceSpan,
          log: request.log,
        },
        requestSignal(request, reply),
      );
      const encoder = new OpenAiChunkEncoder({
        id: `chatcmpl-${randomUUID().replaceAll('-', '')}`,
        created: Math.floor(Date.now() / 1000),
        includeUsage: body.stream_options?.include_usage === true,
      });
      return replyWithAnswer(request, reply, answer, encoder, {
        stream: body.stream === true,
        pingIntervalMs: app.config.ssePingMs,
        stallTimeoutMs: app.config.sseStallTimeoutMs,
      });
    },
  );
}
