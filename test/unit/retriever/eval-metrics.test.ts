import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluateRuns, mrrAtK, ndcgAtK, recallAtK } from '../../../retriever/eval-metrics.js';

const close = (actual: number, expected: number): void =>
  assert.ok(Math.abs(actual - expected) < 1e-9, `expected ${expected}, got ${actual}`);

describe('IR metrics (trec_eval definitions, hand-computed)', () => {
  // Judgements: a=3, b=2, c=1, x=0 (judged, not relevant); y unjudged.
  const graded = new Map([
    ['a', 3],
    ['b', 2],
    ['c', 1],
    ['x', 0],
  ]);
  // IDCG@10 = 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.261859507 + 0.5
  const idcg = 3 + 2 / Math.log2(3) + 0.5;

  const ndcgCases: { name: string; ranking: string[]; k: number; expected: number }[] = [
    { name: 'ideal order', ranking: ['a', 'b', 'c'], k: 10, expected: 1 },
    { name: 'reversed: linear gain, log2 discount', ranking: ['c', 'b', 'a'], k: 10, expected: (1 + 2 / Math.log2(3) + 3 / 2) / idcg },
    { name: 'non-relevant and unjudged count zero', ranking: ['x', 'y', 'a'], k: 10, expected: 3 / 2 / idcg },
    // k=1: IDCG@1 = 3, DCG@1 = 2.
    { name: 'cut at k', ranking: ['b', 'a'], k: 1, expected: 2 / 3 },
    { name: 'a repeated id counts once', ranking: ['a', 'a', 'b'], k: 10, expected: (3 + 2 / Math.log2(3)) / idcg },
    { name: 'empty ranking', ranking: [], k: 10, expected: 0 },
  ];
  for (const { name, ranking, k, expected } of ndcgCases) {
    it(`nDCG@${k}: ${name}`, () => close(ndcgAtK(ranking, graded, k), expected));
  }

  it('nDCG is 0 for a query without a relevant judgement', () => {
    close(ndcgAtK(['x'], new Map([['x', 0]]), 10), 0);
  });

  it('nDCG with binary judgements matches the textbook example', () => {
    // Relevant {d1, d3}; ranking d3, d2, d1 → DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3).
    const binary = new Map([
      ['d1', 1],
      ['d3', 1],
    ]);
    close(ndcgAtK(['d3', 'd2', 'd1'], binary, 10), 1.5 / (1 + 1 / Math.log2(3)));
  });

  const recallCases: { ranking: string[]; k: number; expected: number }[] = [
    { ranking: ['a', 'y', 'b'], k: 10, expected: 2 / 3 },
    { ranking: ['a', 'y', 'b'], k: 2, expected: 1 / 3 },
    { ranking: ['x', 'y'], k: 10, expected: 0 },
    { ranking: ['c', 'b', 'a'], k: 3, expected: 1 },
  ];
  for (const { ranking, k, expected } of recallCases) {
    it(`recall@${k} of [${ranking.join(',')}] = ${expected.toFixed(3)}`, () => close(recallAtK(ranking, graded, k), expected));
  }

  const mrrCases: { ranking: string[]; k: number; expected: number }[] = [
    { ranking: ['a'], k: 10, expected: 1 },
    { ranking: ['x', 'y', 'c'], k: 10, expected: 1 / 3 },
    { ranking: ['x', 'y', 'c'], k: 2, expected: 0 },
    { ranking: [], k: 10, expected: 0 },
  ];
  for (const { ranking, k, expected } of mrrCases) {
    it(`MRR@${k} of [${ranking.join(',')}] = ${expected.toFixed(3)}`, () => close(mrrAtK(ranking, graded, k), expected));
  }

  it('rejects a k that is not a positive integer', () => {
    assert.throws(() => ndcgAtK([], graded, 0), RangeError);
    assert.throws(() => recallAtK([], graded, 1.5), RangeError);
  });

  it('averages per query, a query without a ranking counting as empty', () => {
    const qrels = new Map([
      ['q1', new Map([['a', 1]])],
      ['q2', new Map([['b', 1]])],
    ]);
    const report = evaluateRuns(new Map([['q1', ['a']]]), qrels);
    assert.equal(report.queries, 2);
    close(report.ndcg_at_10, 0.5);
    close(report.recall_at_10, 0.5);
    close(report.recall_at_100, 0.5);
    close(report.mrr_at_10, 0.5);
  });
});
