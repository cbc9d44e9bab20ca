// One read (search, document lookup, stats) from a replica set: sent to ONE replica picked by
// replicaChoice; a transient failure moves it to another replica within the caller's deadline,
// a 4xx returns at once, and when nothing is left the error lists every replica's reason. A
// hedgeable read (a search) still unanswered after the hedge delay goes to a second replica
// too: the first answer wins and the other call is aborted. When no readable replica is left,
// the others are rechecked now and read from if they turn out ready (panic routing), so a 503
// means that no replica could answer, not that the gateway stopped asking.
import { abortError, createError, type RagwayError } from '../core/errors.js';
import type { HedgePolicy } from './hedge-policy.js';
import { race, type RaceControl } from './race.js';
import type { Replica } from './replica.js';
import { panicCandidates, pickReplica } from './replica-choice.js';
import { classify, describeFailure, type ReplicaMessages } from './replica-failure.js';
import type { ReplicaMembership } from './replica-membership.js';
import type { ReplicaCallOutcome, ReplicaSetCounters, ReplicaSetObserver } from './replica-types.js';
import type { ShardCallOptions, ShardClient } from './shard-client.js';
import type { ShardCallResult, ShardCallSpan } from './call-trace.js';

export type ReplicaCall<T> = (client: ShardClient, signal: AbortSignal, options: ShardCallOptions | undefined) => Promise<T>;

/** What a read needs from its replica set. */
export interface ReadContext {
  shard: number;
  label: string;
  membership: ReplicaMembership;
  hedge: HedgePolicy;
  messages: ReplicaMessages;
  counters: ReplicaSetCounters;
  random: () => number;
  emit: (hook: (observer: ReplicaSetObserver) => void) => void;
}

export interface ReadRequest<T> {
  operation: string;
  call: ReplicaCall<T>;
  signal: AbortSignal | undefined;
  options: ShardCallOptions | undefined;
  /** Searches are hedged and feed the latency windows; lookups and stats are not. */
  hedgeable: boolean;
}

interface Attempt {
  replica: Replica;
  controller: AbortController;
  started: number;
  hedge: boolean;
  /** Given up on by us (another attempt won, the caller left, the deadline passed). */
  cancelled: boolean;
  /** What the call is sent with: the read's deadline, and this attempt's trace headers. */
  options: ShardCallOptions | undefined;
  /** Tracing on only. */
  span: ShardCallSpan | undefined;
}

/** A replica out of rotation that a panic recheck found still unable to serve: why, for the message. */
class Unservable {
  constructor(readonly reason: string) {}
}

export function hedgedRead<T>(context: ReadContext, request: ReadRequest<T>): Promise<T> {
  const { signal } = request;
  // Rejections, never synchronous throws: callers treat every ShardClient call as async.
  if (signal?.aborted) return Promise.reject(abortError(signal));
  const deadline = request.options?.deadline;
  const started = performance.now();
  if (deadline !== undefined && Date.now() >= deadline) {
    return Promise.reject(context.messages.deadline(request.operation, started, []));
  }
  if (request.hedgeable) {
    context.counters.searches += 1;
    context.hedge.earn();
  }
  return new HedgedRead(context, request, deadline, started).run();
}

/** The state of one read while it runs: the replicas tried, the calls in flight, what failed. */
class HedgedRead<T> {
  readonly #context: ReadContext;
  readonly #request: ReadRequest<T>;
  readonly #deadline: number | undefined;
  readonly #perCall: ShardCallOptions | undefined;
  readonly #started: number;
  readonly #tried = new Set<Replica>();
  readonly #attempts = new Set<Attempt>();
  readonly #failures: string[] = [];
  #control: RaceControl<T> | undefined;

  constructor(context: ReadContext, request: ReadRequest<T>, deadline: number | undefined, started: number) {
    this.#context = context;
    this.#request = request;
    this.#deadline = deadline;
    // Passed on whole: the namespaces in it are what the shard judges the call by.
    this.#perCall = request.options;
    this.#started = started;
  }

  run(): Promise<T> {
    return race<T>(
      {
        signal: this.#request.signal,
        deadline: this.#deadline,
        onDeadline: () => this.#fail(this.#deadlineError()),
        cancel: (reason) => this.#cancelAll(reason),
      },
      (control) => {
        this.#control = control;
        this.#start(control);
      },
    );
  }

  #start(control: RaceControl<T>): void {
    const { hedge, counters } = this.#context;
    if (!this.#launch(false)) {
      control.fail(this.#unavailableError());
      return;
    }
    const hedgeDelay = this.#request.hedgeable ? hedge.delayMs : undefined;
    const deadline = this.#deadline;
    if (hedgeDelay === undefined || (deadline !== undefined && Date.now() + hedgeDelay >= deadline)) return;
    control.timer(hedgeDelay, () => {
      if (control.settled || this.#attempts.size === 0 || !hedge.affordable) return;
      if (this.#pick() === undefined) return;
      hedge.spend();
      counters.hedges += 1;
      this.#context.emit((observer) => observer.onHedge?.(this.#context.shard));
      this.#launch(true);
    });
  }

  get #settled(): boolean {
    return this.#control?.settled ?? false;
  }

  #fail(err: RagwayError): void {
    this.#control?.fail(err);
  }

  #pick(): Replica | undefined {
    return pickReplica(this.#context.membership.replicas, this.#tried, this.#context.random);
  }

  #cancelAll(reason: unknown): void {
    for (const attempt of this.#attempts) {
      attempt.cancelled = true;
      attempt.controller.abort(reason);
    }
  }

  #endAttempt(attempt: Attempt, result: ShardCallResult, error?: unknown): number {
    this.#attempts.delete(attempt);
    attempt.replica.inFlight -= 1;
    if (attempt.span !== undefined) {
      const cancelled = attempt.cancelled || this.#settled;
      // Read before settling: a hedge that answers first is the one that wins.
      attempt.span.end(cancelled ? 'cancelled' : result, { hedgeWon: attempt.hedge && result === 'ok' && !cancelled, error });
    }
    return performance.now() - attempt.started;
  }

  /** Starts a call to the best replica not tried yet; false when there is none. Hedges never panic. */
  #launch(hedge: boolean): boolean {
    let replica = this.#pick();
    const panic = replica === undefined && !hedge;
    if (panic) replica = panicCandidates(this.#context.membership.replicas, this.#tried)[0];
    if (replica === undefined) return false;
    this.#tried.add(replica);
    const attempt: Attempt = { replica, controller: new AbortController(), started: performance.now(), hedge, cancelled: false, options: this.#perCall, span: undefined };
    const trace = this.#request.options?.trace;
    if (trace !== undefined) {
      const span = trace.startCall({ operation: this.#request.operation, shard: this.#context.shard, replica: replica.url, hedge });
      attempt.span = span;
      attempt.options = { ...this.#perCall, traceparent: span.traceparent, ...(span.tracestate !== undefined ? { tracestate: span.tracestate } : {}) };
    }
    this.#attempts.add(attempt);
    replica.inFlight += 1;
    let pending: Promise<T>;
    try {
      pending = panic ? this.#recheckThenCall(attempt) : this.#request.call(replica.client, attempt.controller.signal, attempt.options);
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (value) => this.#onSuccess(attempt, value),
      (err: unknown) => this.#onFailure(attempt, err),
    );
    return true;
  }

  /**
   * Out of rotation is what the last probe saw; ask again now (one contact shared by every read
   * that needs it) and read only from a replica that is ready — never from one still catching
   * up, whose answers would silently lack writes.
   */
  async #recheckThenCall(attempt: Attempt): Promise<T> {
    const { membership, messages } = this.#context;
    const { replica } = attempt;
    const error = await membership.recheck(replica);
    if (attempt.cancelled) throw createError('RAGWAY_ERR_CLIENT_CLOSED', `${this.#context.label}: the read ended during a recheck`);
    if (error !== undefined) throw new Unservable(describeFailure(replica, error));
    if (!replica.readable) throw new Unservable(messages.unreadableReason(replica));
    return this.#request.call(replica.client, attempt.controller.signal, attempt.options);
  }

  #onSuccess(attempt: Attempt, value: T): void {
    const elapsed = this.#endAttempt(attempt, 'ok');
    if (attempt.cancelled || this.#settled) {
      noteCancelled(attempt.replica, elapsed);
      this.#observe(attempt, elapsed, 'cancelled');
      return;
    }
    this.#observe(attempt, elapsed, 'ok');
    this.#recordSuccess(attempt.replica, elapsed);
    // The loser's answer is no longer wanted: free its connection and the shard's time. Most
    // reads have no loser, and an error (its stack) per shard call is not free.
    if (this.#attempts.size > 0) this.#cancelAll(createError('RAGWAY_ERR_CLIENT_CLOSED', `${this.#context.label}: another replica answered first`));
    this.#control?.settle(value);
    if (attempt.hedge) {
      this.#context.counters.hedgesWon += 1;
      this.#context.emit((observer) => observer.onHedgeWon?.(this.#context.shard));
    }
  }

  #onFailure(attempt: Attempt, err: unknown): void {
    const elapsed = this.#endAttempt(attempt, 'error', err);
    if (attempt.cancelled || this.#settled) {
      noteCancelled(attempt.replica, elapsed);
      this.#observe(attempt, elapsed, 'cancelled');
      return;
    }
    const { signal } = this.#request;
    if (signal?.aborted) {
      this.#observe(attempt, elapsed, 'cancelled');
      this.#fail(abortError(signal));
      return;
    }
    if (err instanceof Unservable) {
      // Already accounted for by the recheck (a failed contact counts there); just move on.
      this.#failures.push(err.reason);
      this.#next();
      return;
    }
    const kind = classify(err);
    // A 4xx is an answer (the caller's mistake); a local exception says nothing about the replica.
    if (kind !== 'local') this.#observe(attempt, elapsed, kind === 'fatal' ? 'ok' : 'error');
    if (kind === 'fatal') {
      // The replica answered, just not with data: it is alive.
      attempt.replica.consecutiveFailures = 0;
      attempt.replica.contactFailed = false;
      this.#fail(err as RagwayError);
      return;
    }
    if (kind === 'deadline') {
      this.#fail(this.#deadlineError());
      return;
    }
    if (kind === 'local') {
      this.#fail(this.#context.messages.local(this.#request.operation, err));
      return;
    }
    this.#failures.push(describeFailure(attempt.replica, err));
    this.#context.membership.recordFailure(attempt.replica, err);
    this.#next();
  }

  /** After a failure: wait for a hedge still running, else fail over, else give up. */
  #next(): void {
    // A hedge still running may yet answer; only when nothing is left do we move on.
    if (this.#attempts.size > 0) return;
    if (this.#launch(false)) {
      this.#context.counters.failovers += 1;
      return;
    }
    this.#fail(this.#unavailableError());
  }

  /** Per-replica call metrics, for searches (the calls whose latency the dashboards show). */
  #observe(attempt: Attempt, elapsedMs: number, outcome: ReplicaCallOutcome): void {
    // A call that ends after its replica left the set (discovery) is not reported: the replica's
    // series are gone by then, and reporting it would bring them back for good.
    if (!this.#request.hedgeable || attempt.replica.retired) return;
    const { shard } = this.#context;
    const { url } = attempt.replica;
    this.#context.emit((observer) => observer.onReplicaCall?.(shard, url, elapsedMs / 1000, outcome));
  }

  #recordSuccess(replica: Replica, elapsedMs: number): void {
    replica.noteAnswered();
    replica.observeLatency(elapsedMs, performance.now());
    if (this.#request.hedgeable) {
      replica.latencies.add(elapsedMs);
      this.#context.hedge.latencies.add(elapsedMs);
    }
  }

  #deadlineError(): RagwayError {
    return this.#context.messages.deadline(this.#request.operation, this.#started, this.#failures);
  }

  #unavailableError(): RagwayError {
    return this.#context.messages.unavailable(this.#request.operation, this.#tried, this.#failures);
  }
}

/**
 * A call given up on took at least `elapsedMs`: enough to raise a latency estimate that was
 * lower (so P2C stops favouring a replica that only ever loses hedges), never to lower one.
 */
function noteCancelled(replica: Replica, elapsedMs: number): void {
  if (replica.ewmaMs === undefined || elapsedMs > replica.ewmaMs) replica.observeLatency(elapsedMs, performance.now());
}
