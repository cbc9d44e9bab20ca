import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maximalMarginalRelevance, minMaxScores, reciprocalRankFusion, weightedFusion } from '../../../retriever/fusion.js';
import type { ShardHit } from '../../../shards/protocol.js';

const hit = (id: string, score: number): ShardHit => ({ id, document_id: id, score });
const ids = (hits: readonly ShardHit[]): string[] => hits.map((h) => h.id);
const close = (a: number, b: number): void => assert.ok(Math.abs(a - b) < 1e-12, `${a} ≠ ${b}`);

describe('reciprocalRankFusion', () => {
  const cases: { name: string; lists: ShardHit[][]; k?: number; limit: number; expected: string[] }[] = [
    {
      name: 'a document in both lists beats one ranked first in only one',
      lists: [
        [hit('a', 0.9), hit('b', 0.8)],
        [hit('c', 12), hit('b', 7)],
      ],
      limit: 3,
      expected: ['b', 'a', 'c'],
    },
    {
      name: 'equal fused scores keep first-seen order (earlier list first)',
      lists: [[hit('a', 1)], [hit('c', 1)]],
      limit: 2,
      expected: ['a', 'c'],
    },
    { name: 'limit cuts', lists: [[hit('a', 3), hit('b', 2), hit('c', 1)]], limit: 2, expected: ['a', 'b'] },
    { name: 'empty lists', lists: [[], []], limit: 5, expected: [] },
    {
      name: 'a repeated id counts its best rank once',
      lists: [[hit('a', 3), hit('a', 2), hit('b', 1)], [hit('b', 1)]],
      limit: 2,
      expected: ['b', 'a'],
    },
  ];
  for (const { name, lists, k, limit, expected } of cases) {
    it(name, () => assert.deepEqual(ids(reciprocalRankFusion(lists, limit, k)), expected));
  }

  it('scores are Σ 1/(k + rank)', () => {
    const fused = reciprocalRankFusion([[hit('a', 1), hit('b', 1)], [hit('b', 1)]], 2, 60);
    close(fused[0]?.score as number, 1 / 62 + 1 / 61);
    close(fused[1]?.score as number, 1 / 61);
    const sharp = reciprocalRankFusion([[hit('a', 1)]], 1, 0);
    close(sharp[0]?.score as number, 1);
  });

  it('rejects a negative k', () => assert.throws(() => reciprocalRankFusion([], 1, -1), RangeError));
});

describe('weightedFusion', () => {
  const vector = [hit('a', 0.9), hit('b', 0.5), hit('c', 0.1)];
  const lexical = [hit('c', 20), hit('d', 10), hit('a', 0)];
  const cases: { alpha: number; expected: string[] }[] = [
    { alpha: 1, expected: ['a', 'b', 'c', 'd'] },
    { alpha: 0, expected: ['c', 'd', 'a', 'b'] },
    // a: 0.5·1 + 0.5·0 = 0.5; b: 0.5·0.5 = 0.25; c: 0 + 0.5 = 0.5; d: 0.5·0.5 = 0.25 → ties keep first-seen order.
    { alpha: 0.5, expected: ['a', 'c', 'b', 'd'] },
  ];
  for (const { alpha, expected } of cases) {
    it(`alpha ${alpha}`, () => assert.deepEqual(ids(weightedFusion(vector, lexical, alpha, 10)), expected));
  }
  it('min-max scales, constant lists to 1', () => {
    assert.deepEqual([...minMaxScores([hit('a', 4), hit('b', 2), hit('c', 3)])], [['a', 1], ['b', 0], ['c', 0.5]]);
    assert.deepEqual([...minMaxScores([hit('a', 7), hit('b', 7)])], [['a', 1], ['b', 1]]);
  });
  it('rejects alpha outside [0, 1]', () => assert.throws(() => weightedFusion([], [], 1.5, 1), RangeError));
});

describe('maximalMarginalRelevance', () => {
  const candidates = [hit('a', 1), hit('a2', 0.95), hit('b', 0.7)];
  // a and a2 are near duplicates; b points elsewhere.
  const vectors = new Map([
    ['a', Float32Array.from([1, 0])],
    ['a2', Float32Array.from([0.99, Math.sqrt(1 - 0.99 ** 2)])],
    ['b', Float32Array.from([0, 1])],
  ]);
  const cases: { lambda: number; expected: string[] }[] = [
    { lambda: 1, expected: ['a', 'a2', 'b'] },
    { lambda: 0.5, expected: ['a', 'b', 'a2'] },
  ];
  for (const { lambda, expected } of cases) {
    it(`lambda ${lambda}`, () => assert.deepEqual(ids(maximalMarginalRelevance(candidates, vectors, lambda, 3)), expected));
  }
  it('stops at the limit and treats missing vectors as dissimilar', () => {
    assert.deepEqual(ids(maximalMarginalRelevance(candidates, new Map(), 0.3, 2)), ['a', 'a2']);
  });
});
