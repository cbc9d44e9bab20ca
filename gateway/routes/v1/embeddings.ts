// POST /v1/embeddings — OpenAI-compatible. The official SDK asks for base64 by default
// (little-endian float32), LangChain and curl for floats; both come from the same batcher
// as search queries, and usage counts the model's real tokens.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { createError } from '../../../core/errors.js';
import { requestSignal } from '../../../core/request-signal.js';

/** OpenAI's own limit on inputs per request. */
export const MAX_EMBEDDING_INPUTS = 2048;

const EmbeddingInput = Type.String({ minLength: 1 });

export const EmbeddingsBody = Type.Object({
  input: Type.Union([EmbeddingInput, Type.Array(EmbeddingInput, { minItems: 1, maxItems: MAX_EMBEDDING_INPUTS })], {
    errorMessage: `input must be a non-empty string or an array of 1 to ${MAX_EMBEDDING_INPUTS} non-empty strings (token arrays are not supported)`,
  }),
  model: Type.String({ minLength: 1 }),
  encoding_format: Type.Optional(Type.Union([Type.Literal('float'), Type.Literal('base64')])),
  dimensions: Type.Optional(Type.Integer({ minimum: 1 })),
  user: Type.Optional(Type.String()),
});
export type EmbeddingsBody = Static<typeof EmbeddingsBody>;

const EmbeddingsResponse = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(
    Type.Object({
      object: Type.Literal('embedding'),
      index: Type.Integer(),
      embedding: Type.Union([Type.Array(Type.Number()), Type.String()]),
    }),
  ),
  model: Type.String(),
  usage: Type.Object({ prompt_tokens: Type.Integer(), total_tokens: Type.Integer() }),
});

function toBase64(vector: Float32Array): string {
  // Float32Array is host-endian; every platform Node supports here is little-endian, which
  // is what OpenAI's base64 format specifies.
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

export default async function embeddingRoutes(app: FastifyInstance): Promise<void> {
  const { backend } = app.embedder;
  app.post<{ Body: EmbeddingsBody }>(
    '/v1/embeddings',
    { schema: { body: EmbeddingsBody, response: { 200: EmbeddingsResponse } } },
    async (request, reply) => {
      const { input, model, encoding_format: format, dimensions } = request.body;
      if (model !== backend.modelId) {
        throw createError(
          'RAGWAY_ERR_MODEL_NOT_FOUND',
          `the embedding model "${model}" does not exist here; use "${backend.modelId}" (see GET /v1/models)`,
          { param: 'model' },
        );
      }
      // Matryoshka-style truncation is only meaningful for models trained for it; this one is not.
      if (dimensions !== undefined && dimensions !== backend.dimensions) {
        throw createError(
          'RAGWAY_ERR_INVALID_REQUEST',
          `model ${backend.modelId} produces ${backend.dimensions}-dimensional embeddings and does not support "dimensions": ${dimensions}`,
          { param: 'dimensions' },
        );
      }
      const texts = typeof input === 'string' ? [input] : input;
      const embed = () => app.embedder.embed(texts, { signal: requestSignal(request, reply), param: 'input' });
      const span = request.traceSpan;
      const { vectors, promptTokens } =
        span === undefined ? await embed() : await span.run('embed', { 'ragway.embed.model': backend.modelId, 'ragway.embed.inputs': texts.length }, embed);
      // Serialized here rather than by the response schema: its float-or-string union makes
      // fast-json-stringify validate every one of up to 2048 × dims numbers to pick a branch
      // (about 3x slower at 2048 inputs). The payload has exactly EmbeddingsResponse's shape.
      const data = vectors.map((vector, index) => {
        const embedding = format === 'base64' ? `"${toBase64(vector)}"` : `[${vector.join(',')}]`;
        return `{"object":"embedding","index":${index},"embedding":${embedding}}`;
      });
      reply.type('application/json; charset=utf-8');
      return `{"object":"list","data":[${data.join(',')}],"model":${JSON.stringify(backend.modelId)},"usage":{"prompt_tokens":${promptTokens},"total_tokens":${promptTokens}}}`;
    },
  );
}
