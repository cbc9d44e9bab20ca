// OpenAPI 3 generated from the routes' own schemas (the same TypeBox schemas that validate
// requests and serialise responses, so the document cannot drift from what is enforced),
// served as JSON at /docs/json and as a browsable page at /docs. Registered before the routes:
// @fastify/swagger collects each route as it is added.
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../core/package-paths.js';

export const DOCS_PREFIX = '/docs';

export default fp(
  async (app) => {
    const { version } = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'ragway',
          version,
          description:
            'RAG inference serving gateway: search, documents, grounded answers (REST + SSE) and the OpenAI-compatible API. ' +
            'Every error uses one envelope: {"error":{"message","type","code","param"}}.',
        },
        components: {
          securitySchemes: {
            bearer: { type: 'http', scheme: 'bearer', description: 'A ragway API key (`ragway keys create`).' },
            apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' },
          },
        },
      },
    });
    await app.register(swaggerUi, { routePrefix: DOCS_PREFIX, uiConfig: { docExpansion: 'list', deepLinking: true } });
  },
  { name: 'api-docs' },
);
