import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fnv1a64, jumpConsistentHash, shardForDocument } from '../../../retriever/routing.js';

describe('fnv1a64', () => {
  it('matches the published FNV-1a 64 test vectors', () => {
    assert.equal(fnv1a64(''), 0xcbf29ce484222325n);
    assert.equal(fnv1a64('a'), 0xaf63dc4c8601ec8cn);
    assert.equal(fnv1a64('foobar'), 0x85944171f73967e8n);
  });

  it('hashes the UTF-8 bytes, not UTF-16 code units', () => {
    // Same value as a BigInt reference implementation over Buffer.from(text, 'utf8').
    const reference = (text: string): bigint => {
      let hash = 0xcbf29ce484222325n;
      for (const byte of Buffer.from(text, 'utf8')) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
      return hash;
    };
    for (const text of ['héllo wörld ✓', '文档-42', '🙂 emoji', 'x'.repeat(300)]) {
      assert.equal(fnv1a64(text), reference(text), text);
    }
  });
});

describe('jumpConsistentHash', () => {
  it('matches the reference implementation (Lamping & Veach; go-jump test vectors)', () => {
    assert.equal(jumpConsistentHash(1n, 1), 0);
    assert.equal(jumpConsistentHash(42n, 57), 43);
    assert.equal(jumpConsistentHash(0xdead10ccn, 1), 0);
    assert.equal(jumpConsistentHash(0xdead10ccn, 666), 361);
    assert.equal(jumpConsistentHash(256n, 1024), 520);
  });

  it('rejects a bucket count below one', () => {
    assert.throws(() => jumpConsistentHash(1n, 0), RangeError);
    assert.throws(() => jumpConsistentHash(1n, 1.5), RangeError);
  });
});

describe('shardForDocument', () => {
  it('is pinned: these values must never change between releases', () => {
    // Changing them would strand documents written by an older gateway on the wrong shard.
    const pinned: [string, number, number][] = [
      ['doc-1', 1, 0],
      ['doc-1', 4, 3],
      ['doc-1', 8, 6],
      ['doc-2', 3, 2],
      ['doc-2', 8, 4],
      ['alpha', 8, 5],
      ['alpha', 16, 15],
    ];
    for (const [id, shards, expected] of pinned) {
      assert.equal(shardForDocument(id, shards), expected, `${id} over ${shards} shards`);
    }
  });

  it('stays in range', () => {
    for (const shards of [1, 2, 3, 7, 64]) {
      for (let i = 0; i < 2000; i++) {
        const shard = shardForDocument(`doc-${i}`, shards);
        assert.ok(Number.isInteger(shard) && shard >= 0 && shard < shards, `doc-${i} → ${shard} of ${shards}`);
      }
    }
  });

  it('spreads 10k ids roughly uniformly', () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `document-${i}`);
    for (const shards of [2, 4, 8]) {
      const counts = new Array<number>(shards).fill(0);
      for (const id of ids) counts[shardForDocument(id, shards)]! += 1;
      const expected = ids.length / shards;
      for (const count of counts) {
        // ±10% is > 6 standard deviations for these bucket sizes; a real bias shows up far beyond.
        assert.ok(Math.abs(count - expected) < expected * 0.1, `${shards} shards: ${counts.join(', ')}`);
      }
    }
  });

  it('adding a shard moves about 1/(n+1) of the documents, all onto the new shard', () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `doc:${i}:${(i * 2654435761) >>> 0}`);
    for (const n of [1, 2, 3, 4, 7]) {
      let moved = 0;
      for (const id of ids) {
        const before = shardForDocument(id, n);
        const after = shardForDocument(id, n + 1);
        if (before !== after) {
          moved += 1;
          assert.equal(after, n, `${id} moved between old shards`);
        }
      }
      const fraction = moved / ids.length;
      const expected = 1 / (n + 1);
      assert.ok(Math.abs(fraction - expected) < 0.02, `${n}→${n + 1}: moved ${fraction}, expected ≈${expected}`);
    }
  });
});
