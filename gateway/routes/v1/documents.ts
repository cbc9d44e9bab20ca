// Documents API: ingest (chunk → embed → route to the owning shard), fetch, delete.
// Document ids may contain slashes (the ingest CLI uses relative paths), hence the
// wildcard routes: /v1/documents/docs/guide.md works with or without %2F encoding.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { DEFAULT_NAMESPACE, Metadata, Namespace } from '../../../shards/protocol.js';
import { BoundedMetadata } from '../../schemas.js';
import { createError } from '../../../core/errors.js';
import { requestSignal } from '../../../core/request-signal.js';

const DocumentId = Type.String({ minLength: 1, maxLength: 480 });

export function ingestBodySchema(options: { maxDocuments: number; maxMetadataBytes: number }) {
  return Type.Object(
    {
      namespace: Type.Optional(Namespace),
      documents: Type.Array(
        Type.Object(
          {
            id: Type.Optional(DocumentId),
            text: Type.String({ minLength: 1 }),
            metadata: Type.Optional(BoundedMetadata(options.maxMetadataBytes)),
          },
          { additionalProperties: false },
        ),
        { minItems: 1, maxItems: options.maxDocuments },
      ),
    },
    { additionalProperties: false },
  );
}
export type IngestBody = Static<ReturnType<typeof ingestBodySchema>>;

const IngestResponse = Type.Object({
  object: Type.Literal('ingest.result'),
  namespace: Type.String(),
  documents: Type.Array(Type.Object({ id: Type.String(), chunks: Type.Integer() })),
  chunks_total: Type.Integer(),
  timings: Type.Object({ chunk_ms: Type.Number(), embed_ms: Type.Number(), upsert_ms: Type.Number(), total_ms: Type.Number() }),
});

const DocumentQuery = Type.Object({ namespace: Type.Optional(Namespace) }, { additionalProperties: false });
type DocumentQuery = Static<typeof DocumentQuery>;
const WildcardParams = Type.Object({ '*': DocumentId });
type WildcardParams = Static<typeof WildcardParams>;

const DocumentResponse = Type.Object({
  object: Type.Literal('document'),
  id: Type.String(),
  namespace: Type.String(),
  text: Type.String(),
  chunks: Type.Array(Type.Object({ id: Type.String(), text: Type.String(), metadata: Metadata })),
});

const DeleteResponse = Type.Object({
  object: Type.Literal('document.deleted'),
  id: Type.String(),
  namespace: Type.String(),
  deleted: Type.Boolean(),
  chunks_deleted: Type.Integer(),
});

export default async function documentRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: IngestBody }>(
    '/v1/documents',
    {
      schema: {
        body: ingestBodySchema({ maxDocuments: app.config.maxDocumentsPerRequest, maxMetadataBytes: app.config.maxMetadataBytes }),
        response: { 200: IngestResponse },
      },
    },
    async (request, reply) => {
      const namespace = request.body.namespace ?? DEFAULT_NAMESPACE;
      const result = await app.documents.ingest(namespace, request.body.documents, requestSignal(request, reply), { namespaces: request.namespaces });
      return { object: 'ingest.result' as const, namespace, ...result };
    },
  );

  app.get<{ Params: WildcardParams; Querystring: DocumentQuery }>(
    '/v1/documents/*',
    { schema: { params: WildcardParams, querystring: DocumentQuery, response: { 200: DocumentResponse } } },
    async (request, reply) => {
      const namespace = request.query.namespace ?? DEFAULT_NAMESPACE;
      const id = request.params['*'];
      const document = await app.documents.get(namespace, id, requestSignal(request, reply), { namespaces: request.namespaces });
      if (document === undefined) {
        throw createError('RAGWAY_ERR_NOT_FOUND', `document "${id}" not found in namespace "${namespace}"`, { param: 'id' });
      }
      return { object: 'document' as const, ...document };
    },
  );

  app.delete<{ Params: WildcardParams; Querystring: DocumentQuery }>(
    '/v1/documents/*',
    { schema: { params: WildcardParams, querystring: DocumentQuery, response: { 200: DeleteResponse } } },
    async (request, reply) => {
      const namespace = request.query.namespace ?? DEFAULT_NAMESPACE;
      const id = request.params['*'];
      const chunksDeleted = await app.documents.delete(namespace, id, requestSignal(request, reply), { namespaces: request.namespaces });
      if (chunksDeleted === 0) {
        throw createError('RAGWAY_ERR_NOT_FOUND', `document "${id}" not found in namespace "${namespace}"`, { param: 'id' });
      }
      return { object: 'document.deleted' as const, id, namespace, deleted: true, chunks_deleted: chunksDeleted };
    },
  );
}
