// Single-flight for streamed answers: concurrent identical requests share one generation.
// The first caller starts the generator; every subscriber (the first included) replays the
// events produced so far and then receives new ones as they arrive, so a follower's
// time-to-first-token is no worse than the leader's.
//
// The source is read only when some subscriber is waiting for the next event, so the
// fastest reader paces the upstream (backpressure still works); slower subscribers read
// from the recorded events. The generation has its own AbortSignal, aborted only when every
// subscriber has gone — a leader that disconnects does not cancel what followers still read.
import { abortError } from '../../core/errors.js';
import type { GenerationEvent } from '../providers/provider.js';

class Broadcast {
  readonly events: GenerationEvent[] = [];
  finished = false;
  failure: { error: unknown } | undefined;
  readonly #controller = new AbortController();
  readonly #iterator: AsyncIterator<GenerationEvent>;
  readonly #onSettled: () => void;
  #pulling: Promise<void> | undefined;
  #subscribers = 0;
  #wakeups = new Set<() => void>();

  constructor(start: (signal: AbortSignal) => AsyncIterable<GenerationEvent>, onSettled: () => void) {
    this.#iterator = start(this.#controller.signal)[Symbol.asyncIterator]();
    this.#onSettled = onSettled;
  }

  /** Counted from subscription, not from the first read, so a subscriber about to read keeps the generation. */
  attach(): void {
    this.#subscribers += 1;
  }

  async *read(signal: AbortSignal | undefined): AsyncGenerator<GenerationEvent> {
    let next = 0;
    try {
      for (;;) {
        if (signal?.aborted) throw abortError(signal);
        while (next < this.events.length) {
          yield this.events[next] as GenerationEvent;
          next += 1;
        }
        if (this.failure !== undefined) throw this.failure.error;
        if (this.finished) return;
        await this.#pullOrWait(signal);
      }
    } finally {
      this.detach(signal);
    }
  }

  detach(signal: AbortSignal | undefined): void {
    this.#subscribers -= 1;
    if (this.#subscribers === 0 && !this.finished && this.failure === undefined) {
      // Everyone left: stop the generation and retire this broadcast, so a later identical
      // request starts afresh instead of joining a cancelled one.
      this.#controller.abort(signal?.reason);
      this.failure = { error: signal?.aborted ? abortError(signal) : new Error('generation abandoned') };
      this.#onSettled();
      void this.#iterator.return?.();
    }
  }

  /** The first waiting reader pulls one event from the source; the others wait for it. */
  async #pullOrWait(signal: AbortSignal | undefined): Promise<void> {
    this.#pulling ??= this.#pull();
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#wakeups.delete(wake);
        reject(abortError(signal as AbortSignal));
      };
      const wake = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.#wakeups.add(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async #pull(): Promise<void> {
    try {
      const result = await this.#iterator.next();
      if (result.done === true) this.finished = true;
      else this.events.push(result.value);
    } catch (error) {
      this.failure = { error };
    } finally {
      this.#pulling = undefined;
      if (this.finished || this.failure !== undefined) this.#onSettled();
      const wakeups = [...this.#wakeups];
      this.#wakeups.clear();
      for (const wake of wakeups) wake();
    }
  }
}

export interface SharedStream {
  events: AsyncIterable<GenerationEvent>;
  /** True when this caller joined a generation another caller started. */
  shared: boolean;
  /** Everything produced so far (complete once the stream has ended). */
  recorded: readonly GenerationEvent[];
  /** Leaves without ever reading `events` (the answer was abandoned before its first token). */
  release(): void;
}

export class SharedGenerations {
  readonly #running = new Map<string, Broadcast>();

  get inFlight(): number {
    return this.#running.size;
  }

  isRunning(key: string): boolean {
    return this.#running.has(key);
  }

  subscribe(key: string, start: (signal: AbortSignal) => AsyncIterable<GenerationEvent>, signal?: AbortSignal): SharedStream {
    let broadcast = this.#running.get(key);
    const shared = broadcast !== undefined;
    if (broadcast === undefined) {
      const created: Broadcast = new Broadcast(start, () => {
        if (this.#running.get(key) === created) this.#running.delete(key);
      });
      broadcast = created;
      this.#running.set(key, created);
    }
    const joined = broadcast;
    joined.attach();
    let reading = false;
    return {
      events: {
        [Symbol.asyncIterator]: () => {
          reading = true;
          return joined.read(signal);
        },
      },
      shared,
      recorded: joined.events,
      release: () => {
        if (reading) return;
        reading = true;
        joined.detach(signal);
      },
    };
  }
}
