// Answer generation: the extractive generator (always there, needs no upstream) and one
// failover group of OpenAI-compatible upstreams per configured LLM model, behind a registry
// the routes look models up in. Upstream connection pools close with the app.
import fp from 'fastify-plugin';
import { loadUpstreams } from '../config.js';
import { ExtractiveGenerator } from '../providers/extractive.js';
import { FailoverGenerator } from '../providers/failover.js';
import { UpstreamGenerator } from '../providers/upstream-generator.js';
import type { Generator } from '../providers/provider.js';
import { GeneratorRegistry } from '../providers/registry.js';

export interface GeneratorPluginOptions {
  /** Extra generators (tests); they come after the configured ones. */
  generators?: Generator[];
}

export default fp(
  async (app, options: GeneratorPluginOptions) => {
    const { config } = app;
    const countTokens = (text: string): number => app.embedder.backend.encode(text).tokenCount;
    const upstreams = loadUpstreams(config).map((spec) => {
      const members = spec.urls.map(
        (url) =>
          new UpstreamGenerator({
            id: spec.id,
            upstreamModel: spec.model,
            url,
            ...(spec.apiKey !== undefined ? { apiKey: spec.apiKey } : {}),
            connectTimeoutMs: config.llmConnectTimeoutMs,
            firstTokenTimeoutMs: config.llmFirstTokenTimeoutMs,
            idleTimeoutMs: config.llmIdleTimeoutMs,
            connections: config.llmConnections,
          }),
      );
      app.addHook('onClose', async () => {
        await Promise.all(members.map((member) => member.close()));
      });
      return members.length === 1 ? (members[0] as UpstreamGenerator) : new FailoverGenerator(members);
    });
    const extractive = new ExtractiveGenerator({
      embed: async (texts, signal) => (await app.embedder.embed(texts, { signal })).vectors,
      countTokens,
    });
    const registry = new GeneratorRegistry([...upstreams, extractive, ...(options.generators ?? [])], config.defaultModel);
    app.decorate('generators', registry);
    app.log.info({ models: registry.ids(), default: registry.defaultId }, 'generation models ready');
  },
  { name: 'ragway-generator', dependencies: ['ragway-embedder'] },
);
