import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createError } from '../../../core/errors.js';
import { paramFromInstancePath, toRagwayError } from '../../../core/http-errors.js';

describe('paramFromInstancePath', () => {
  const cases: [string, string | undefined, string | null][] = [
    ['', undefined, null],
    ['/k', undefined, 'k'],
    ['/vector/3', undefined, 'vector[3]'],
    ['/documents/0/text', undefined, 'documents[0].text'],
    ['/documents/2', 'text', 'documents[2].text'],
    ['', 'query', 'query'],
  ];
  for (const [path, missing, expected] of cases) {
    it(`${path || '(root)'} + ${missing ?? '-'} → ${expected}`, () => assert.equal(paramFromInstancePath(path, missing), expected));
  }
});

describe('toRagwayError', () => {
  it('keeps RagwayErrors', () => {
    const err = createError('RAGWAY_ERR_OVERLOADED', 'busy');
    assert.equal(toRagwayError(err), err);
  });
  it('maps body parser errors', () => {
    assert.equal(toRagwayError({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }).statusCode, 413);
    assert.equal(toRagwayError({ code: 'FST_ERR_CTP_INVALID_JSON_BODY', statusCode: 400, message: 'x' }).code, 'RAGWAY_ERR_INVALID_JSON');
  });
  it('hides unknown errors behind a 500', () => {
    const err = toRagwayError(new TypeError('secret internals'));
    assert.equal(err.statusCode, 500);
    assert.ok(!err.message.includes('secret'));
  });
});
