// When a store snapshots: some time after the first write since the last snapshot, or soon
// once enough writes were logged. Writes are durable in the log either way; snapshots bound
// replay at start and let the log be truncated.

export interface SnapshotScheduleOptions {
  intervalMs: number;
  everyWrites: number;
  /** Runs the snapshot (the store's flush); errors go to onError. */
  snapshot: () => void;
  onError: (err: unknown) => void;
}

export class SnapshotSchedule {
  private dirtyNow = false;
  private writes = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The pending timer is the "snapshot now" one (write count reached), not the interval one. */
  private soon = false;
  private stopped = false;

  constructor(private readonly options: SnapshotScheduleOptions) {}

  get dirty(): boolean {
    return this.dirtyNow;
  }

  /** A logged write (or `count` replayed ones) happened. */
  wrote(count = 1): void {
    this.writes += count;
    this.markDirty();
  }

  /** Something changed that is not in the log (an import): the next snapshot must include it. */
  markDirty(): void {
    this.dirtyNow = true;
    if (this.stopped) return;
    const { everyWrites, intervalMs } = this.options;
    if (everyWrites > 0 && this.writes >= everyWrites) {
      // Soon, not inside the write: the caller's response should not wait for a snapshot.
      this.arm(0);
      return;
    }
    // Not re-armed per write: a steady stream of writes must still be snapshotted every interval.
    if (intervalMs > 0 && this.timer === undefined) this.arm(intervalMs);
  }

  /** A snapshot was written: nothing is pending. */
  saved(): void {
    this.clear();
    this.dirtyNow = false;
    this.writes = 0;
  }

  /** No more timed snapshots (the store is closing). */
  stop(): void {
    this.stopped = true;
    this.clear();
  }

  clear(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.soon = false;
  }

  private arm(delayMs: number): void {
    if (this.timer !== undefined) {
      if (delayMs > 0 || this.soon) return;
      clearTimeout(this.timer);
    }
    this.soon = delayMs === 0;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.soon = false;
      try {
        this.options.snapshot();
      } catch (err) {
        this.options.onError(err);
      }
    }, delayMs);
    // A pending snapshot must not keep a finished process alive; close() snapshots explicitly.
    this.timer.unref();
  }
}
