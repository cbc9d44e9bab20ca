// What a failed replica call means, and how a replica set says so. Only transient errors
// (connect, reset, timeout, 5xx) move a read to another replica and count against the
// replica; a 4xx is the caller's mistake and returns at once, since every replica would
// answer the same; a passed deadline is the caller's budget; and an exception thrown in this
// process (not a RagwayError: a bug, or a request that could not even be serialised) says
// nothing about the replica, so it neither counts nor moves on — another replica would run
// the same local code. Messages name each replica and
// its own reason: "shard-1: 2 of 2 replicas failed (search): http://… unavailable: …; …".
import { createError, isRagwayError, type RagwayError } from '../core/errors.js';
import type { Replica } from './replica.js';

export type Failure = 'transient' | 'deadline' | 'fatal' | 'local';

/**
 * Shard clients report every failure of the replica or its transport as a RagwayError
 * (HttpShardClient maps connect errors, timeouts and 5xx to RAGWAY_ERR_SHARD_UNAVAILABLE);
 * anything else was thrown by code in this process.
 */
export function classify(err: unknown): Failure {
  if (!isRagwayError(err)) return 'local';
  if (err.code === 'RAGWAY_ERR_DEADLINE_EXCEEDED') return 'deadline';
  if (err.code === 'RAGWAY_ERR_CLIENT_CLOSED') return 'transient';
  return err.statusCode < 500 ? 'fatal' : 'transient';
}

export function describe(err: unknown): string {
  if (isRagwayError(err)) return err.message;
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/** "http://10.0.0.2:7001 unavailable: connect ECONNREFUSED" — the replica's own words, once. */
export function describeFailure(replica: Replica, err: unknown): string {
  const message = describe(err);
  const name = replica.client.name;
  if (message.startsWith(name)) return `${replica.url}${message.slice(name.length)}`;
  const code = isRagwayError(err) ? `${err.code}: ` : '';
  return `${replica.url}: ${code}${message}`;
}

/** The messages of one replica set: its label, its size and its ejection threshold. */
export class ReplicaMessages {
  constructor(
    readonly label: string,
    private readonly replicas: readonly Replica[],
    private readonly ejectionFailures: number,
  ) {}

  /** Why a replica was not asked. */
  unreadableReason(replica: Replica): string {
    if (replica.ejected) {
      return `${replica.url}: ejected after ${Math.max(replica.consecutiveFailures, this.ejectionFailures)} consecutive failures${replica.lastError === undefined ? '' : ` (last: ${replica.lastError})`}`;
    }
    if (replica.catchingUp) return `${replica.url}: catching up (not read from until ready)`;
    return `${replica.url}: not ready (/readyz answered 503)`;
  }

  failed(failed: number, operation: string, reasons: readonly string[]): string {
    // A discovered shard whose replicas all left (or none has been found yet): a coverage gap.
    if (this.replicas.length === 0) return `${this.label}: no replica of this shard is known (${operation}): none has been discovered, or all have left`;
    return `${this.label}: ${failed} of ${this.replicas.length} replicas failed (${operation}): ${reasons.join('; ')}`;
  }

  unavailable(operation: string, tried: ReadonlySet<Replica>, failures: readonly string[]): RagwayError {
    const skipped = this.replicas.filter((replica) => !tried.has(replica)).map((replica) => this.unreadableReason(replica));
    const reasons = [...failures, ...skipped];
    return createError('RAGWAY_ERR_SHARD_UNAVAILABLE', this.failed(reasons.length, operation, reasons), { retryAfterSeconds: 1 });
  }

  /** A local exception: 500, naming the shard and operation, never blamed on a replica. */
  local(operation: string, err: unknown): RagwayError {
    return createError('RAGWAY_ERR_INTERNAL', `${this.label}: ${operation} failed in the gateway before any replica answered: ${describe(err)}`, { cause: err });
  }

  deadline(operation: string, started: number, failures: readonly string[]): RagwayError {
    const waited = Math.round(performance.now() - started);
    const detail = failures.length === 0 ? '' : `; before that ${failures.length} of ${this.replicas.length} replicas failed: ${failures.join('; ')}`;
    return createError('RAGWAY_ERR_DEADLINE_EXCEEDED', `${this.label}: no replica answered ${operation} before the deadline (waited ${waited} ms)${detail}`);
  }
}
