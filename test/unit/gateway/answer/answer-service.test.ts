// The answer service and the search pipeline without HTTP: two real hnswlib shard stores
// behind in-process shard clients, the real default model, the extractive generator. What the
// routes serve is these event streams through an encoder, so a cached replay must yield what
// the live answer yielded, frame for frame, through both encoders.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EmbeddingBackend, EncodedInput } from '../../../../embedder/backend.js';
import type { OnnxEmbeddingBackend } from '../../../../embedder/backends/onnx.js';
import { EmbeddingBatcher } from '../../../../embedder/batcher.js';
import { InProcessShardClient } from '../../../../retriever/in-process-shard-client.js';
import { Scatter } from '../../../../retriever/scatter.js';
import { IndexStore } from '../../../../shards/index-store.js';
import { isRagwayError, createError } from '../../../../core/errors.js';
import { AnswerService, type AnswerInput } from '../../../../gateway/answer/answer-service.js';
import { NativeAnswerEncoder, OpenAiChunkEncoder, type AnswerEncoder, type SseFrame } from '../../../../gateway/answer/encoders.js';
import type { AnswerEvent } from '../../../../gateway/answer/events.js';
import { createCaches, type Caches } from '../../../../gateway/cache/cache-set.js';
import { EpochTracker } from '../../../../gateway/cache/epoch-tracker.js';
import { SemanticCache } from '../../../../gateway/cache/semantic-cache.js';
import { DocumentService } from '../../../../gateway/documents.js';
import { DEFAULT_SYSTEM_TEMPLATE } from '../../../../gateway/generation/prompt.js';
import { ExtractiveGenerator } from '../../../../gateway/providers/extractive.js';
import type { GenerationEvent, GenerationRequest, Generator } from '../../../../gateway/providers/provider.js';
import { GeneratorRegistry } from '../../../../gateway/providers/registry.js';
import { SearchPipeline } from '../../../../gateway/search-pipeline.js';
import { loadDefaultBackend, tempDir } from '../../../helpers/cluster.js';

const DOCS = [
  { id: 'lru', text: 'Entries in lru-cache expire after the ttl option, given in milliseconds. Set ttl when you create the cache to make entries expire.' },
  { id: 'trains', text: 'The night train leaves the central station at eleven and reaches the coast by morning.' },
  { id: 'pasta', text: 'Cook the pasta in salted boiling water for nine minutes, then drain it and add the sauce.' },
];
const QUESTION = 'how do I make cache entries expire with a ttl';

/** The real backend, counting the texts it is asked to embed. */
class CountingBackend implements EmbeddingBackend {
  readonly embedded: string[] = [];
  readonly #inner: EmbeddingBackend;
  constructor(inner: EmbeddingBackend) {
    this.#inner = inner;
  }
  get modelId(): string {
    return this.#inner.modelId;
  }
  get dimensions(): number {
    return this.#inner.dimensions;
  }
  get maxInputTokens(): number {
    return this.#inner.maxInputTokens;
  }
  encode(text: string): EncodedInput {
    return this.#inner.encode(text);
  }
  async embed(inputs: readonly EncodedInput[], signal?: AbortSignal): Promise<Float32Array[]> {
    this.embedded.push(...inputs.map((input) => input.text));
    return this.#inner.embed(inputs, signal);
  }
  async close(): Promise<void> {}
}

/** A generator that streams two deltas and then breaks, as an upstream dropping mid-answer would. */
class BreakingGenerator implements Generator {
  readonly id = 'breaks-mid-answer';
  readonly ownedBy = 'test';
  async *stream(_request: GenerationRequest, _signal: AbortSignal): AsyncGenerator<GenerationEvent> {
    yield { type: 'delta', text: 'Half ' };
    yield { type: 'delta', text: 'an answer' };
    throw createError('RAGWAY_ERR_UPSTREAM_UNAVAILABLE', 'upstream broke the stream after 2 deltas');
  }
}

async function collect(stream: AsyncIterable<AnswerEvent>): Promise<AnswerEvent[]> {
  const events: AnswerEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

/** Frames with what legitimately differs between two runs (timings, the cache status) taken out. */
function encode(events: readonly AnswerEvent[], encoder: AnswerEncoder): SseFrame[] {
  const comparable = events.map((event) =>
    event.type === 'done'
      ? { ...event, timings: { embed_ms: 0, search_ms: 0, retrieval_ms: 0, first_token_ms: 0, time_to_first_token_ms: 0, generation_ms: 0, total_ms: 0 } }
      : event.type === 'sources'
        ? { ...event, cache: { status: 'miss' as const } }
        : event,
  );
  return [...comparable.flatMap((event) => encoder.frames(event)), ...encoder.end()];
}

describe('AnswerService over in-process shards with the real model', () => {
  let model: OnnxEmbeddingBackend;
  let backend: CountingBackend;
  let batcher: EmbeddingBatcher;
  let generatorBatcher: EmbeddingBatcher;
  let dirs: Awaited<ReturnType<typeof tempDir>>[];
  let stores: IndexStore[];
  let scatter: Scatter;

  const newCaches = (answersBytes: number, embeddingsBytes = 0): Caches =>
    createCaches(
      { embeddingsBytes, embeddingsTtlMs: 0, retrievalBytes: 1 << 20, retrievalTtlMs: 0, answersBytes, answersTtlMs: 0 },
      new EpochTracker(scatter.shardCount, {}),
      {},
    );

  const newService = (caches: Caches, options: { semantic?: boolean; generators?: Generator[] } = {}): { service: AnswerService; pipeline: SearchPipeline } => {
    const pipeline = new SearchPipeline(batcher, scatter, caches);
    const extractive = new ExtractiveGenerator({
      embed: async (texts, signal) => (await generatorBatcher.embed(texts, { signal })).vectors,
      countTokens: (text) => model.encode(text).tokenCount,
    });
    const service = new AnswerService(pipeline, new GeneratorRegistry([extractive, ...(options.generators ?? [])]), {
      systemTemplate: DEFAULT_SYSTEM_TEMPLATE,
      contextBudgetTokens: 2_000,
      countTokens: (text) => model.encode(text).tokenCount,
      caches,
      ...(options.semantic === true ? { semantic: new SemanticCache<string>({ dim: model.dimensions, threshold: 0.92, capacity: 100 }) } : {}),
    });
    return { service, pipeline };
  };

  const input = (overrides: Partial<AnswerInput> = {}): AnswerInput => ({
    question: QUESTION,
    history: [],
    rag: { enabled: true, k: 3 },
    ...overrides,
  });

  before(async () => {
    model = await loadDefaultBackend();
    backend = new CountingBackend(model);
    batcher = new EmbeddingBatcher(backend, { maxWaitMs: 0 });
    generatorBatcher = new EmbeddingBatcher(model, { maxWaitMs: 0 });
    dirs = await Promise.all([tempDir('answer-0'), tempDir('answer-1')]);
    stores = dirs.map((dir) => IndexStore.open({ dataDir: dir.path, dim: model.dimensions, space: 'cosine', autoSaveMs: 0 }));
    scatter = new Scatter(stores.map((store, i) => new InProcessShardClient(store, { label: `shard-${i}` })));
    const documents = new DocumentService(batcher, scatter, { sizeTokens: 64, overlapTokens: 0 });
    await documents.ingest('default', DOCS);
  });

  after(async () => {
    batcher.close();
    generatorBatcher.close();
    for (const store of stores) store.close();
    await model.close();
    await Promise.all(dirs.map((dir) => dir.remove()));
  });

  it('yields sources, deltas, then one done whose citations name the sources', async () => {
    const { service } = newService(newCaches(0));
    const events = await collect(service.answer(input(), new AbortController().signal));
    assert.equal(events[0]?.type, 'sources');
    assert.equal(events.at(-1)?.type, 'done');
    assert.equal(events.filter((e) => e.type === 'done' || e.type === 'error').length, 1);
    const sources = events[0]?.type === 'sources' ? events[0] : assert.fail('no sources');
    assert.equal(sources.model, 'ragway-extractive');
    assert.equal(sources.cache.status, 'miss');
    assert.equal(sources.sources[0]?.document_id, 'lru');
    assert.deepEqual(sources.coverage, { shards_total: 2, shards_ok: 2, partial: false });
    const done = events.at(-1)?.type === 'done' ? events.at(-1) : undefined;
    assert.ok(done?.type === 'done');
    const deltas = events.flatMap((e) => (e.type === 'delta' ? [e.text] : []));
    assert.ok(deltas.length > 1);
    assert.equal(done.text, deltas.join(''));
    assert.ok(done.citations.length > 0);
    for (const citation of done.citations) {
      const source = sources.sources[citation.index - 1];
      assert.deepEqual(citation, { index: citation.index, id: source?.id, document_id: source?.document_id });
    }
  });

  it('replays a cached answer as the same event sequence, through both encoders', async () => {
    const { service } = newService(newCaches(1 << 20));
    const live = await collect(service.answer(input(), new AbortController().signal));
    const cached = await collect(service.answer(input(), new AbortController().signal));
    assert.equal(live[0]?.type === 'sources' && live[0].cache.status, 'miss');
    assert.equal(cached[0]?.type === 'sources' && cached[0].cache.status, 'hit');
    const openAi = () => new OpenAiChunkEncoder({ id: 'chatcmpl-test', created: 1, includeUsage: true });
    assert.deepEqual(encode(cached, new NativeAnswerEncoder()), encode(live, new NativeAnswerEncoder()));
    assert.deepEqual(encode(cached, openAi()), encode(live, openAi()));
    // The comparison is not vacuous: the frames carry the answer.
    const frames = encode(live, openAi());
    assert.equal(frames.at(-1)?.data, '[DONE]');
    assert.ok(frames.some((frame) => frame.data.includes('"content":"') && !frame.data.includes('"content":""')));
    const last = live.at(-1);
    assert.ok(last?.type === 'done');
    const body = (events: AnswerEvent[]) => ({ ...(new NativeAnswerEncoder().body(events[0] as never, events.at(-1) as never) as object), timings: undefined });
    assert.deepEqual(body(cached), body(live));
  });

  it('announces one cache status: the second of two concurrent identical answers coalesces', async () => {
    const { service } = newService(newCaches(1 << 20));
    const [a, b] = await Promise.all([
      collect(service.answer(input({ question: `${QUESTION} please` }), new AbortController().signal)),
      collect(service.answer(input({ question: `${QUESTION} please` }), new AbortController().signal)),
    ]);
    const statuses = [a, b].map((events) => (events[0]?.type === 'sources' ? events[0].cache.status : undefined)).sort();
    assert.deepEqual(statuses, ['coalesced', 'miss']);
    assert.deepEqual(
      a.filter((e) => e.type === 'delta'),
      b.filter((e) => e.type === 'delta'),
    );
  });

  it('throws before sources (the route can still answer with a status) and ends with an error event after', async () => {
    const { service } = newService(newCaches(0), { generators: [new BreakingGenerator()] });
    await assert.rejects(
      service.answer(input({ model: 'no-such-model' }), new AbortController().signal).next(),
      (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_MODEL_NOT_FOUND',
    );
    await assert.rejects(
      service.answer(input({ rag: { enabled: true, k: 3, filter: { lang: { $regex: 'x' } } } }), new AbortController().signal).next(),
      (err: unknown) => isRagwayError(err) && err.statusCode === 400,
    );
    const events = await collect(service.answer(input({ model: 'breaks-mid-answer' }), new AbortController().signal));
    assert.deepEqual(
      events.map((e) => e.type),
      ['sources', 'delta', 'delta', 'error'],
    );
    const last = events.at(-1);
    assert.ok(last?.type === 'error');
    assert.equal(last.error.code, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE');
  });

  it('embeds the question once on the semantic path', async () => {
    const { service } = newService(newCaches(1 << 20), { semantic: true });
    const question = 'what option makes lru-cache entries expire';
    const before = backend.embedded.length;
    const events = await collect(service.answer(input({ question }), new AbortController().signal));
    assert.equal(events.at(-1)?.type, 'done');
    assert.equal(backend.embedded.slice(before).filter((text) => text === question || text === question.toLowerCase()).length, 1);
  });
});

describe('SearchPipeline over in-process shards with the real model', () => {
  let model: OnnxEmbeddingBackend;
  let batcher: EmbeddingBatcher;
  let dirs: Awaited<ReturnType<typeof tempDir>>[];
  let stores: IndexStore[];
  let scatter: Scatter;
  let caches: Caches;
  let documents: DocumentService;

  before(async () => {
    model = await loadDefaultBackend();
    batcher = new EmbeddingBatcher(model, { maxWaitMs: 0 });
    dirs = await Promise.all([tempDir('pipeline-0'), tempDir('pipeline-1')]);
    stores = dirs.map((dir) => IndexStore.open({ dataDir: dir.path, dim: model.dimensions, space: 'cosine', autoSaveMs: 0 }));
    scatter = new Scatter(stores.map((store, i) => new InProcessShardClient(store, { label: `shard-${i}` })));
    const epochs = new EpochTracker(scatter.shardCount, {});
    caches = createCaches({ embeddingsBytes: 1 << 20, embeddingsTtlMs: 0, retrievalBytes: 1 << 20, retrievalTtlMs: 0, answersBytes: 0, answersTtlMs: 0 }, epochs, {});
    documents = new DocumentService(batcher, scatter, { sizeTokens: 64, overlapTokens: 0, onWrite: (written) => epochs.observe(written) });
    await documents.ingest('default', DOCS);
  });

  after(async () => {
    batcher.close();
    for (const store of stores) store.close();
    await model.close();
    await Promise.all(dirs.map((dir) => dir.remove()));
  });

  it('answers a repeat from the cache until a write changes the epochs', async () => {
    const pipeline = new SearchPipeline(batcher, scatter, caches);
    const search = () => pipeline.search({ query: 'when does the night train leave', k: 2, includeText: true, includeMetadata: false });
    const first = await search();
    assert.equal(first.cache, 'miss');
    assert.equal(first.results[0]?.document_id, 'trains');
    const second = await search();
    assert.equal(second.cache, 'hit');
    assert.deepEqual(second.results, first.results);
    await documents.ingest('default', [{ id: 'trains-2', text: 'A second night train leaves at midnight for the mountains.' }]);
    const third = await search();
    assert.equal(third.cache, 'miss');
  });

  it('refuses a bad filter with 400 before any embedding work', async () => {
    const pipeline = new SearchPipeline(batcher, scatter, caches);
    await assert.rejects(
      pipeline.search({ query: 'pasta', k: 2, includeText: false, includeMetadata: false, filter: { lang: { $where: 'x' } } }),
      (err: unknown) => isRagwayError(err) && err.statusCode === 400,
    );
  });
});
