// The semantic cache with the real default model (glove-sif-100d): the mechanics (scopes, LRU
// eviction with label reuse, zero vectors, the histogram), then the labelled pair set that
// decides whether the cache is honest: paraphrases served, near-misses refused.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { OnnxEmbeddingBackend } from '../../../../embedder/backends/onnx.js';
import { DEFAULT_SEMANTIC_THRESHOLD, SemanticCache } from '../../../../gateway/cache/semantic-cache.js';
import { evaluatePairs, type LabelledPair, type PairEvaluation, type PairKind } from '../../../../loadtest/bench/semantic-pairs.js';
import { packageRoot } from '../../../../core/package-paths.js';
import { loadDefaultBackend } from '../../../helpers/cluster.js';

const PAIRS_FILE = join(packageRoot(), 'test', 'fixtures', 'semantic-cache-pairs.json');
const KINDS: readonly PairKind[] = ['paraphrase', 'reorder', 'negation', 'number', 'entity', 'direction', 'unrelated', 'topic-shift'];

/** The issue's target: at most 1 in 100 near-misses may be served another question's answer. */
const MAX_FALSE_HIT_RATE = 0.01;
/**
 * About 17% of the paraphrases are reorderings with exactly the same words (cosine 1.0), which
 * any cache that works at all serves. 30% demands a good share of genuinely reworded
 * questions too, so a guard that refuses everything, a broken normalization or a threshold
 * pushed to 1.0 fails here. Measured at the default threshold: 31 of 82 (38%).
 */
const MIN_HIT_RATE = 0.3;

function loadPairs(): LabelledPair[] {
  return JSON.parse(readFileSync(PAIRS_FILE, 'utf8')) as LabelledPair[];
}

function summary(label: string, result: PairEvaluation): string {
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  return (
    `${label}: hit rate ${pct(result.hitRate)} (${result.hits}/${result.paraphrases} paraphrases), ` +
    `false-hit rate ${pct(result.falseHitRate)} (${result.falseHits}/${result.nearMisses} near-misses)`
  );
}

describe('SemanticCache with glove-sif-100d', () => {
  let backend: OnnxEmbeddingBackend;
  const memo = new Map<string, Float32Array>();

  /** Embeds through the real backend, once per distinct text across the whole file. */
  const embed = async (texts: string[]): Promise<Float32Array[]> => {
    const missing = [...new Set(texts.filter((t) => !memo.has(t)))];
    if (missing.length > 0) {
      const vectors = await backend.embed(missing.map((t) => backend.encode(t)));
      missing.forEach((t, i) => memo.set(t, vectors[i] as Float32Array));
    }
    return texts.map((t) => memo.get(t) as Float32Array);
  };
  const vec = async (text: string): Promise<Float32Array> => (await embed([text]))[0] as Float32Array;

  const newCache = (options: Partial<ConstructorParameters<typeof SemanticCache<string>>[0]> = {}): SemanticCache<string> =>
    new SemanticCache<string>({ dim: backend.dimensions, threshold: DEFAULT_SEMANTIC_THRESHOLD, capacity: 100, ...options });

  before(async () => {
    backend = await loadDefaultBackend();
  });

  after(async () => {
    await backend?.close();
  });

  describe('mechanics', () => {
    it('serves a reworded question and says what it matched', async () => {
      const cache = newCache();
      const stored = 'How do I set a TTL in lru-cache?';
      assert.equal(cache.remember(stored, await vec(stored), 'docs', 'answer-key-1'), true);
      const result = cache.lookup('lru-cache: how do I set a TTL?', await vec('lru-cache: how do I set a TTL?'), 'docs');
      assert.ok('value' in result, JSON.stringify(result));
      assert.equal(result.value, 'answer-key-1');
      assert.equal(result.matchedQuery, stored);
      assert.ok(result.similarity >= DEFAULT_SEMANTIC_THRESHOLD);
      assert.deepEqual(cache.stats(), {
        lookups: 1,
        hits: 1,
        misses: { empty: 0, 'below-threshold': 0, guard: 0 },
        zeroVectors: 0,
        evictions: 0,
        entries: 1,
      });
    });

    it('misses on an empty cache, below the threshold, and on a guarded near-miss', async () => {
      const cache = newCache();
      const empty = cache.lookup('How do I cache responses with a TTL?', await vec('How do I cache responses with a TTL?'), 'docs');
      assert.deepEqual(empty, { miss: 'empty' });

      cache.remember('How do I cache responses with a TTL?', await vec('How do I cache responses with a TTL?'), 'docs', 'k');
      const unrelated = cache.lookup('How do I rotate log files?', await vec('How do I rotate log files?'), 'docs');
      assert.ok('miss' in unrelated && unrelated.miss === 'below-threshold', JSON.stringify(unrelated));
      assert.ok(unrelated.similarity !== undefined && unrelated.similarity < DEFAULT_SEMANTIC_THRESHOLD);

      const negated = cache.lookup('How do I cache responses without a TTL?', await vec('How do I cache responses without a TTL?'), 'docs');
      assert.ok('miss' in negated && negated.miss === 'guard', JSON.stringify(negated));
      // The embedding alone would have served it: that is what the guard is for.
      assert.ok(negated.similarity !== undefined && negated.similarity >= DEFAULT_SEMANTIC_THRESHOLD);
      assert.match(negated.reason ?? '', /^negation:/);
      assert.deepEqual(cache.stats().misses, { empty: 1, 'below-threshold': 1, guard: 1 });
    });

    it('passes over a nearer neighbour the guard rejects to one it accepts', async () => {
      const cache = newCache();
      const query = 'How do I make fetch follow redirects?';
      const negated = 'How do I make fetch not follow redirects?';
      const reworded = 'How can I make fetch follow redirects?';
      cache.remember(negated, await vec(negated), 'docs', 'negated');
      cache.remember(reworded, await vec(reworded), 'docs', 'reworded');
      const q = await vec(query);
      const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, i) => s + x * (b[i] as number), 0);
      assert.ok(dot(q, await vec(negated)) > dot(q, await vec(reworded)), 'the negated question must be the nearest');
      const result = cache.lookup(query, q, 'docs');
      assert.ok('value' in result, JSON.stringify(result));
      assert.equal(result.value, 'reworded');
      assert.equal(result.matchedQuery, reworded);
    });

    it('only matches entries of the same scope', async () => {
      const cache = newCache();
      const question = 'How do I enable CORS in Fastify?';
      cache.remember(question, await vec(question), 'ns=a|k=5', 'a-answer');
      // Enough entries elsewhere that the search runs through hnswlib's filter callback.
      const others = [
        'How do I enable CORS in Fastify?',
        'How do I enable CORS in Fastify for one route?',
        'How do I set a TTL in lru-cache?',
        'How do I parse command line arguments?',
        'How do I validate JSON with ajv?',
        'How do I stream a large file in Express?',
        'Which log levels does pino have?',
        'How do I quantize an ONNX model?',
      ];
      const vectors = await embed(others);
      others.forEach((text, i) => cache.remember(text, vectors[i] as Float32Array, 'ns=b|k=5', `b-${i}`));
      assert.equal(cache.size, 9);

      const inA = cache.lookup('how do i enable cors in fastify', await vec('how do i enable cors in fastify'), 'ns=a|k=5');
      assert.ok('value' in inA && inA.value === 'a-answer', JSON.stringify(inA));
      const inB = cache.lookup(question, await vec(question), 'ns=b|k=5');
      assert.ok('value' in inB && inB.value === 'b-0', JSON.stringify(inB));
      assert.deepEqual(cache.lookup(question, await vec(question), 'ns=c|k=5'), { miss: 'empty' });
      // Same namespace, another k: a different scope, so no match.
      assert.deepEqual(cache.lookup(question, await vec(question), 'ns=a|k=10'), { miss: 'empty' });
    });

    it('replaces the value when the same question is remembered again', async () => {
      const cache = newCache();
      const question = 'How do I pretty print JSON in Node?';
      cache.remember(question, await vec(question), 'docs', 'old');
      cache.remember(question, await vec(question), 'docs', 'new');
      assert.equal(cache.size, 1);
      const result = cache.lookup(question, await vec(question), 'docs');
      assert.ok('value' in result && result.value === 'new');
    });

    it('evicts the least recently used entry at capacity and reuses its label', async () => {
      const cache = newCache({ capacity: 3 });
      const questions = [
        'How do I set a TTL in lru-cache?',
        'How do I parse command line arguments in Node?',
        'How do I rotate log files every day?',
        'How do I quantize an ONNX model to int8?',
      ];
      const vectors = await embed(questions);
      const v = (i: number): Float32Array => vectors[i] as Float32Array;
      for (let i = 0; i < 3; i++) cache.remember(questions[i] as string, v(i), 'docs', `q${i}`);
      // Touch q0 so q1 becomes the least recently used.
      assert.ok('value' in cache.lookup(questions[0] as string, v(0), 'docs'));
      cache.remember(questions[3] as string, v(3), 'docs', 'q3');
      assert.equal(cache.size, 3);
      assert.equal(cache.stats().evictions, 1);
      const evicted = cache.lookup(questions[1] as string, v(1), 'docs');
      assert.ok('miss' in evicted, `q1 should have been evicted: ${JSON.stringify(evicted)}`);
      for (const i of [0, 2, 3]) {
        const result = cache.lookup(questions[i] as string, v(i), 'docs');
        assert.ok('value' in result && result.value === `q${i}`, `q${i}: ${JSON.stringify(result)}`);
      }

      // Churn far past capacity: labels are recycled, hnswlib never grows past 3, and the
      // latest entries are always found.
      const churn = loadPairs().slice(0, 40).map((p) => p.a);
      const churnVectors = await embed(churn);
      churn.forEach((text, i) => {
        cache.remember(text, churnVectors[i] as Float32Array, 'docs', `c${i}`);
        const result = cache.lookup(text, churnVectors[i] as Float32Array, 'docs');
        assert.ok('value' in result && result.value === `c${i}`, `${text}: ${JSON.stringify(result)}`);
      });
      assert.equal(cache.size, 3);
    });

    it('never stores or matches a zero vector', async () => {
      const cache = newCache();
      const unknown = 'qwzxv blorptang frobnicatzz';
      const zero = await vec(unknown);
      assert.ok(zero.every((x) => x === 0), 'all-unknown words embed to zeros');
      assert.equal(cache.remember(unknown, zero, 'docs', 'never'), false);
      assert.equal(cache.size, 0);
      cache.remember('How do I set a TTL?', await vec('How do I set a TTL?'), 'docs', 'k');
      const result = cache.lookup('???', await vec('???'), 'docs');
      assert.ok('miss' in result && result.miss === 'empty', JSON.stringify(result));
      assert.match(result.reason ?? '', /zero vector/);
      assert.equal(cache.stats().zeroVectors, 2);
      assert.equal(cache.histogram().count, 0, 'a zero vector has no nearest similarity to record');
    });

    it('records the nearest similarity of each lookup in the histogram', async () => {
      const cache = newCache({ buckets: [0.5, 0.9, 1] });
      const stored = 'How do I set a TTL in lru-cache?';
      cache.remember(stored, await vec(stored), 'docs', 'k');
      cache.lookup(stored, await vec(stored), 'docs'); // 1.0
      cache.lookup('How do I cache responses without a TTL?', await vec('How do I cache responses without a TTL?'), 'docs');
      cache.lookup('What is Euclidean distance?', await vec('What is Euclidean distance?'), 'docs');
      cache.lookup(stored, await vec(stored), 'other scope'); // empty: nothing to record
      const histogram = cache.histogram();
      assert.deepEqual(histogram.buckets, [0.5, 0.9, 1]);
      assert.equal(histogram.count, 3);
      assert.equal(histogram.counts.length, 4);
      assert.equal(histogram.counts.reduce((a, b) => a + b, 0), 3);
      assert.ok((histogram.counts[2] as number) >= 1, 'the exact repeat lands in (0.9, 1]');
    });

    it('forgets selected entries and clears everything', async () => {
      const cache = newCache();
      const q = ['How do I set a TTL in lru-cache?', 'How do I enable CORS in Fastify?', 'How do I rotate log files?'];
      const vectors = await embed(q);
      q.forEach((text, i) => cache.remember(text, vectors[i] as Float32Array, i === 2 ? 'logs' : 'web', `v${i}`));
      assert.equal(cache.forget((entry) => entry.scope === 'web'), 2);
      assert.equal(cache.size, 1);
      assert.deepEqual(cache.lookup(q[0] as string, vectors[0] as Float32Array, 'web'), { miss: 'empty' });
      assert.equal(cache.forget((entry) => entry.value === 'nothing'), 0);
      cache.clear();
      assert.equal(cache.size, 0);
      assert.deepEqual(cache.lookup(q[2] as string, vectors[2] as Float32Array, 'logs'), { miss: 'empty' });
      cache.remember(q[2] as string, vectors[2] as Float32Array, 'logs', 'again');
      const result = cache.lookup(q[2] as string, vectors[2] as Float32Array, 'logs');
      assert.ok('value' in result && result.value === 'again');
    });

    it('rejects vectors of the wrong width and bad options', () => {
      const cache = newCache();
      assert.throws(() => cache.lookup('x', new Float32Array(3), 'docs'), RangeError);
      assert.throws(() => cache.remember('x', new Float32Array(backend.dimensions).fill(Number.NaN), 'docs', 'v'), RangeError);
      assert.throws(() => newCache({ capacity: 0 }), RangeError);
      assert.throws(() => newCache({ threshold: 1.5 }), RangeError);
      assert.throws(() => newCache({ buckets: [0.9, 0.5] }), RangeError);
    });
  });

  describe('the labelled pair set', () => {
    it('is a well-formed, balanced set of distinct pairs', () => {
      const pairs = loadPairs();
      assert.ok(pairs.length >= 120, `${pairs.length} pairs`);
      const keys = new Set(pairs.map((p) => `${p.a.toLowerCase()}\u0000${p.b.toLowerCase()}`));
      assert.equal(keys.size, pairs.length, 'no duplicate pairs');
      for (const p of pairs) {
        assert.ok(KINDS.includes(p.kind), p.kind);
        assert.equal(p.same, p.kind === 'paraphrase' || p.kind === 'reorder', `${p.a} / ${p.b}`);
        assert.notEqual(p.a, p.b);
      }
      const same = pairs.filter((p) => p.same).length;
      assert.ok(same >= pairs.length * 0.4 && same <= pairs.length * 0.6, `${same} of ${pairs.length} are paraphrases`);
    });

    it('serves paraphrases and refuses near-misses at the default threshold', async () => {
      const pairs = loadPairs();
      const guarded = await evaluatePairs(pairs, embed, { threshold: DEFAULT_SEMANTIC_THRESHOLD });
      const bare = await evaluatePairs(pairs, embed, { threshold: DEFAULT_SEMANTIC_THRESHOLD, guard: false });
      console.log(summary(`semantic cache @${DEFAULT_SEMANTIC_THRESHOLD} with guard`, guarded));
      for (const threshold of [0.85, 0.9, 0.92, 0.95]) {
        for (const guard of [true, false]) {
          const result = await evaluatePairs(pairs, embed, { threshold, ...(guard ? {} : { guard: false as const }) });
          console.log(`  sweep ${summary(`@${threshold} ${guard ? 'guard   ' : 'no guard'}`, result)}`);
        }
      }
      for (const o of guarded.outcomes.filter((o) => !o.same && o.hit)) {
        console.log(`  false hit (${o.kind}, ${o.similarity?.toFixed(3)}): ${o.a} / ${o.b}`);
      }

      assert.ok(
        guarded.falseHitRate <= MAX_FALSE_HIT_RATE,
        `false-hit rate ${guarded.falseHitRate} > ${MAX_FALSE_HIT_RATE}: ` +
          JSON.stringify(guarded.outcomes.filter((o) => !o.same && o.hit).map((o) => [o.a, o.b, o.similarity])),
      );
      assert.ok(guarded.hitRate >= MIN_HIT_RATE, `hit rate ${guarded.hitRate} < ${MIN_HIT_RATE}`);
      // The set must be hard for the embedding alone, or the false-hit target above proves
      // nothing: without the guard, many near-misses clear the same threshold.
      assert.ok(bare.falseHitRate >= 0.3, `bare false-hit rate ${bare.falseHitRate}: the near-misses are too easy`);
      // Rewordings with exactly the same words are the easy case; nearly all must hit.
      const reorder = guarded.byKind.reorder ?? { pairs: 0, hits: 0 };
      assert.ok(reorder.hits >= reorder.pairs * 0.7, `reorder ${reorder.hits}/${reorder.pairs}`);
    });
  });
});
