// Which part of the shard set answered a search. Every retrieval response carries it, and a
// partial answer is labelled, never passed off as complete (docs/architecture.md, wire
// contracts). The schema is the one definition: the gateway's response schemas use it, and the
// type the scatter builds is derived from it.
import { Type, type Static } from '@sinclair/typebox';
import { createError, type ErrorCode, type RagwayError } from '../core/errors.js';

/** A shard left out of an answer, and why. */
export const MissingShard = Type.Object({
  shard: Type.Integer(),
  /** RAGWAY_ERR_SHARD_UNAVAILABLE (no replica could answer) or RAGWAY_ERR_DEADLINE_EXCEEDED. */
  code: Type.Unsafe<ErrorCode>(Type.String()),
  /** e.g. "shard-1: 2 of 2 replicas failed (search): http://… unavailable: connect ECONNREFUSED; …" */
  reason: Type.String(),
});
export type MissingShard = Static<typeof MissingShard>;

export const Coverage = Type.Object({
  shards_total: Type.Integer(),
  shards_ok: Type.Integer(),
  partial: Type.Boolean(),
  /** Only on a partial answer: the shards left out, by shard index. */
  missing: Type.Optional(Type.Array(MissingShard)),
});
export type Coverage = Static<typeof Coverage>;

/** Coverage of an answer from `total` shards without the `missing` ones. */
export function coverageOf(total: number, missing: MissingShard[]): Coverage {
  return missing.length === 0
    ? { shards_total: total, shards_ok: total, partial: false }
    : { shards_total: total, shards_ok: total - missing.length, partial: true, missing };
}

/**
 * The error for an answer that lacks shards the caller required: 504 when every lost shard
 * ran out of time (the request's budget was too small), 503 otherwise.
 */
export function incompleteError(requirement: string, failures: readonly { code: ErrorCode; message: string }[]): RagwayError {
  const deadline = failures.length > 0 && failures.every((failure) => failure.code === 'RAGWAY_ERR_DEADLINE_EXCEEDED');
  const message = `${requirement}: ${failures.map((failure) => failure.message).join('; ')}`;
  return deadline
    ? createError('RAGWAY_ERR_DEADLINE_EXCEEDED', message)
    : createError('RAGWAY_ERR_SHARD_UNAVAILABLE', message, { retryAfterSeconds: 1 });
}

/** For callers that asked for a complete answer but share a batch that was allowed to be partial. */
export function coverageError(coverage: Coverage, requirement = `search needs all ${coverage.shards_total} shards`): RagwayError | undefined {
  if (!coverage.partial) return undefined;
  return incompleteError(requirement, (coverage.missing ?? []).map((entry) => ({ code: entry.code, message: entry.reason })));
}

export function nothingAnswered(operation: string, missing: readonly MissingShard[]): RagwayError {
  return incompleteError(
    `${operation}: no shard answered (${missing.length} of ${missing.length} missing)`,
    missing.map((entry) => ({ code: entry.code, message: entry.reason })),
  );
}
