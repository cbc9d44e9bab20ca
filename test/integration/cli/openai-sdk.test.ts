// The official `openai` SDK (v6) against `ragway start` with no LLM upstream: what a user
// pointing an existing app at ragway sees. Nothing here is ragway-specific client code.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { tempDir } from '../../helpers/cluster.js';
import { startRagway, stop, type Started } from '../../helpers/ragway-process.js';

describe('official openai SDK against ragway start', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let running: Started;
  let client: OpenAI;

  before(async () => {
    dir = await tempDir('sdk');
    running = await startRagway(dir.path);
    client = new OpenAI({ baseURL: `${running.url}/v1`, apiKey: 'not-needed-locally', maxRetries: 0 });
  });
  after(async () => {
    if (running) await stop(running.child);
    await dir?.remove();
  });

  it('lists the generation and embedding models', async () => {
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.ok(ids.includes('ragway-extractive'), ids.join(', '));
    assert.ok(ids.includes('glove-sif-100d'), ids.join(', '));
    const one = await client.models.retrieve('ragway-extractive');
    assert.equal(one.owned_by, 'ragway');
  });

  it('creates embeddings with the SDK defaults (base64) and with float, getting the same vectors', async () => {
    const input = ['how do I set a TTL on cache entries', 'parse command line flags'];
    const byDefault = await client.embeddings.create({ model: 'glove-sif-100d', input });
    const asFloat = await client.embeddings.create({ model: 'glove-sif-100d', input, encoding_format: 'float' });
    assert.equal(byDefault.data.length, 2);
    assert.deepEqual(byDefault.data.map((d) => d.index), [0, 1]);
    assert.equal(byDefault.data[0]?.embedding.length, 100);
    for (let i = 0; i < 2; i += 1) {
      const a = byDefault.data[i]?.embedding ?? [];
      const b = asFloat.data[i]?.embedding ?? [];
      assert.equal(a.length, b.length);
      a.forEach((value, d) => assert.ok(Math.abs(value - (b[d] as number)) < 1e-6, `dimension ${d} differs`));
    }
    assert.ok(byDefault.usage.prompt_tokens >= 10);
  });

  it('answers a non-streaming chat completion that cites the sample corpus', async () => {
    const completion = await client.chat.completions.create({
      model: 'ragway-extractive',
      messages: [{ role: 'user', content: 'How do I set a TTL on cache entries?' }],
    });
    const choice = completion.choices[0];
    assert.ok(choice);
    assert.equal(choice.finish_reason, 'stop');
    assert.match(choice.message.content ?? '', /\[\d+\]/, 'the answer carries citations');
    const rag = (completion as unknown as { rag: { sources: { document_id: string }[]; citations: { document_id: string }[] } }).rag;
    assert.ok(rag.sources.some((source) => source.document_id.startsWith('lru-cache/')));
    assert.ok(rag.citations.length > 0);
    assert.ok(completion.usage && completion.usage.completion_tokens > 0);
  });

  it('streams a chat completion chunk by chunk', async () => {
    const stream = await client.chat.completions.create({
      model: 'ragway-extractive',
      messages: [{ role: 'user', content: 'How do I set a TTL on cache entries?' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = '';
    let deltas = 0;
    const finishReasons: string[] = [];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        if (choice.delta.content) {
          content += choice.delta.content;
          deltas += 1;
        }
        if (choice.finish_reason) finishReasons.push(choice.finish_reason);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(deltas > 3, `the answer arrived in ${deltas} deltas`);
    assert.match(content, /\[\d+\]/);
    assert.deepEqual(finishReasons, ['stop']);
    assert.ok(usage && usage.total_tokens > 0);
  });
});
