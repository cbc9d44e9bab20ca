// GET /v1/models — what a client may name in `model`: the generation models (LLM upstreams
// and ragway-extractive) and the embedding model, in OpenAI's list format.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { createError } from '../../../core/errors.js';

const Model = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  created: Type.Integer(),
  owned_by: Type.String(),
});
type Model = Static<typeof Model>;

const ModelList = Type.Object({ object: Type.Literal('list'), data: Type.Array(Model) });
const ModelParams = Type.Object({ '*': Type.String({ minLength: 1 }) });

export default async function modelRoutes(app: FastifyInstance): Promise<void> {
  // Models are fixed for the life of the process, so `created` is when it started.
  const created = Math.floor(Date.now() / 1000);
  const models = (): Model[] => [
    ...app.answers.generators.list().map((generator) => ({
      id: generator.id,
      object: 'model' as const,
      created,
      owned_by: generator.ownedBy,
    })),
    { id: app.embedder.backend.modelId, object: 'model' as const, created, owned_by: 'ragway' },
  ];

  app.get('/v1/models', { schema: { response: { 200: ModelList } } }, async () => ({ object: 'list' as const, data: models() }));

  // Model ids may contain slashes ("meta-llama/Llama-3.1-8B-Instruct").
  app.get<{ Params: Static<typeof ModelParams> }>(
    '/v1/models/*',
    { schema: { params: ModelParams, response: { 200: Model } } },
    async (request) => {
      const id = request.params['*'];
      const model = models().find((candidate) => candidate.id === id);
      if (model === undefined) throw createError('RAGWAY_ERR_MODEL_NOT_FOUND', `the model "${id}" does not exist`, { param: 'model' });
      return model;
    },
  );
}
