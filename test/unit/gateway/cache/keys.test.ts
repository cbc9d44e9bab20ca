import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { cacheKey, normalizeQuery, stableStringify, vectorKey } from '../../../../gateway/cache/keys.js';

describe('normalizeQuery', () => {
  const cases: [string, string, string][] = [
    ['lowercases', 'How do I set a TTL', 'how do i set a ttl'],
    ['strips a trailing question mark', 'how do I set a TTL?', 'how do i set a ttl'],
    ['strips a run of trailing marks and spaces', 'how do I set a TTL ?!.. ', 'how do i set a ttl'],
    ['strips , ; : at the end', 'list the options:;,', 'list the options'],
    ['keeps inner punctuation', 'what is node.js? and c#!', 'what is node.js? and c#'],
    ['keeps a decimal point', 'what is 3.14', 'what is 3.14'],
    ['collapses whitespace runs', '  a\t\tb \n\n c  ', 'a b c'],
    ['NFKC folds full-width letters', 'ＴＴＬ in ｌｒｕ－ｃａｃｈｅ', 'ttl in lru-cache'],
    ['NFKC folds full-width punctuation, then it is stripped', 'ttl？！', 'ttl'],
    ['ellipsis', 'and then…', 'and then'],
    ['ideographic full stop', '缓存是什么。', '缓存是什么'],
    ['composed and decomposed é are one', 'cafe\u0301', 'café'],
    ['ligatures', 'ﬁle', 'file'],
    ['non-breaking and ideographic spaces are whitespace', 'a\u00A0\u3000b', 'a b'],
    ['zero-width space and BOM vanish', '\uFEFFzero\u200Bwidth', 'zerowidth'],
    ['only punctuation', '?!?', ''],
    ['empty', '', ''],
    ['leading punctuation is kept', '?why', '?why'],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => assert.equal(normalizeQuery(input), expected));
  }

  it('is idempotent', () => {
    for (const [, input] of cases) assert.equal(normalizeQuery(normalizeQuery(input)), normalizeQuery(input));
  });

  it('stays linear on a long run of punctuation followed by a letter', () => {
    const hostile = `${'.'.repeat(200_000)}a${'?'.repeat(200_000)}`;
    const started = performance.now();
    assert.equal(normalizeQuery(hostile), `${'.'.repeat(200_000)}a`);
    assert.ok(performance.now() - started < 500);
  });
});

describe('stableStringify', () => {
  const equal: [string, unknown, unknown][] = [
    ['key order', { a: 1, b: 2 }, { b: 2, a: 1 }],
    ['nested key order', { f: { lang: 'en', $or: [{ x: 1, y: 2 }] } }, { f: { $or: [{ y: 2, x: 1 }], lang: 'en' } }],
    ['undefined property is absent', { k: 5, filter: undefined }, { k: 5 }],
    ['-0 is 0', { n: -0 }, { n: 0 }],
  ];
  for (const [name, a, b] of equal) {
    it(`same: ${name}`, () => assert.equal(stableStringify(a), stableStringify(b)));
  }

  const different: [string, unknown, unknown][] = [
    ['array order', [1, 2], [2, 1]],
    ['number vs string', { k: 5 }, { k: '5' }],
    ['null vs absent', { f: null }, {}],
    ['nested value', { f: { a: 1 } }, { f: { a: 2 } }],
    ['key with a quote', { 'a"': 1 }, { a: 1 }],
    ['object vs array', { 0: 'x' }, ['x']],
    ['empty string vs null', { a: '' }, { a: null }],
    ['true vs "true"', { a: true }, { a: 'true' }],
  ];
  for (const [name, a, b] of different) {
    it(`different: ${name}`, () => assert.notEqual(stableStringify(a), stableStringify(b)));
  }

  const exact: [string, unknown, string][] = [
    ['sorted keys', { b: 2, a: [3, { d: 1, c: null }] }, '{"a":[3,{"c":null,"d":1}],"b":2}'],
    ['undefined in an array is null', [1, undefined, 2], '[1,null,2]'],
    ['top-level undefined is null', undefined, 'null'],
    ['strings are JSON-escaped', { s: 'a"b\n' }, '{"s":"a\\"b\\n"}'],
    ['Date through toJSON', { at: new Date(0) }, '{"at":"1970-01-01T00:00:00.000Z"}'],
    ['sort is by code unit, not locale', { b: 1, B: 2, a: 3, Z: 4 }, '{"B":2,"Z":4,"a":3,"b":1}'],
    ['empty containers', { o: {}, a: [] }, '{"a":[],"o":{}}'],
  ];
  for (const [name, input, expected] of exact) {
    it(name, () => assert.equal(stableStringify(input), expected));
  }

  it('matches JSON.parse round trips', () => {
    const value = { z: [1, 'two', { y: false, x: null }], a: { c: 1.5, b: -2 } };
    assert.deepEqual(JSON.parse(stableStringify(value)), value);
  });

  const circular: Record<string, unknown> = {};
  circular['self'] = circular;
  const throws: [string, unknown][] = [
    ['NaN', { n: Number.NaN }],
    ['Infinity', [Number.POSITIVE_INFINITY]],
    ['bigint', { n: 1n }],
    ['function', { f: () => 1 }],
    ['symbol', { s: Symbol('x') }],
    ['Map', { m: new Map([['a', 1]]) }],
    ['Set', { s: new Set([1]) }],
    ['typed array', { v: new Float32Array(2) }],
    ['circular', circular],
  ];
  for (const [name, input] of throws) {
    it(`throws on ${name}`, () => assert.throws(() => stableStringify(input), TypeError));
  }

  it('a shared (non-circular) reference is fine', () => {
    const shared = { a: 1 };
    assert.equal(stableStringify({ x: shared, y: [shared] }), '{"x":{"a":1},"y":[{"a":1}]}');
  });
});

describe('vectorKey', () => {
  it('is the sha256 hex of the vector bytes', () => {
    const v = new Float32Array([1, -2.5, 0.125]);
    const expected = createHash('sha256').update(Buffer.from(v.buffer)).digest('hex');
    assert.equal(vectorKey(v), expected);
    assert.match(vectorKey(v), /^[0-9a-f]{64}$/);
  });

  it('equal vectors, equal keys; any change, another key', () => {
    const a = new Float32Array([0.1, 0.2, 0.3]);
    assert.equal(vectorKey(a), vectorKey(Float32Array.from(a)));
    const b = Float32Array.from(a);
    b[2] = Math.fround(0.3) + 1e-7;
    assert.notEqual(vectorKey(a), vectorKey(b));
    assert.notEqual(vectorKey(a), vectorKey(a.subarray(0, 2)));
  });

  it('hashes only the view, not the whole buffer', () => {
    const big = new Float32Array([9, 1, 2, 9]);
    assert.equal(vectorKey(big.subarray(1, 3)), vectorKey(new Float32Array([1, 2])));
  });
});

describe('cacheKey', () => {
  it('is stableStringify itself when short, and its sha256 hex when long', () => {
    const short = { q: 'how do i set a ttl', k: 5 };
    assert.equal(cacheKey(short), stableStringify(short));
    const long = { q: 'x'.repeat(300), k: 5 };
    assert.equal(cacheKey(long), createHash('sha256').update(stableStringify(long)).digest('hex'));
    assert.match(cacheKey(long), /^[0-9a-f]{64}$/);
  });

  it('ignores property order, at any depth', () => {
    assert.equal(
      cacheKey({ q: 'x', k: 5, filter: { lang: 'en', year: { $gte: 2020 } }, epochs: [1, 2] }),
      cacheKey({ epochs: [1, 2], filter: { year: { $gte: 2020 }, lang: 'en' }, k: 5, q: 'x' }),
    );
  });

  const different: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ['k', { q: 'x', k: 5 }, { q: 'x', k: 6 }],
    ['namespace', { q: 'x', ns: 'a' }, { q: 'x', ns: 'b' }],
    ['epochs', { q: 'x', epochs: [1, 2] }, { q: 'x', epochs: [1, 3] }],
    ['epoch order', { q: 'x', epochs: [1, 2] }, { q: 'x', epochs: [2, 1] }],
    ['no filter vs empty filter', { q: 'x' }, { q: 'x', filter: {} }],
    ['field boundary', { a: 'b,c' }, { a: 'b', c: '' }],
  ];
  for (const [name, a, b] of different) {
    it(`differs on ${name}`, () => assert.notEqual(cacheKey(a), cacheKey(b)));
  }
});
