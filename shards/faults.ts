// Fault injection for tests and benchmarks: a shard started with faults enabled (the CLI
// does so only under RAGWAY_FAULTS=1) serves GET/POST /v1/faults and, on the routes the
// settings name, delays, fails or drops requests at the configured rates. One injector per
// app, so two shards in one process (tests) never share settings.
import type { FaultRoute, FaultSettings } from './protocol.js';

export interface FaultPlan {
  delayMs: number;
  /** Destroy the socket without a response. */
  drop: boolean;
  /** Answer 500 RAGWAY_ERR_INTERNAL "injected fault". */
  fail: boolean;
}

const DEFAULT_ROUTES: readonly FaultRoute[] = ['search'];

export class FaultInjector {
  #settings: FaultSettings = {};
  readonly #random: () => number;

  /** `random` is injectable so a test can make every roll deterministic. */
  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  get settings(): FaultSettings {
    return structuredClone(this.#settings);
  }

  /** Replaces the settings wholesale (an empty object turns every fault off); returns them. */
  set(settings: FaultSettings): FaultSettings {
    this.#settings = structuredClone(settings);
    return this.settings;
  }

  /** What to do to one request on `route`; undefined when nothing applies. */
  plan(route: FaultRoute): FaultPlan | undefined {
    const settings = this.#settings;
    if (!(settings.routes ?? DEFAULT_ROUTES).includes(route)) return undefined;
    const roll = (probability: number | undefined): boolean => probability !== undefined && probability > 0 && this.#random() < probability;
    const delayMs = (settings.delay_ms ?? 0) > 0 && roll(settings.delay_probability ?? 1) ? (settings.delay_ms as number) : 0;
    const drop = roll(settings.drop_probability);
    const fail = !drop && roll(settings.fail_probability);
    if (delayMs === 0 && !drop && !fail) return undefined;
    return { delayMs, drop, fail };
  }
}
