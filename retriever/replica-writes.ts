// A write to a replica set goes to every non-ejected replica (catching-up ones included: they
// need the writes they are catching up to) with the same request, version included, so
// replicas converge under last-writer-wins. The result lists which replicas acknowledged; a
// write fails only when none did — with the request's own 4xx when a replica rejected it.
// When every replica in rotation failed, the ejected ones are tried too before giving up
// (panic routing, as for reads): ejection is only as fresh as the last probe.
import { abortError, createError, isRagwayError, throwIfAborted, type ErrorCode } from '../core/errors.js';
import { classify, describeFailure, type ReplicaMessages } from './replica-failure.js';
import type { Replica } from './replica.js';
import type { ReplicaMembership } from './replica-membership.js';
import type { ReplicaAck, WithAcks } from './replica-types.js';
import type { ShardCallOptions, ShardClient } from './shard-client.js';

export type ReplicaWrite<T> = (client: ShardClient, signal: AbortSignal | undefined, options: ShardCallOptions | undefined) => Promise<T>;

export interface WriteContext {
  membership: ReplicaMembership;
  messages: ReplicaMessages;
}

interface Outcome<T> {
  ack: ReplicaAck;
  value?: T;
  error?: unknown;
  /** Not sent (the replica is ejected). */
  skipped?: boolean;
}

export async function writeToReplicas<T extends object>(
  context: WriteContext,
  operation: string,
  call: ReplicaWrite<T>,
  signal: AbortSignal | undefined,
  callOptions: ShardCallOptions | undefined,
): Promise<WithAcks<T>> {
  const { membership, messages } = context;
  throwIfAborted(signal);
  const send = async (replica: Replica): Promise<Outcome<T>> => {
    replica.inFlight += 1;
    try {
      const value = await call(replica.client, signal, callOptions);
      replica.noteAnswered();
      return { ack: { url: replica.url, ok: true }, value };
    } catch (err) {
      if (!signal?.aborted && classify(err) === 'transient') membership.recordFailure(replica, err);
      const code: ErrorCode = isRagwayError(err) ? err.code : 'RAGWAY_ERR_SHARD_UNAVAILABLE';
      return { ack: { url: replica.url, ok: false, error: describeFailure(replica, err), code }, error: err };
    } finally {
      replica.inFlight -= 1;
    }
  };
  // A snapshot: discovery may add or remove replicas while the write runs, and the second pass
  // below matches outcomes to replicas by position.
  const targets = [...membership.replicas];
  const outcomes = await Promise.all(
    targets.map(async (replica): Promise<Outcome<T>> => {
      if (replica.ejected) {
        // Not sent: it would most likely fail too, and it catches up from its peers on return.
        return { ack: { url: replica.url, ok: false, error: messages.unreadableReason(replica), code: 'RAGWAY_ERR_SHARD_UNAVAILABLE' }, skipped: true };
      }
      return send(replica);
    }),
  );
  const nobodyTookIt = outcomes.every((outcome) => outcome.value === undefined && (outcome.error === undefined || classify(outcome.error) === 'transient'));
  if (!signal?.aborted && nobodyTookIt && outcomes.some((outcome) => outcome.skipped === true)) {
    await Promise.all(
      outcomes.map(async (outcome, index) => {
        if (outcome.skipped === true) outcomes[index] = await send(targets[index] as Replica);
      }),
    );
  }
  if (signal?.aborted) throw abortError(signal);
  const replicas = outcomes.map((outcome) => outcome.ack);
  const applied = outcomes.find((outcome) => outcome.value !== undefined);
  if (applied?.value !== undefined) return { ...applied.value, replicas };

  // Nobody took it. A 4xx means the request itself is wrong: say that, not "unavailable".
  const errors = outcomes.flatMap((outcome) => (outcome.error === undefined ? [] : [outcome.error]));
  const rejected = errors.find((err) => classify(err) === 'fatal');
  if (rejected !== undefined) throw rejected;
  const message = messages.failed(replicas.length, operation, replicas.map((ack) => ack.error ?? 'failed'));
  if (errors.length > 0 && errors.every((err) => classify(err) === 'local')) throw messages.local(operation, errors[0]);
  if (errors.length > 0 && errors.every((err) => classify(err) === 'deadline')) {
    throw createError('RAGWAY_ERR_DEADLINE_EXCEEDED', message);
  }
  throw createError('RAGWAY_ERR_SHARD_UNAVAILABLE', message, { retryAfterSeconds: 1 });
}
