// Calling several shards at once, for the scatter. A read (`gather`) collects what the shards
// answer by the deadline: a shard that fails transiently or misses it becomes `missing`, a 4xx
// fails the whole call, and with `requireComplete` the first lost shard does too (the calls
// still in flight are aborted rather than left to finish for nobody). A write (`writeAll`)
// runs to completion on every shard it names, so its error can say exactly what was applied.
import { abortError, createError, isRagwayError, throwIfAborted, type RagwayError } from '../core/errors.js';
import { incompleteError, nothingAnswered, type MissingShard } from './coverage.js';
import { race, type RaceControl } from './race.js';
import type { ReplicaAck } from './replica-types.js';
import { shardCallOptions, type ShardCallOptions, type ShardClient } from './shard-client.js';
import type { ShardCallTrace } from './call-trace.js';

/** The shard set a fan-out runs over. */
export interface ShardSet {
  client(shard: number): ShardClient;
  /** Reports one shard request's duration and whether the shard answered (metrics). */
  observe(shard: number, elapsedMs: number, ok: boolean): void;
}

export interface Gathered<T> {
  /** By slot; undefined for a missing shard. */
  values: (T | undefined)[];
  tookMs: number[];
  missing: MissingShard[];
}

export interface GatherPolicy {
  deadline: number | undefined;
  requireComplete: boolean;
  /** The calling key's namespaces, passed to every shard call (ShardCallOptions.namespaces). */
  namespaces?: readonly string[] | undefined;
  /** Passed to each shard's call (replica sets open a span per replica call); tracing on only. */
  trace?: ShardCallTrace | undefined;
}

/**
 * Calls `shards` concurrently and collects what they answer by the deadline. With
 * `requireComplete` the first shard lost fails the whole call (`requirement` opens the
 * message). When no shard answered at all the call fails.
 */
export function gather<T>(
  set: ShardSet,
  operation: string,
  requirement: string,
  shards: readonly number[],
  call: (client: ShardClient, signal: AbortSignal, options: ShardCallOptions | undefined) => Promise<T>,
  signal: AbortSignal | undefined,
  policy: GatherPolicy,
): Promise<Gathered<T>> {
  throwIfAborted(signal);
  if (policy.deadline !== undefined && Date.now() >= policy.deadline) {
    return Promise.reject(createError('RAGWAY_ERR_DEADLINE_EXCEEDED', `${operation}: the deadline passed before any shard was asked`));
  }
  return new Gathering<T>(set, operation, requirement, shards, signal, policy).run(call);
}

/** One gather while it runs: a slot per shard asked, each finished once. */
class Gathering<T> {
  readonly #set: ShardSet;
  readonly #operation: string;
  readonly #requirement: string;
  readonly #shards: readonly number[];
  readonly #signal: AbortSignal | undefined;
  readonly #policy: GatherPolicy;
  readonly #controllers: AbortController[];
  readonly #finished: boolean[];
  readonly #started: number[];
  readonly #values: (T | undefined)[];
  readonly #tookMs: number[];
  readonly #missing: MissingShard[] = [];
  #pending: number;
  #control: RaceControl<Gathered<T>> | undefined;

  constructor(set: ShardSet, operation: string, requirement: string, shards: readonly number[], signal: AbortSignal | undefined, policy: GatherPolicy) {
    this.#set = set;
    this.#operation = operation;
    this.#requirement = requirement;
    this.#shards = shards;
    this.#signal = signal;
    this.#policy = policy;
    this.#controllers = shards.map(() => new AbortController());
    this.#finished = shards.map(() => false);
    this.#started = shards.map(() => performance.now());
    this.#values = new Array<T | undefined>(shards.length).fill(undefined);
    this.#tookMs = new Array<number>(shards.length).fill(0);
    this.#pending = shards.length;
  }

  run(call: (client: ShardClient, signal: AbortSignal, options: ShardCallOptions | undefined) => Promise<T>): Promise<Gathered<T>> {
    const { deadline, namespaces, trace } = this.#policy;
    const base = shardCallOptions(deadline, namespaces);
    const callOptions: ShardCallOptions | undefined = trace === undefined ? base : { ...base, trace };
    return race<Gathered<T>>(
      {
        signal: this.#signal,
        deadline,
        onDeadline: () => this.#onDeadline(),
        cancel: (reason) => {
          for (const [slot, controller] of this.#controllers.entries()) if (!this.#finished[slot]) controller.abort(reason);
        },
      },
      (control) => {
        this.#control = control;
        this.#shards.forEach((shard, slot) => {
          const client = this.#set.client(shard);
          let promise: Promise<T>;
          try {
            promise = call(client, (this.#controllers[slot] as AbortController).signal, callOptions);
          } catch (err) {
            promise = Promise.reject(err);
          }
          promise.then(
            (value) => this.#answered(slot, shard, value),
            (err: unknown) => this.#failed(slot, shard, client, err),
          );
        });
      },
    );
  }

  #answered(slot: number, shard: number, value: T): void {
    if (!this.#close(slot)) return;
    this.#values[slot] = value;
    this.#set.observe(shard, this.#tookMs[slot] as number, true);
    this.#complete();
  }

  #failed(slot: number, shard: number, client: ShardClient, err: unknown): void {
    if (!this.#close(slot)) return;
    const signal = this.#signal;
    if (signal?.aborted) {
      this.#control?.fail(abortError(signal));
      return;
    }
    const failure = shardFailure(client, err);
    if (failsWholeCall(failure)) {
      this.#set.observe(shard, this.#tookMs[slot] as number, true);
      this.#control?.fail(failure);
      return;
    }
    this.#lose(slot, shard, failure);
  }

  #onDeadline(): void {
    this.#shards.forEach((shard, slot) => {
      if (!this.#close(slot)) return;
      const failure = createError(
        'RAGWAY_ERR_DEADLINE_EXCEEDED',
        `${this.#set.client(shard).name}: no answer before the deadline (waited ${Math.round(this.#tookMs[slot] as number)} ms)`,
      );
      this.#controllers[slot]?.abort(failure);
      this.#lose(slot, shard, failure);
    });
  }

  /** Marks a slot done; false when it already was (a late answer after the deadline). */
  #close(slot: number): boolean {
    if (this.#control?.settled === true || this.#finished[slot]) return false;
    this.#finished[slot] = true;
    this.#pending -= 1;
    this.#tookMs[slot] = performance.now() - (this.#started[slot] as number);
    return true;
  }

  #complete(): void {
    const control = this.#control;
    if (control === undefined || control.settled || this.#pending > 0) return;
    this.#missing.sort((a, b) => a.shard - b.shard);
    if (this.#missing.length === this.#shards.length) control.fail(nothingAnswered(this.#operation, this.#missing));
    else control.settle({ values: this.#values, tookMs: this.#tookMs, missing: this.#missing });
  }

  #lose(slot: number, shard: number, failure: RagwayError): void {
    this.#set.observe(shard, this.#tookMs[slot] as number, false);
    this.#missing.push({ shard, code: failure.code, reason: failure.message });
    if (this.#policy.requireComplete) this.#control?.fail(incompleteError(this.#requirement, [failure]));
    else this.#complete();
  }
}

/** Writes run to completion on every shard, so the error can say exactly what was applied. */
export async function writeAll<G, R extends object>(
  set: ShardSet,
  operation: string,
  groups: ReadonlyMap<number, G>,
  call: (client: ShardClient, group: G, signal: AbortSignal | undefined, options: ShardCallOptions | undefined) => Promise<R>,
  signal: AbortSignal | undefined,
  callOptions: ShardCallOptions | undefined,
): Promise<Map<number, { value: R; acks: ReplicaAck[] }>> {
  const entries = [...groups.entries()];
  const settled = await Promise.allSettled(
    entries.map(async ([shard, group]) => {
      const client = set.client(shard);
      const started = performance.now();
      let value: R;
      try {
        value = await call(client, group, signal, callOptions);
      } catch (err) {
        if (signal?.aborted) throw abortError(signal);
        const failure = shardFailure(client, err);
        set.observe(shard, performance.now() - started, failsWholeCall(failure));
        throw failure;
      }
      set.observe(shard, performance.now() - started, true);
      return { value, acks: acksOf(client, value) };
    }),
  );
  const results = new Map<number, { value: R; acks: ReplicaAck[] }>();
  let firstFailure: RagwayError | undefined;
  settled.forEach((outcome, index) => {
    const shard = entries[index]?.[0];
    if (shard === undefined) return;
    if (outcome.status === 'fulfilled') results.set(shard, outcome.value);
    else firstFailure ??= outcome.reason as RagwayError;
  });
  if (firstFailure === undefined) return results;
  if (signal?.aborted) throw abortError(signal);
  if (failsWholeCall(firstFailure)) throw firstFailure;
  throw createError(
    firstFailure.code === 'RAGWAY_ERR_DEADLINE_EXCEEDED' ? 'RAGWAY_ERR_DEADLINE_EXCEEDED' : 'RAGWAY_ERR_SHARD_UNAVAILABLE',
    `${operation} reached ${results.size} of ${entries.length} shards (it is idempotent; retry it): ${firstFailure.message}`,
    { cause: firstFailure, retryAfterSeconds: 1 },
  );
}

/** Replica acknowledgements of a write: a replica set reports them; a plain client is its own one replica. */
function acksOf(client: ShardClient, response: object): ReplicaAck[] {
  const replicas = (response as { replicas?: unknown }).replicas;
  if (Array.isArray(replicas)) return replicas as ReplicaAck[];
  const url = (client as { url?: unknown }).url;
  return [{ url: typeof url === 'string' ? url : client.name, ok: true }];
}

/**
 * The request's own fault (a 4xx: every shard would say the same) or a failure in this process
 * before the shard answered (RAGWAY_ERR_INTERNAL, see replica-failure.ts): not a shard outage,
 * so not a partial answer either.
 */
function failsWholeCall(failure: RagwayError): boolean {
  return failure.statusCode < 500 || failure.code === 'RAGWAY_ERR_INTERNAL';
}

/**
 * A shard's 4xx and a local RAGWAY_ERR_INTERNAL pass unchanged; a missed deadline stays a deadline (504); anything else
 * becomes 503 naming the shard, with the cause. Errors that already name the shard
 * (HttpShardClient's, ReplicaSet's) are not wrapped twice.
 */
function shardFailure(client: ShardClient, err: unknown): RagwayError {
  // A client that reports "closed" while our caller is still here gave up on its own: transient.
  if (isRagwayError(err) && err.statusCode < 500 && err.code !== 'RAGWAY_ERR_CLIENT_CLOSED') return err;
  if (isRagwayError(err) && err.code === 'RAGWAY_ERR_INTERNAL') return err;
  let detail: string;
  if (err instanceof Error && err.message.startsWith(client.name)) {
    detail = err.message;
  } else if (isRagwayError(err)) {
    detail = `${client.name} failed: ${err.code}: ${err.message}`;
  } else {
    detail = `${client.name} failed: ${err instanceof Error ? err.message || err.name : String(err)}`;
  }
  if (isRagwayError(err) && err.code === 'RAGWAY_ERR_DEADLINE_EXCEEDED') {
    return createError('RAGWAY_ERR_DEADLINE_EXCEEDED', detail, { cause: err });
  }
  return createError('RAGWAY_ERR_SHARD_UNAVAILABLE', detail, { cause: err, retryAfterSeconds: 1 });
}
