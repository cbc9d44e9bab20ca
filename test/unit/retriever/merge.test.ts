import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeTopK } from '../../../retriever/merge.js';
import type { ShardHit } from '../../../shards/protocol.js';

// Hits written as "id:score" (document id = chunk id) keep the tables readable.
function hits(...specs: string[]): ShardHit[] {
  return specs.map((spec) => {
    const [id = '', score = ''] = spec.split(':');
    return { id, document_id: id, score: Number(score) };
  });
}

function ids(list: readonly ShardHit[]): string[] {
  return list.map((hit) => hit.id);
}

interface Case {
  name: string;
  lists: ShardHit[][];
  k: number;
  expected: string[];
}

const cases: Case[] = [
  { name: 'no lists', lists: [], k: 5, expected: [] },
  { name: 'only empty lists', lists: [[], [], []], k: 5, expected: [] },
  { name: 'k = 0', lists: [hits('a:0.9')], k: 0, expected: [] },
  { name: 'single list is truncated to k', lists: [hits('a:0.9', 'b:0.8', 'c:0.7')], k: 2, expected: ['a', 'b'] },
  {
    name: 'interleaves by score',
    lists: [hits('a:0.9', 'c:0.5', 'e:0.1'), hits('b:0.8', 'd:0.3')],
    k: 4,
    expected: ['a', 'b', 'c', 'd'],
  },
  {
    name: 'k larger than the total returns everything',
    lists: [hits('a:0.9', 'c:0.5'), [], hits('b:0.7')],
    k: 100,
    expected: ['a', 'b', 'c'],
  },
  {
    name: 'an empty list among full ones',
    lists: [[], hits('x:0.4'), hits('y:0.6')],
    k: 3,
    expected: ['y', 'x'],
  },
  {
    name: 'duplicates across shards are kept once, at the best score',
    lists: [hits('a:0.5', 'b:0.4'), hits('a:0.9', 'c:0.3'), hits('b:0.45')],
    k: 10,
    expected: ['a', 'b', 'c'],
  },
  {
    name: 'duplicates do not use up k',
    lists: [hits('a:0.9', 'b:0.8'), hits('a:0.9', 'b:0.8'), hits('c:0.7')],
    k: 3,
    expected: ['a', 'b', 'c'],
  },
  {
    name: 'a duplicate inside one list',
    lists: [hits('a:0.9', 'a:0.8', 'b:0.7')],
    k: 2,
    expected: ['a', 'b'],
  },
  {
    name: 'equal scores: lower shard index first',
    lists: [hits('s0:0.5'), hits('s1:0.5'), hits('s2:0.5')],
    k: 3,
    expected: ['s0', 's1', 's2'],
  },
  {
    name: 'equal scores: lower shard first even when it is listed later in the shard',
    lists: [hits('x:0.9', 'y:0.5', 'z:0.5'), hits('p:0.5', 'q:0.5')],
    k: 5,
    expected: ['x', 'y', 'z', 'p', 'q'],
  },
  {
    name: 'equal scores: rank within a list is kept',
    lists: [hits('b:0.5', 'a:0.5', 'c:0.5')],
    k: 3,
    expected: ['b', 'a', 'c'],
  },
  {
    name: 'ties cut at k keep the lower shard',
    lists: [hits('s0:0.5'), hits('s1:0.5')],
    k: 1,
    expected: ['s0'],
  },
  {
    name: 'negative scores (inner product, l2 as negated distance)',
    lists: [hits('a:-0.1', 'b:-2'), hits('c:-0.5')],
    k: 3,
    expected: ['a', 'c', 'b'],
  },
  {
    name: 'an unsorted list is sorted, not trusted',
    lists: [hits('low:0.1', 'high:0.9', 'mid:0.5'), hits('other:0.6')],
    k: 4,
    expected: ['high', 'other', 'mid', 'low'],
  },
  {
    name: 'a fractional k is floored',
    lists: [hits('a:0.9', 'b:0.8', 'c:0.7')],
    k: 2.7,
    expected: ['a', 'b'],
  },
];

describe('mergeTopK', () => {
  for (const { name, lists, k, expected } of cases) {
    it(name, () => {
      assert.deepEqual(ids(mergeTopK(lists, k)), expected);
    });
  }

  it('keeps the best-scored copy of a duplicate, with its fields', () => {
    const low: ShardHit = { id: 'a', document_id: 'd', score: 0.2, text: 'from shard 0' };
    const high: ShardHit = { id: 'a', document_id: 'd', score: 0.8, text: 'from shard 1' };
    assert.deepEqual(mergeTopK([[low], [high]], 5), [high]);
  });

  it('does not modify its inputs', () => {
    const lists = [hits('b:0.1', 'a:0.9'), hits('c:0.5')];
    const before = structuredClone(lists);
    mergeTopK(lists, 10);
    assert.deepEqual(lists, before);
  });

  it('is sorted by score and equals a full sort on random lists', () => {
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let round = 0; round < 50; round++) {
      const lists = Array.from({ length: 1 + Math.floor(random() * 6) }, (_, shard) =>
        Array.from({ length: Math.floor(random() * 20) }, (_, rank) => ({
          id: `s${shard}-${rank}`,
          document_id: `d${shard}`,
          // Coarse scores make ties frequent.
          score: Math.round(random() * 10) / 10,
        })).sort((a, b) => b.score - a.score),
      );
      const k = 1 + Math.floor(random() * 30);
      const expected = lists
        .flatMap((list, shard) => list.map((hit, rank) => ({ hit, shard, rank })))
        .sort((a, b) => b.hit.score - a.hit.score || a.shard - b.shard || a.rank - b.rank)
        .slice(0, k)
        .map(({ hit }) => hit.id);
      assert.deepEqual(ids(mergeTopK(lists, k)), expected);
    }
  });
});
