import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRagwayError } from '../../../core/errors.js';
import { compileFilter } from '../../../shards/filter.js';

const doc = {
  lang: 'en',
  year: 2021,
  score: 0.5,
  draft: false,
  tags: ['a', 'b'],
  years: [1999, 2005],
  nothing: null,
  title: 'Mango',
};

interface MatchCase {
  name: string;
  filter: unknown;
  expected: boolean;
}

const matchCases: MatchCase[] = [
  { name: 'empty filter matches everything', filter: {}, expected: true },
  { name: 'string equality', filter: { lang: 'en' }, expected: true },
  { name: 'string inequality', filter: { lang: 'de' }, expected: false },
  { name: 'number equality', filter: { year: 2021 }, expected: true },
  { name: 'boolean equality', filter: { draft: false }, expected: true },
  { name: 'no type coercion in equality', filter: { year: '2021' }, expected: false },
  { name: 'equality on a missing field', filter: { missing: 'x' }, expected: false },
  { name: 'equality on an array field matches any element', filter: { tags: 'b' }, expected: true },
  { name: 'equality on an array field without the element', filter: { tags: 'c' }, expected: false },
  { name: 'two fields are ANDed', filter: { lang: 'en', year: 2020 }, expected: false },
  { name: '$eq', filter: { lang: { $eq: 'en' } }, expected: true },
  { name: '$ne on a different value', filter: { lang: { $ne: 'de' } }, expected: true },
  { name: '$ne on the same value', filter: { lang: { $ne: 'en' } }, expected: false },
  { name: '$ne matches a missing field', filter: { missing: { $ne: 'x' } }, expected: true },
  { name: '$ne on an array with the element', filter: { tags: { $ne: 'a' } }, expected: false },
  { name: '$in hit', filter: { lang: { $in: ['de', 'en'] } }, expected: true },
  { name: '$in miss', filter: { lang: { $in: ['de', 'fr'] } }, expected: false },
  { name: '$in empty matches nothing', filter: { lang: { $in: [] } }, expected: false },
  { name: '$in over an array field', filter: { tags: { $in: ['x', 'b'] } }, expected: true },
  { name: '$nin miss', filter: { lang: { $nin: ['de', 'fr'] } }, expected: true },
  { name: '$nin hit', filter: { lang: { $nin: ['en'] } }, expected: false },
  { name: '$nin over an array field', filter: { tags: { $nin: ['a'] } }, expected: false },
  { name: '$nin matches a missing field', filter: { missing: { $nin: ['a'] } }, expected: true },
  { name: '$gt number', filter: { year: { $gt: 2020 } }, expected: true },
  { name: '$gt number equal', filter: { year: { $gt: 2021 } }, expected: false },
  { name: '$gte number equal', filter: { year: { $gte: 2021 } }, expected: true },
  { name: '$lt number', filter: { score: { $lt: 0.6 } }, expected: true },
  { name: '$lte number equal', filter: { score: { $lte: 0.5 } }, expected: true },
  { name: '$lt number false', filter: { score: { $lt: 0.5 } }, expected: false },
  { name: 'range combined', filter: { year: { $gte: 2000, $lt: 2022 } }, expected: true },
  { name: 'range combined out of range', filter: { year: { $gte: 2000, $lt: 2021 } }, expected: false },
  { name: '$gt string', filter: { title: { $gt: 'Apple' } }, expected: true },
  { name: '$lt string', filter: { title: { $lt: 'Apple' } }, expected: false },
  { name: 'string vs number never compares', filter: { year: { $gt: '1000' } }, expected: false },
  { name: 'number vs string never compares', filter: { title: { $lt: 5 } }, expected: false },
  { name: 'range on a missing field', filter: { missing: { $gt: 0 } }, expected: false },
  { name: 'range on an array field matches any element', filter: { years: { $gt: 2000 } }, expected: true },
  { name: 'range on an array field, no element', filter: { years: { $gt: 2010 } }, expected: false },
  { name: '$exists true', filter: { lang: { $exists: true } }, expected: true },
  { name: '$exists true on null value', filter: { nothing: { $exists: true } }, expected: true },
  { name: '$exists false on a missing field', filter: { missing: { $exists: false } }, expected: true },
  { name: '$exists false on a present field', filter: { lang: { $exists: false } }, expected: false },
  { name: 'prototype keys are not fields', filter: { constructor: { $exists: true } }, expected: false },
  { name: '$and all true', filter: { $and: [{ lang: 'en' }, { year: 2021 }] }, expected: true },
  { name: '$and one false', filter: { $and: [{ lang: 'en' }, { year: 2020 }] }, expected: false },
  { name: '$or one true', filter: { $or: [{ lang: 'de' }, { year: 2021 }] }, expected: true },
  { name: '$or none true', filter: { $or: [{ lang: 'de' }, { year: 2020 }] }, expected: false },
  {
    name: 'nested $or inside $and',
    filter: { $and: [{ $or: [{ lang: 'de' }, { tags: 'a' }] }, { year: { $gte: 2021 } }] },
    expected: true,
  },
  { name: '$or next to a field condition', filter: { lang: 'en', $or: [{ year: 1 }, { draft: true }] }, expected: false },
];

interface ErrorCase {
  name: string;
  filter: unknown;
  param: string;
}

const errorCases: ErrorCase[] = [
  { name: 'unknown field operator', filter: { lang: { $regex: 'e.*' } }, param: 'filter.lang.$regex' },
  { name: 'unknown top-level operator', filter: { $not: { lang: 'en' } }, param: 'filter.$not' },
  { name: 'field named like an operator in $and', filter: { $and: [{ $nor: [] }] }, param: 'filter.$and[0].$nor' },
  { name: 'filter is an array', filter: [{ lang: 'en' }], param: 'filter' },
  { name: 'filter is a string', filter: 'lang=en', param: 'filter' },
  { name: 'filter is null', filter: null, param: 'filter' },
  { name: 'null equality operand', filter: { lang: null }, param: 'filter.lang' },
  { name: 'array equality operand', filter: { tags: ['a'] }, param: 'filter.tags' },
  { name: 'empty operator object', filter: { lang: {} }, param: 'filter.lang' },
  { name: '$eq with an object', filter: { lang: { $eq: { a: 1 } } }, param: 'filter.lang.$eq' },
  { name: '$ne with null', filter: { lang: { $ne: null } }, param: 'filter.lang.$ne' },
  { name: '$in not an array', filter: { lang: { $in: 'en' } }, param: 'filter.lang.$in' },
  { name: '$in with an object element', filter: { lang: { $in: ['en', {}] } }, param: 'filter.lang.$in[1]' },
  { name: '$nin not an array', filter: { lang: { $nin: 3 } }, param: 'filter.lang.$nin' },
  { name: '$gt with a boolean', filter: { year: { $gt: true } }, param: 'filter.year.$gt' },
  { name: '$lte with an array', filter: { year: { $lte: [1] } }, param: 'filter.year.$lte' },
  { name: '$exists not boolean', filter: { lang: { $exists: 1 } }, param: 'filter.lang.$exists' },
  { name: '$and empty', filter: { $and: [] }, param: 'filter.$and' },
  { name: '$or not an array', filter: { $or: { lang: 'en' } }, param: 'filter.$or' },
  { name: '$or element not an object', filter: { $or: [{ lang: 'en' }, 'x'] }, param: 'filter.$or[1]' },
  { name: 'nested error keeps its path', filter: { $or: [{ $and: [{ y: { $gt: null } }] }] }, param: 'filter.$or[0].$and[0].y.$gt' },
];

describe('compileFilter', () => {
  for (const { name, filter, expected } of matchCases) {
    it(`matches: ${name}`, () => {
      assert.equal(compileFilter(filter)(doc), expected);
    });
  }

  for (const { name, filter, param } of errorCases) {
    it(`rejects: ${name}`, () => {
      assert.throws(
        () => compileFilter(filter),
        (err: unknown) => {
          assert.ok(isRagwayError(err));
          assert.equal(err.code, 'RAGWAY_ERR_INVALID_FILTER');
          assert.equal(err.statusCode, 400);
          assert.equal(err.param, param);
          return true;
        },
      );
    });
  }

  it('prefixes params with the given path', () => {
    assert.throws(
      () => compileFilter({ lang: { $like: 'e' } }, 'queries[2].filter'),
      (err: unknown) => isRagwayError(err) && err.param === 'queries[2].filter.lang.$like',
    );
  });

  it('evaluates against metadata without fields as non-matching, not throwing', () => {
    const predicate = compileFilter({ $or: [{ a: { $gt: 1 } }, { b: { $in: ['x'] } }] });
    assert.equal(predicate({}), false);
    assert.equal(predicate({ b: 'x' }), true);
  });
});
