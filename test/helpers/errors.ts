// Assertions on the error catalog: tests match `err.code` (and, where the wording is the
// point, the message), never error classes.
import assert from 'node:assert/strict';
import { isRagwayError, type ErrorCode } from '../../core/errors.js';

/** A validation function for assert.rejects / assert.throws: a RagwayError with this code. */
export function hasCode(code: ErrorCode, messagePattern?: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isRagwayError(err), `expected a RagwayError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (messagePattern) assert.match(err.message, messagePattern);
    return true;
  };
}
