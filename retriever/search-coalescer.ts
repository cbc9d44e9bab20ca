// Coalesces concurrent searches into one batch request per shard. Queries leave the
// embedding batcher together (a whole batch resolves in one turn of the event loop), so
// collecting them until the next turn and sending them as one multi-query request per shard
// turns N×shards HTTP calls into shards calls, with no added wait beyond that turn.
//
// A caller that aborts is released at once; the shared request carries on for the others.
// A 4xx for a multi-query batch (one bad query poisons a shared request) is retried query
// by query, so one caller's mistake never fails its neighbours.
//
// Callers that require a complete answer share batches with those that accept a partial one:
// the batch is sent allowing partial answers (unless every caller in it requires complete ones,
// which keeps the fail-fast abort), and each caller that required completeness turns a partial
// result into its own 503/504. Splitting batches by that flag would halve batching for nothing:
// the shard requests are the same either way.
//
// Deadlines: a batch runs to the earliest deadline among its callers, so nobody waits past
// their own. Callers coalesced in one event-loop turn almost always share the configured budget
// (their deadlines differ by the microseconds between arrivals), so a later caller loses at most
// that difference; one with a much longer budget may see a shard reported missing a little early
// rather than have the early caller wait past its deadline.
import { abortError, createError, isRagwayError, throwIfAborted } from '../core/errors.js';
import type { IncludeOptions, Scatter, ScatterQuery, ScatterSearchResult, SearchOptions } from './scatter.js';
import { MAX_QUERIES_PER_REQUEST, coverageError } from './scatter.js';
import { formatNamespaceScope } from '../shards/access.js';
import type { ShardCallTrace } from './call-trace.js';

interface Pending {
  query: ScatterQuery;
  signal: AbortSignal | undefined;
  deadline: number | undefined;
  requireComplete: boolean;
  trace: ShardCallTrace | undefined;
  resolve: (result: ScatterSearchResult) => void;
  reject: (err: unknown) => void;
  settled: boolean;
  cleanup: () => void;
}

export interface CoalescerOptions {
  /** Most queries in one shard request. */
  maxBatch?: number;
  /** Called with the size of every batch sent (for metrics). */
  onBatch?: (queries: number) => void;
}

export class SearchCoalescer {
  readonly #scatter: Scatter;
  readonly #maxBatch: number;
  readonly #onBatch: ((queries: number) => void) | undefined;
  /**
   * Pending queries grouped by their include options (a shard request has one setting) and by
   * the callers' namespace scope (`options.namespaces`): only queries of one scope share a
   * batch, and the batch carries that scope, so a shard judges every query by the key that asked it.
   */
  #groups = new Map<string, { include: IncludeOptions; namespaces: readonly string[] | undefined; pending: Pending[] }>();
  #immediate: NodeJS.Immediate | undefined;

  constructor(scatter: Scatter, options: CoalescerOptions = {}) {
    this.#scatter = scatter;
    this.#maxBatch = Math.min(options.maxBatch ?? 64, MAX_QUERIES_PER_REQUEST);
    this.#onBatch = options.onBatch;
  }

  search(vector: Float32Array | undefined, options: SearchOptions, signal?: AbortSignal): Promise<ScatterSearchResult> {
    throwIfAborted(signal);
    const { k, namespace, filter, ef, lexical, ids, deadline, requireComplete, namespaces, trace, ...include } = options;
    const query: ScatterQuery = { vector, k, namespace };
    if (lexical !== undefined) query.lexical = lexical;
    if (ids !== undefined) query.ids = ids;
    if (filter !== undefined) query.filter = filter;
    if (ef !== undefined) query.ef = ef;
    // Patterns never contain a comma (NAMESPACE_PATTERN_RE), so the joined list names the scope exactly.
    const scope = namespaces === undefined ? '-' : `=${formatNamespaceScope(namespaces)}`;
    const key = `${include.includeText !== false}:${include.includeMetadata !== false}:${include.includeVectors === true}:${scope}`;

    return new Promise<ScatterSearchResult>((resolve, reject) => {
      const onAbort = (): void => {
        if (pending.settled) return;
        pending.settled = true;
        reject(abortError(signal as AbortSignal));
      };
      const pending: Pending = {
        query,
        signal,
        deadline,
        requireComplete: requireComplete === true,
        trace,
        resolve: (result) => {
          if (pending.settled) return;
          pending.settled = true;
          pending.cleanup();
          resolve(result);
        },
        reject: (err) => {
          if (pending.settled) return;
          pending.settled = true;
          pending.cleanup();
          reject(err);
        },
        settled: false,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let group = this.#groups.get(key);
      if (group === undefined) {
        group = { include, namespaces, pending: [] };
        this.#groups.set(key, group);
      }
      group.pending.push(pending);
      this.#immediate ??= setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    this.#immediate = undefined;
    const groups = this.#groups;
    this.#groups = new Map();
    for (const { include, namespaces, pending } of groups.values()) {
      const live = pending.filter((entry) => !entry.settled);
      for (let start = 0; start < live.length; start += this.#maxBatch) {
        void this.#send(live.slice(start, start + this.#maxBatch), include, namespaces);
      }
    }
  }

  async #send(entries: Pending[], include: IncludeOptions, namespaces: readonly string[] | undefined): Promise<void> {
    // A caller whose deadline passed while queued fails alone; it must not shorten the batch's.
    const now = Date.now();
    const batch = entries.filter((entry) => {
      if (entry.deadline === undefined || entry.deadline > now) return true;
      entry.reject(createError('RAGWAY_ERR_DEADLINE_EXCEEDED', 'search: the deadline passed before any shard was asked'));
      return false;
    });
    if (batch.length === 0) return;
    this.#onBatch?.(batch.length);
    // The shared request is cancelled only when every caller in it has gone.
    const controller = new AbortController();
    let waiting = batch.length;
    const onCallerAbort = (): void => {
      waiting -= 1;
      if (waiting === 0) controller.abort(abortError(batch[0]?.signal ?? controller.signal));
    };
    for (const entry of batch) entry.signal?.addEventListener('abort', onCallerAbort, { once: true });
    let deadline: number | undefined;
    for (const entry of batch) {
      if (entry.deadline !== undefined) deadline = deadline === undefined ? entry.deadline : Math.min(deadline, entry.deadline);
    }
    const trace = batchTrace(batch);
    try {
      const result = await this.#scatter.searchBatch(
        batch.map((entry) => entry.query),
        {
          ...include,
          ...(deadline !== undefined ? { deadline } : {}),
          ...(namespaces !== undefined ? { namespaces } : {}),
          requireComplete: batch.every((entry) => entry.requireComplete),
          ...(trace !== undefined ? { trace } : {}),
        },
        controller.signal,
      );
      const incomplete = coverageError(result.coverage);
      batch.forEach((entry, index) => {
        if (entry.requireComplete && incomplete !== undefined) {
          entry.reject(incomplete);
          return;
        }
        const hits = result.results[index] ?? { hits: [], namespaceFound: false };
        entry.resolve({ ...hits, coverage: result.coverage, epochs: result.epochs, tookMs: result.tookMs });
      });
    } catch (err) {
      if (batch.length > 1 && isRagwayError(err) && err.statusCode < 500) {
        await Promise.all(batch.map((entry) => this.#send([entry], include, namespaces)));
        return;
      }
      for (const entry of batch) entry.reject(err);
    } finally {
      for (const entry of batch) entry.signal?.removeEventListener('abort', onCallerAbort);
    }
  }
}

/** The shard calls of a shared batch belong to its first traced caller, linked to the others'. */
function batchTrace(batch: readonly Pending[]): ShardCallTrace | undefined {
  const traces = batch.flatMap((entry) => (entry.trace === undefined ? [] : [entry.trace]));
  const [first, ...others] = traces;
  return first === undefined || others.length === 0 ? first : first.joinedWith(others);
}
