// The race both the hedged read (replicas of one shard) and the scatter (shards of a set) run:
// several calls in flight, one outcome. It settles exactly once — with a value, or with an
// error that cancels whatever is still running — and never later than the caller's abort or
// the deadline. Timers and the abort listener are cleared when it settles, whichever way.
import { abortError, createError, isRagwayError, type RagwayError } from '../core/errors.js';

export interface RaceControl<T> {
  /** True once the race has an outcome; late answers check it and only tidy up. */
  readonly settled: boolean;
  /** Settles with a value; ignored once settled. */
  settle(value: T): void;
  /** Settles with an error after `cancel` has stopped what still runs; ignored once settled. */
  fail(err: RagwayError): void;
  /** A timer that is cleared when the race settles. */
  timer(ms: number, run: () => void): void;
}

export interface RaceOptions {
  signal?: AbortSignal | undefined;
  /** Absolute deadline (Date.now() ms): `onDeadline` runs then, unless settled before. */
  deadline?: number | undefined;
  onDeadline?: () => void;
  /** Called once, when the race fails, with the reason: abort the calls still in flight. */
  cancel: (reason: RagwayError) => void;
}

/** Runs `start` (which launches the calls) and resolves with the race's one outcome. */
export function race<T>(options: RaceOptions, start: (control: RaceControl<T>) => void): Promise<T> {
  const { signal, deadline, onDeadline, cancel } = options;
  return new Promise<T>((resolve, reject) => {
    const timers: NodeJS.Timeout[] = [];
    let settled = false;

    const finish = (): void => {
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const control: RaceControl<T> = {
      get settled() {
        return settled;
      },
      settle(value) {
        if (settled) return;
        finish();
        resolve(value);
      },
      fail(err) {
        if (settled) return;
        finish();
        cancel(err);
        reject(err);
      },
      timer(ms, run) {
        if (!settled) timers.push(setTimeout(run, ms));
      },
    };
    const onAbort = (): void => control.fail(abortError(signal as AbortSignal));

    signal?.addEventListener('abort', onAbort, { once: true });
    if (deadline !== undefined && onDeadline !== undefined) {
      // Whatever the calls below do, nobody waits past the deadline.
      control.timer(Math.max(0, deadline - Date.now()), onDeadline);
    }
    try {
      start(control);
    } catch (err) {
      control.fail(isRagwayError(err) ? err : createError('RAGWAY_ERR_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err }));
    }
  });
}
