// The services the routes call: search (cache → embed → scatter → merge), documents
// (chunk → embed → owning shard) and answers (search → prompt → generator → citations).
import { readFileSync } from 'node:fs';
import fp from 'fastify-plugin';
import { AnswerService } from '../answer/answer-service.js';
import { DocumentService } from '../documents.js';
import { DEFAULT_SYSTEM_TEMPLATE } from '../generation/prompt.js';
import { SearchPipeline } from '../search-pipeline.js';
import { SemanticCache } from '../cache/semantic-cache.js';

export default fp(
  async (app) => {
    const { config } = app;
    const pipeline = new SearchPipeline(app.embedder, app.shardSearch, app.caches, app.reranker, (stage, seconds) =>
      app.metrics.stageDuration.observe({ stage }, seconds),
    );
    app.decorate('pipeline', pipeline);
    app.decorate(
      'documents',
      new DocumentService(app.embedder, app.scatter, {
        sizeTokens: config.chunkSizeTokens,
        overlapTokens: config.chunkOverlapTokens,
        onWrite: (epochs) => app.caches.epochs.observe(epochs),
      }),
    );
    const systemTemplate = config.systemTemplateFile === '' ? DEFAULT_SYSTEM_TEMPLATE : readFileSync(config.systemTemplateFile, 'utf8');
    app.decorate(
      'answers',
      new AnswerService(pipeline, app.generators, {
        systemTemplate,
        contextBudgetTokens: config.contextBudgetTokens,
        countTokens: (text) => app.embedder.backend.encode(text).tokenCount,
        caches: app.caches,
        cachePolicy: config.cacheAnswers,
        onGenerated: (ttft, generation) => {
          app.metrics.timeToFirstToken.observe(ttft);
          app.metrics.stageDuration.observe({ stage: 'generate' }, generation);
        },
        ...(config.semanticCache
          ? {
              semantic: new SemanticCache<string>({
                dim: app.embedder.backend.dimensions,
                threshold: config.semanticCacheThreshold,
                capacity: config.semanticCacheEntries,
              }),
              onSemanticLookup: (similarity: number | undefined, outcome: string) =>
                app.metrics.observeSemanticLookup(similarity, outcome),
            }
          : {}),
      }),
    );
  },
  { name: 'ragway-services', dependencies: ['ragway-cache', 'ragway-generator', 'ragway-reranker'] },
);
