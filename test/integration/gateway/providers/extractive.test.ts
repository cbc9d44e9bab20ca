// The extractive generator with the real default model (glove-sif-100d) behind the real
// micro-batcher, as the gateway wires it when no LLM upstream is configured.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EmbeddingBatcher } from '../../../../embedder/batcher.js';
import type { OnnxEmbeddingBackend } from '../../../../embedder/backends/onnx.js';
import { checkCitations } from '../../../../gateway/generation/prompt.js';
import {
  ExtractiveGenerator,
  NO_ANSWER_TEXT,
  sentenceCandidates,
} from '../../../../gateway/providers/extractive.js';
import type { ExtractiveGeneratorOptions } from '../../../../gateway/providers/extractive.js';
import type { GenerationEvent, GenerationRequest, Source } from '../../../../gateway/providers/provider.js';
import { loadDefaultBackend } from '../../../helpers/cluster.js';
import { hasCode } from '../../../helpers/errors.js';

const CACHE = [
  '# Cache TTLs',
  '',
  'Cached entries live for five minutes by default. The time to live of each entry is set with the `ttl` option, in milliseconds. Expired entries are removed the next time they are read.',
  '',
  '```js',
  'const cache = new Cache({ ttl: 300000 });',
  '```',
].join('\n');
const TRAINS =
  'Trains leave the central station every fifteen minutes. The night train to Vienna has sleeping cars and a dining car. Tickets can be bought on board or at the station.';
const PASTA =
  'Boil the pasta in plenty of salted water. Fresh pasta cooks in about three minutes, dried pasta takes longer. Drain it and toss it with the sauce.';
// The cache fact again, reworded, as a second document (a vendored copy, an overlapping chunk).
const CACHE_AGAIN = 'By default, cached entries live for five minutes. Memory is reclaimed by the garbage collector.';

function sources(...texts: [string, string][]): Source[] {
  return texts.map(([documentId, text], i) => ({
    index: i + 1,
    id: `${documentId}#0`,
    document_id: documentId,
    text,
    score: 1 - i / 10,
    metadata: {},
  }));
}

function request(question: string, retrieved: Source[], maxTokens?: number): GenerationRequest {
  return {
    model: 'ragway-extractive',
    messages: [{ role: 'user', content: question }],
    question,
    sources: retrieved,
    ...(maxTokens === undefined ? {} : { maxTokens }),
  };
}

interface Collected {
  events: GenerationEvent[];
  deltas: string[];
  text: string;
  done: Extract<GenerationEvent, { type: 'done' }>;
}

async function collect(stream: AsyncIterable<GenerationEvent>): Promise<Collected> {
  const events: GenerationEvent[] = [];
  for await (const event of stream) events.push(event);
  const deltas = events.flatMap((e) => (e.type === 'delta' ? [e.text] : []));
  const dones = events.filter((e): e is Extract<GenerationEvent, { type: 'done' }> => e.type === 'done');
  assert.equal(dones.length, 1, 'exactly one done');
  assert.equal(events.at(-1)?.type, 'done', 'done comes last');
  return { events, deltas, text: deltas.join(''), done: dones[0] as Collected['done'] };
}

describe('ExtractiveGenerator with glove-sif-100d', () => {
  let backend: OnnxEmbeddingBackend;
  let batcher: EmbeddingBatcher;
  let options: ExtractiveGeneratorOptions;
  let embedCalls = 0;

  before(async () => {
    backend = await loadDefaultBackend();
    batcher = new EmbeddingBatcher(backend);
    options = {
      embed: async (texts, signal) => {
        embedCalls += 1;
        return (await batcher.embed(texts, { signal })).vectors;
      },
      countTokens: (text) => backend.encode(text).tokenCount,
    };
  });

  after(async () => {
    batcher?.close();
    await backend?.close();
  });

  it('answers from the relevant source only, citing it, streamed as several deltas', async () => {
    const generator = new ExtractiveGenerator(options);
    assert.equal(generator.id, 'ragway-extractive');
    assert.equal(generator.ownedBy, 'ragway');
    const retrieved = sources(['cache-guide', CACHE], ['trains', TRAINS], ['pasta', PASTA]);
    const { deltas, text, done } = await collect(
      generator.stream(request('how long do cached entries live', retrieved), new AbortController().signal),
    );
    assert.match(text, /^Cached entries live for five minutes by default \[1\]\./);
    assert.deepEqual(checkCitations(text, retrieved.length), { cited: [1], invalid: [] });
    // Every sentence is copied from source 1, with its citation.
    const cacheSentences = sentenceCandidates(CACHE);
    for (const sentence of text.split(/(?<=\]\.)\s+/)) {
      const plain = sentence.replace(/ \[1\]\.$/, '.');
      assert.ok(cacheSentences.includes(plain), `"${plain}" is a sentence of the cache source`);
    }
    assert.doesNotMatch(text, /pasta|train|ttl: 300000/i);
    assert.ok(deltas.length > 1, 'more than one delta');
    assert.ok(deltas.every((d) => d.trim().split(/\s+/).length <= 3));
    assert.equal(done.finishReason, 'stop');
    const usage = done.usage;
    assert.ok(usage !== undefined);
    assert.equal(usage.completion_tokens, options.countTokens(text));
    assert.ok(usage.prompt_tokens > options.countTokens('how long do cached entries live'));
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  });

  it('stops at maxTokens with finish_reason length, on a word boundary', async () => {
    const generator = new ExtractiveGenerator(options);
    const retrieved = sources(['cache-guide', CACHE], ['trains', TRAINS]);
    const full = await collect(generator.stream(request('how long do cached entries live', retrieved), new AbortController().signal));
    const cut = await collect(generator.stream(request('how long do cached entries live', retrieved, 4), new AbortController().signal));
    assert.equal(cut.done.finishReason, 'length');
    assert.ok(cut.text.length > 0 && full.text.startsWith(cut.text));
    assert.equal(full.text[cut.text.length], ' ', 'cut between words');
    assert.ok(options.countTokens(cut.text) <= 4);
    assert.equal(cut.done.usage?.completion_tokens, options.countTokens(cut.text));
    // Exactly the answer's length is not a cut.
    const exact = await collect(
      generator.stream(request('how long do cached entries live', retrieved, options.countTokens(full.text)), new AbortController().signal),
    );
    assert.equal(exact.done.finishReason, 'stop');
    assert.equal(exact.text, full.text);
  });

  it('ends the answer before the first stop sequence', async () => {
    const generator = new ExtractiveGenerator(options);
    const retrieved = sources(['cache-guide', CACHE]);
    const { text, done } = await collect(
      generator.stream({ ...request('how long do cached entries live', retrieved), stop: ['nothing like this', 'minutes'] }, new AbortController().signal),
    );
    assert.equal(text, 'Cached entries live for five ');
    assert.equal(done.finishReason, 'stop');
  });

  it('says honestly that it found nothing when no sentence is relevant, or there are no sources', async () => {
    const generator = new ExtractiveGenerator(options);
    const unrelated = await collect(
      generator.stream(
        request('what is the capital of Australia?', sources(['trains', TRAINS], ['pasta', PASTA])),
        new AbortController().signal,
      ),
    );
    assert.equal(unrelated.text, NO_ANSWER_TEXT);
    assert.equal(unrelated.done.finishReason, 'stop');
    assert.deepEqual(checkCitations(unrelated.text, 2), { cited: [], invalid: [] });

    const before = embedCalls;
    const empty = await collect(generator.stream(request('how long do cached entries live', []), new AbortController().signal));
    assert.equal(empty.text, NO_ANSWER_TEXT);
    assert.ok(empty.deltas.length > 1, 'the fallback streams like any answer');
    assert.equal(embedCalls, before, 'nothing to embed without sources');
    assert.equal(empty.done.usage?.completion_tokens, options.countTokens(NO_ANSWER_TEXT));
  });

  it('shows a sentence repeated across sources once, citing both', async () => {
    const generator = new ExtractiveGenerator(options);
    const retrieved = sources(['cache-guide', CACHE], ['cache-copy', CACHE_AGAIN], ['pasta', PASTA]);
    const { text } = await collect(generator.stream(request('how long do cached entries live', retrieved), new AbortController().signal));
    assert.equal(text.match(/five minutes/g)?.length, 1, text);
    assert.match(text, /five minutes by default \[1\]\[2\]\./);
    assert.deepEqual(checkCitations(text, 3).invalid, []);
  });

  it('lets other work run between deltas', async () => {
    const generator = new ExtractiveGenerator({ ...options, wordsPerDelta: 1 });
    const order: string[] = [];
    for await (const event of generator.stream(request('how long do cached entries live', sources(['cache-guide', CACHE])), new AbortController().signal)) {
      order.push(event.type);
      setImmediate(() => order.push('tick'));
    }
    const deltas = order.filter((entry) => entry === 'delta').length;
    assert.ok(deltas > 3);
    assert.ok(!order.join(' ').includes('delta delta'), 'an immediate ran between every two deltas');
  });

  it('rejects promptly when aborted mid-stream', async () => {
    const generator = new ExtractiveGenerator({ ...options, wordsPerDelta: 1 });
    const controller = new AbortController();
    const retrieved = sources(['cache-guide', CACHE]);
    const deltas: string[] = [];
    await assert.rejects(async () => {
      for await (const event of generator.stream(request('how long do cached entries live', retrieved), controller.signal)) {
        if (event.type === 'delta') deltas.push(event.text);
        if (deltas.length === 2) controller.abort();
      }
    }, hasCode('RAGWAY_ERR_CLIENT_CLOSED'));
    assert.equal(deltas.length, 2, 'no delta after the abort');
  });

  it('rejects promptly when aborted while embedding, and at once when already aborted', async () => {
    // An embedder that never answers: the generator must not wait for it once aborted.
    const generator = new ExtractiveGenerator({ ...options, embed: () => new Promise<Float32Array[]>(() => undefined) });
    const controller = new AbortController();
    const started = performance.now();
    setTimeout(() => controller.abort(new DOMException('the deadline passed', 'TimeoutError')), 20);
    await assert.rejects(
      collect(generator.stream(request('how long do cached entries live', sources(['cache-guide', CACHE])), controller.signal)),
      hasCode('RAGWAY_ERR_DEADLINE_EXCEEDED'),
    );
    assert.ok(performance.now() - started < 1_000);

    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(
      collect(new ExtractiveGenerator(options).stream(request('q', []), aborted.signal)),
      hasCode('RAGWAY_ERR_CLIENT_CLOSED'),
    );
  });

  it('answers a README-style question from flattened Markdown chunks, skipping code and headings', async () => {
    const generator = new ExtractiveGenerator(options);
    // As ingestion stores them: chunk units joined by spaces, so headings and code run into prose.
    const readme =
      '# tiny-cache A small in-memory cache for Node.js. ## Installation npm install tiny-cache ## Usage ' +
      "const cache = new TinyCache({ ttl: 60_000 }); cache.set('key', 'value'); " +
      '## Expiry Set the `ttl` option to make cached entries expire after that many milliseconds. ' +
      'Entries without a ttl never expire. | option | default | | ttl | none |';
    const retrieved = sources(['tiny-cache/README.md', readme], ['trains', TRAINS]);
    const { text } = await collect(
      generator.stream(request('how do I make cached entries expire?', retrieved), new AbortController().signal),
    );
    assert.match(text, /Set the `ttl` option to make cached entries expire after that many milliseconds \[1\]\./);
    assert.doesNotMatch(text, /##|npm install|new TinyCache|\|/);
  });
});

describe('sentenceCandidates', () => {
  const cases: [string, string, string[]][] = [
    ['plain sentences', 'Alpha beta gamma delta. Second sentence is here!', ['Alpha beta gamma delta.', 'Second sentence is here!']],
    ['short fragments are dropped', 'Yes. See above. This one is long enough.', ['This one is long enough.']],
    ['a heading alone is dropped', '# Getting Started With Caching\n\nIt starts with a cache object.', ['It starts with a cache object.']],
    ['a heading run into a sentence', '## Time To Live Entries expire after ttl ms.', ['Entries expire after ttl ms.']],
    ['fenced code is dropped', 'Install it first, then run:\n\n```sh\nThis line is inside the fence.\n```\n\nThat is all there is.', ['That is all there is.']],
    ['flattened code is dropped', "const a = { b: 1 }; a.run(). Call it once per process.", ['Call it once per process.']],
    ['shell lines are dropped', 'npm install the-package --save.', []],
    ['table rows are dropped', '| name | value | is here. |', []],
    ['links keep their text', 'Read [the guide](https://example.com/guide) before you start.', ['Read the guide before you start.']],
    ['footnote numbers are removed', 'The cache is fast [3] and small.', ['The cache is fast and small.']],
    ['list items that are sentences', 'Options:\n- Set a max to bound memory use.\n- ttl', ['Set a max to bound memory use.']],
    ['flattened list items', 'It has two options: - The max bounds the item count. - The ttl bounds the age.', ['The max bounds the item count.', 'The ttl bounds the age.']],
    ['inline code in prose is fine', 'Call `cache.get(key)` to read an entry.', ['Call `cache.get(key)` to read an entry.']],
    ['html is dropped', '<p align="center">Logo goes here.</p> A real sentence follows here.', ['A real sentence follows here.']],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => assert.deepEqual(sentenceCandidates(input), expected));
  }
});
