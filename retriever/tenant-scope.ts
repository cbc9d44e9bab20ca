// The namespaces of the API key a request runs for, carried to every shard call it causes.
// AsyncLocalStorage rather than a parameter: the call passes through replica sets, hedges,
// retries and the coalescer, and a parameter dropped anywhere on that path would silently
// widen the scope. Here, a call sees the scope of the request it runs inside; the coalescer
// batches only queries of one scope together and sends each batch inside that scope. Work
// started outside any request (epoch polling, probes, /v1/cluster) has no scope and is the
// cluster's own. One instance per gateway app, no module-level state.
import { AsyncLocalStorage } from 'node:async_hooks';
import { formatNamespaceScope } from '../shards/access.js';

export class TenantScope {
  readonly #storage = new AsyncLocalStorage<string>();

  /** Runs `fn` with `patterns` as the scope of every shard call it makes; undefined = unrestricted. */
  run<T>(patterns: readonly string[] | undefined, fn: () => T): T {
    if (patterns === undefined) return this.#storage.exit(fn);
    return this.#storage.run(formatNamespaceScope(patterns), fn);
  }

  /** Same, with the header value as `current()` returned it. */
  runFormatted<T>(scope: string | undefined, fn: () => T): T {
    return scope === undefined ? this.#storage.exit(fn) : this.#storage.run(scope, fn);
  }

  /** The header value for the current call, or undefined outside any scoped request. */
  current(): string | undefined {
    return this.#storage.getStore();
  }
}
