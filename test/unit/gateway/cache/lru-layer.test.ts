import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CacheLayer, type EvictionReason } from '../../../../gateway/cache/lru-layer.js';

const stringBytes = (value: string): number => value.length * 2;

/** A deterministic PRNG, so a failing flood can be replayed. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A clock the test moves by hand; starts above 0 (lru-cache reads a 0 start as "no TTL"). */
function manualClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function recorder(): { events: string[]; observer: { onHit(l: string): void; onMiss(l: string): void; onEvict(l: string, r: EvictionReason): void } } {
  const events: string[] = [];
  return {
    events,
    observer: {
      onHit: (layer) => events.push(`${layer}:hit`),
      onMiss: (layer) => events.push(`${layer}:miss`),
      onEvict: (layer, reason) => events.push(`${layer}:evict:${reason}`),
    },
  };
}

describe('CacheLayer', () => {
  it('stores and returns values; counts hits and misses', () => {
    const { events, observer } = recorder();
    const layer = new CacheLayer<string>('results', { maxBytes: 1024, sizeOf: stringBytes, observer });
    assert.equal(layer.get('a'), undefined);
    assert.equal(layer.set('a', 'alpha'), true);
    assert.equal(layer.get('a'), 'alpha');
    assert.equal(layer.has('a'), true);
    assert.deepEqual(events, ['results:miss', 'results:hit']);
    const stats = layer.stats();
    assert.equal(stats.name, 'results');
    assert.equal(stats.hits, 1);
    assert.equal(stats.misses, 1);
    assert.equal(stats.entries, 1);
    // value 5 chars × 2 + key 1 char × 2.
    assert.equal(stats.bytes, 12);
    assert.equal(stats.maxBytes, 1024);
  });

  it('sizes an entry as sizeOf(value, key) + 2 per key char + 8 per epoch, rounded up', () => {
    const layer = new CacheLayer<number>('x', { maxBytes: 10_000, sizeOf: (value) => value });
    layer.set('key', 10.2);
    assert.equal(layer.stats().bytes, 11 + 6);
    layer.set('k2', 0, { epochs: [1, 2, 3] });
    assert.equal(layer.stats().bytes, 17 + 0 + 4 + 24);
    layer.clear();
    layer.set('', 0); // lru-cache refuses a size of 0: the layer counts at least 1
    assert.equal(layer.stats().bytes, 1);
  });

  it('the byte budget is never exceeded under a flood of 10k random-size entries', () => {
    const random = mulberry32(42);
    const maxBytes = 1024 * 1024;
    const sizes = new Map<string, number>();
    const layer = new CacheLayer<Uint8Array>('flood', { maxBytes, sizeOf: (value) => value.byteLength });
    let refused = 0;
    for (let i = 0; i < 10_000; i += 1) {
      // Mostly small, some large, a few bigger than the whole layer.
      const roll = random();
      const size = roll < 0.9 ? Math.floor(random() * 4096) : roll < 0.995 ? Math.floor(random() * 200_000) : maxBytes + 1;
      const key = `k${i}`;
      const stored = layer.set(key, new Uint8Array(size), { epochs: [i % 3] });
      if (!stored) refused += 1;
      sizes.set(key, size);
      const { bytes } = layer.stats();
      assert.ok(bytes <= maxBytes, `step ${i}: ${bytes} bytes > ${maxBytes}`);
    }
    const stats = layer.stats();
    assert.ok(refused > 0);
    assert.equal(stats.oversize, refused);
    assert.ok(stats.evictions.evict > 0);
    assert.ok(stats.entries > 100, 'the layer is actually used');
    assert.ok(stats.bytes > maxBytes / 2, 'and filled');
  });

  it('evicts least recently used first, reported as evict', () => {
    const { events, observer } = recorder();
    // Each entry: 10 value bytes + 2 key bytes = 12; room for 3.
    const layer = new CacheLayer<string>('lru', { maxBytes: 36, sizeOf: () => 10, observer });
    layer.set('a', 'A');
    layer.set('b', 'B');
    layer.set('c', 'C');
    layer.get('a'); // a is now the most recent; b the least
    layer.set('d', 'D');
    assert.equal(layer.has('b'), false);
    assert.ok(layer.has('a') && layer.has('c') && layer.has('d'));
    assert.ok(events.includes('lru:evict:evict'));
    assert.equal(layer.stats().evictions.evict, 1);
  });

  it('an entry bigger than the layer is refused and drops the old value of its key', () => {
    const layer = new CacheLayer<string>('big', { maxBytes: 100, sizeOf: stringBytes });
    assert.equal(layer.set('k', 'small'), true);
    assert.equal(layer.set('k', 'x'.repeat(100)), false);
    assert.equal(layer.get('k'), undefined);
    const stats = layer.stats();
    assert.equal(stats.oversize, 1);
    assert.equal(stats.evictions.set, 1);
    assert.equal(stats.bytes, 0);
  });

  it('overwriting a key reports a set eviction and re-sizes the entry', () => {
    const layer = new CacheLayer<string>('over', { maxBytes: 1000, sizeOf: stringBytes });
    layer.set('k', 'aaaa');
    layer.set('k', 'bb');
    assert.equal(layer.get('k'), 'bb');
    assert.equal(layer.stats().evictions.set, 1);
    assert.equal(layer.stats().bytes, 4 + 2);
  });

  describe('epochs', () => {
    it('an entry from other epochs is a miss, deleted and counted as stale', () => {
      const { events, observer } = recorder();
      const layer = new CacheLayer<string>('results', { maxBytes: 1024, sizeOf: stringBytes, observer });
      layer.set('q', 'hits at 1,2', { epochs: [1, 2] });
      assert.equal(layer.get('q', [1, 2]), 'hits at 1,2');
      assert.equal(layer.get('q', [1, 3]), undefined);
      assert.equal(layer.has('q'), false, 'the stale entry is gone, its bytes freed');
      assert.deepEqual(events, ['results:hit', 'results:evict:stale', 'results:miss']);
      const stats = layer.stats();
      assert.equal(stats.stale, 1);
      assert.equal(stats.misses, 1);
      assert.equal(stats.evictions.stale, 1);
      assert.equal(stats.evictions.delete, 0);
      assert.equal(stats.bytes, 0);
    });

    it('a different number of shards is stale too', () => {
      const layer = new CacheLayer<string>('r', { maxBytes: 1024, sizeOf: stringBytes });
      layer.set('q', 'v', { epochs: [1, 2] });
      assert.equal(layer.get('q', [1, 2, 0]), undefined);
      assert.equal(layer.stats().stale, 1);
    });

    it('stale is counted right with other entries present (not only the last one)', () => {
      const layer = new CacheLayer<string>('r', { maxBytes: 1024, sizeOf: stringBytes });
      layer.set('a', 'v', { epochs: [1] });
      layer.set('b', 'v', { epochs: [1] });
      assert.equal(layer.get('a', [2]), undefined);
      layer.delete('b');
      const { evictions } = layer.stats();
      assert.equal(evictions.stale, 1);
      assert.equal(evictions.delete, 1);
    });

    it('without currentEpochs, or for an entry stored without epochs, epochs are not checked', () => {
      const layer = new CacheLayer<string>('r', { maxBytes: 1024, sizeOf: stringBytes });
      layer.set('bound', 'v', { epochs: [1] });
      layer.set('free', 'w');
      assert.equal(layer.get('bound'), 'v');
      assert.equal(layer.get('free', [9]), 'w');
    });

    it('copies the epochs it is given', () => {
      const layer = new CacheLayer<string>('r', { maxBytes: 1024, sizeOf: stringBytes });
      const epochs = [1, 2];
      layer.set('q', 'v', { epochs });
      epochs[1] = 5;
      assert.equal(layer.get('q', [1, 2]), 'v');
    });
  });

  describe('ttl', () => {
    it('expires entries after the layer ttl (injected clock)', () => {
      const clock = manualClock();
      const { events, observer } = recorder();
      const layer = new CacheLayer<string>('t', { maxBytes: 1024, sizeOf: stringBytes, ttlMs: 100, now: clock.now, observer });
      layer.set('k', 'v');
      clock.advance(100);
      assert.equal(layer.get('k'), 'v', 'alive at exactly ttl');
      clock.advance(1);
      assert.equal(layer.get('k'), undefined);
      assert.deepEqual(events, ['t:hit', 't:evict:expire', 't:miss']);
      assert.equal(layer.stats().evictions.expire, 1);
      assert.equal(layer.stats().bytes, 0);
    });

    it('reading does not extend the life of an entry', () => {
      const clock = manualClock();
      const layer = new CacheLayer<string>('t', { maxBytes: 1024, sizeOf: stringBytes, ttlMs: 100, now: clock.now });
      layer.set('k', 'v');
      for (let i = 0; i < 4; i += 1) {
        clock.advance(30);
        layer.get('k');
      }
      assert.equal(layer.get('k'), undefined);
    });

    it('a per-set ttl overrides the layer default, both ways', () => {
      const clock = manualClock();
      const layer = new CacheLayer<string>('t', { maxBytes: 1024, sizeOf: stringBytes, ttlMs: 100, now: clock.now });
      layer.set('short', 'v', { ttlMs: 10 });
      layer.set('long', 'v', { ttlMs: 1000 });
      layer.set('forever', 'v', { ttlMs: 0 });
      layer.set('default', 'v');
      clock.advance(50);
      assert.equal(layer.get('short'), undefined);
      assert.equal(layer.get('default'), 'v');
      clock.advance(100);
      assert.equal(layer.get('default'), undefined);
      assert.equal(layer.get('long'), 'v');
      clock.advance(10_000);
      assert.equal(layer.get('long'), undefined);
      assert.equal(layer.get('forever'), 'v');
    });

    it('a per-set ttl works on a layer with no default ttl', () => {
      const clock = manualClock();
      const layer = new CacheLayer<string>('t', { maxBytes: 1024, sizeOf: stringBytes, now: clock.now });
      layer.set('plain', 'v');
      layer.set('brief', 'v', { ttlMs: 5 });
      clock.advance(6);
      assert.equal(layer.get('brief'), undefined);
      assert.equal(layer.get('plain'), 'v');
    });

    it('expires on the real clock too', async () => {
      const layer = new CacheLayer<string>('t', { maxBytes: 1024, sizeOf: stringBytes, ttlMs: 30 });
      layer.set('k', 'v');
      assert.equal(layer.get('k'), 'v');
      await sleep(50);
      assert.equal(layer.get('k'), undefined);
    });

    it('ttlAutopurge frees an expired entry without a lookup', async () => {
      const { events, observer } = recorder();
      const layer = new CacheLayer<string>('t', { maxBytes: 1024, sizeOf: stringBytes, ttlMs: 20, ttlAutopurge: true, observer });
      layer.set('k', 'v');
      await sleep(50);
      assert.equal(layer.stats().entries, 0);
      assert.equal(layer.stats().bytes, 0);
      assert.deepEqual(events, ['t:evict:expire']);
    });

    it('rejects a bad ttl', () => {
      assert.throws(() => new CacheLayer<string>('t', { maxBytes: 1024, sizeOf: stringBytes, ttlMs: -1 }), RangeError);
      const layer = new CacheLayer<string>('t', { maxBytes: 1024, sizeOf: stringBytes });
      assert.throws(() => layer.set('k', 'v', { ttlMs: 1.5 }), RangeError);
    });
  });

  it('clear() drops everything as delete evictions and keeps the counters', () => {
    const layer = new CacheLayer<string>('c', { maxBytes: 1024, sizeOf: stringBytes });
    layer.set('a', 'x');
    layer.set('b', 'y');
    layer.get('a');
    layer.clear();
    const stats = layer.stats();
    assert.equal(stats.entries, 0);
    assert.equal(stats.bytes, 0);
    assert.equal(stats.hits, 1);
    assert.equal(stats.evictions.delete, 2);
  });

  it('rejects a bad budget and a bad sizeOf', () => {
    assert.throws(() => new CacheLayer<string>('c', { maxBytes: 0, sizeOf: stringBytes }), RangeError);
    assert.throws(() => new CacheLayer<string>('c', { maxBytes: 1.5, sizeOf: stringBytes }), RangeError);
    const layer = new CacheLayer<string>('c', { maxBytes: 1024, sizeOf: () => Number.NaN });
    assert.throws(() => layer.set('k', 'v'), TypeError);
  });

  it('a maxEntries cap holds as well as the byte budget', () => {
    const layer = new CacheLayer<string>('c', { maxBytes: 1_000_000, sizeOf: stringBytes, maxEntries: 3 });
    for (let i = 0; i < 10; i += 1) layer.set(`k${i}`, 'v');
    assert.equal(layer.stats().entries, 3);
    assert.equal(layer.stats().evictions.evict, 7);
  });
});
