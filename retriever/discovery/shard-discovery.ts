// Follows a DNS name's records and keeps each shard's replica set in step with them, so
// replicas that appear, move or go are followed without restarting the gateway.
//
// Each round resolves the name (dns-endpoints.ts), then:
// - an address no longer listed leaves its set (drained: calls in flight finish first);
// - a listed address that is not a member yet is asked for its stats: it must speak this
//   gateway's protocol and dimension and report which shard it holds (`ragway shard
//   --shard-index`); it then joins that shard's set, which reads from it once a probe finds it
//   ready. An address that reports no shard, or one beyond the spec's `shards=N`, is logged and
//   not used (asked again next round, logged again only if its answer changes);
// - a member whose stats now report another shard leaves and is placed again as a new address.
// A lookup that fails, or finds no address at all, changes nothing: the last known membership
// stays (and is logged), so a DNS outage never empties the cluster. A shard left with no
// replica is a coverage gap in answers, never silently dropped: the shard count comes from the
// spec, not from what DNS returned.
import { abortError, createError, isRagwayError } from '../../core/errors.js';
import { checkShard } from '../check-shard.js';
import { describe } from '../replica-failure.js';
import type { ReplicaSet } from '../replica-set.js';
import type { ShardClient } from '../shard-client.js';
import { DnsLookup, type DnsShardSource } from './dns-endpoints.js';

export type DiscoveryLog = (level: 'info' | 'warn', message: string) => void;

export interface ShardDiscoveryOptions {
  source: DnsShardSource;
  /** One set per shard, by index (`source.shards` of them), built with `discovered: true`. */
  sets: readonly ReplicaSet[];
  /** DNS servers ("ip" or "ip:port"); empty: the system's. */
  servers: readonly string[];
  /** Time between the end of one round and the start of the next. */
  refreshMs: number;
  /** Limit on one DNS query (c-ares tries twice). */
  lookupTimeoutMs: number;
  /** Limit on asking a new address for its stats. */
  identifyTimeoutMs: number;
  /** The embedding dimension every replica must hold. */
  expectedDim: number;
  /** A client for a replica URL, labelled `label` in its errors ("shard-1"). */
  client: (url: string, label: string) => ShardClient;
  log: DiscoveryLog;
}

/** What one round saw, for tests and logs. */
export interface DiscoveryRound {
  /** Addresses the lookup returned; undefined when it failed. */
  resolved: string[] | undefined;
  joined: string[];
  left: string[];
  /** Addresses listed but not used, and why. */
  notUsed: Map<string, string>;
  /** Set when the lookup failed or came back empty (membership was kept). */
  kept?: string;
}

/** What discovery is doing, for GET /v1/cluster. */
export interface DiscoveryStatus {
  spec: string;
  refresh_ms: number;
  /** When the last round ended (ms since the epoch); null before the first. */
  last_round_at_ms: number | null;
  /** Addresses the last successful lookup returned; null before one succeeded. */
  addresses: number | null;
  /** Why the last lookup changed nothing (failed, or no records): membership was kept. */
  problem: string | null;
  /** Listed addresses that are not used, and why. */
  not_used: Array<{ url: string; reason: string }>;
}

export class ShardDiscovery {
  readonly #options: ShardDiscoveryOptions;
  readonly #lookup: DnsLookup;
  readonly #closing = new AbortController();
  /** Addresses listed but not used, with the reason last logged. */
  readonly #notUsed = new Map<string, string>();
  /** Removals still draining (awaited by close()). */
  readonly #draining = new Set<Promise<unknown>>();
  #round: Promise<DiscoveryRound> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lookupProblem: string | undefined;
  #started = false;
  #lastRoundAt: number | null = null;
  #addresses: number | null = null;

  constructor(options: ShardDiscoveryOptions) {
    if (options.sets.length !== options.source.shards) {
      throw createError('RAGWAY_ERR_INTERNAL', `discovery needs ${options.source.shards} replica sets, got ${options.sets.length}`);
    }
    this.#options = options;
    this.#lookup = new DnsLookup(options.servers, options.lookupTimeoutMs);
  }

  /** One round now; joins the round already running, if any. */
  refresh(signal?: AbortSignal): Promise<DiscoveryRound> {
    if (this.#closing.signal.aborted) return Promise.reject(abortError(this.#closing.signal));
    this.#round ??= this.#runRound(signal === undefined ? this.#closing.signal : AbortSignal.any([signal, this.#closing.signal])).finally(() => {
      this.#round = undefined;
      this.#lastRoundAt = Date.now();
    });
    return this.#round;
  }

  status(): DiscoveryStatus {
    return {
      spec: this.#options.source.spec,
      refresh_ms: this.#options.refreshMs,
      last_round_at_ms: this.#lastRoundAt,
      addresses: this.#addresses,
      problem: this.#lookupProblem ?? null,
      not_used: [...this.#notUsed].map(([url, reason]) => ({ url, reason })),
    };
  }

  /** Re-resolves every `refreshMs` from now on (unref'd timers: never keeps the process alive). Idempotent. */
  start(): void {
    if (this.#started || this.#closing.signal.aborted) return;
    this.#started = true;
    this.#schedule();
  }

  /** Stops the refresh, abandons a round under way, and waits for replicas still draining. */
  async close(): Promise<void> {
    this.#closing.abort(createError('RAGWAY_ERR_CLIENT_CLOSED', 'shard discovery closed'));
    clearTimeout(this.#timer);
    await this.#round?.catch(() => undefined);
    await Promise.allSettled([...this.#draining]);
  }

  #schedule(): void {
    if (this.#closing.signal.aborted) return;
    this.#timer = setTimeout(() => {
      void this.refresh()
        .catch((err: unknown) => {
          if (!this.#closing.signal.aborted) this.#options.log('warn', `shard discovery round failed: ${describe(err)}`);
        })
        .finally(() => this.#schedule());
    }, this.#options.refreshMs);
    this.#timer.unref();
  }

  async #runRound(signal: AbortSignal): Promise<DiscoveryRound> {
    const { source, sets, log } = this.#options;
    const round: DiscoveryRound = { resolved: undefined, joined: [], left: [], notUsed: new Map() };
    let urls: string[];
    try {
      urls = await this.#lookup.endpoints(source, signal);
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      round.kept = `lookup of ${source.name} failed: ${describe(err)}`;
      this.#lookupFailed(round.kept);
      return round;
    }
    round.resolved = urls;
    this.#addresses = urls.length;
    if (urls.length === 0) {
      round.kept = `${source.name} has no ${source.record === 'srv' ? 'SRV' : 'A/AAAA'} records`;
      this.#lookupFailed(round.kept);
      return round;
    }
    if (this.#lookupProblem !== undefined) log('info', `shard discovery: ${source.name} resolves again (${urls.length} addresses)`);
    this.#lookupProblem = undefined;

    const listed = new Set(urls);
    for (const url of this.#notUsed.keys()) if (!listed.has(url)) this.#notUsed.delete(url);
    const members = new Set<string>();
    for (const set of sets) {
      for (const url of set.urls) {
        const reported = set.reportedShardIndex(url);
        if (!listed.has(url)) {
          this.#leave(set, url, 'no longer in DNS');
          round.left.push(url);
        } else if (reported !== undefined && reported !== set.shard) {
          this.#leave(set, url, `it now reports shard ${reported}`);
          round.left.push(url);
        } else {
          members.add(url);
        }
      }
    }
    const fresh = urls.filter((url) => !members.has(url));
    await Promise.all(fresh.map((url) => this.#place(url, round, signal)));
    if (signal.aborted) throw abortError(signal);
    for (const url of fresh) {
      const reason = this.#notUsed.get(url);
      if (reason !== undefined) round.notUsed.set(url, reason);
    }
    return round;
  }

  #lookupFailed(problem: string): void {
    const known = this.#options.sets.reduce((sum, set) => sum + set.urls.length, 0);
    if (problem !== this.#lookupProblem) {
      this.#options.log('warn', `shard discovery: ${problem}; keeping the last known membership (${known} replicas)`);
    }
    this.#lookupProblem = problem;
  }

  #leave(set: ReplicaSet, url: string, why: string): void {
    this.#options.log('info', `shard discovery: ${url} leaves ${set.label} (${why}); calls in flight to it finish first`);
    const drained = set.removeReplica(url).finally(() => this.#draining.delete(drained));
    this.#draining.add(drained);
  }

  /** Asks a new address which shard it holds and adds it there, or says why it is not used. */
  async #place(url: string, round: DiscoveryRound, signal: AbortSignal): Promise<void> {
    const { sets, source, expectedDim, identifyTimeoutMs } = this.#options;
    const probe = this.#options.client(url, 'discovered shard');
    let shard: number | undefined;
    try {
      const stats = await checkShard(probe, expectedDim, AbortSignal.any([signal, AbortSignal.timeout(identifyTimeoutMs)]));
      if (stats.shard_index === undefined) {
        this.#notUse(url, 'it reports no shard index (start it with `ragway shard --shard-index N`)');
      } else if (stats.shard_index >= source.shards) {
        this.#notUse(url, `it reports shard ${stats.shard_index}, but ${source.spec} says there are ${source.shards} shards`);
      } else {
        shard = stats.shard_index;
      }
    } catch (err) {
      if (signal.aborted) return;
      // Not reachable yet (a pod still starting), or the wrong protocol or dimension (checkShard's
      // own NOT_READY: a shard's 5xx reaches here as SHARD_UNAVAILABLE).
      const wrong = ['RAGWAY_ERR_PROTOCOL_MISMATCH', 'RAGWAY_ERR_NOT_READY'];
      const fatal = isRagwayError(err) && (wrong.includes(err.code) || err.statusCode < 500);
      this.#notUse(url, fatal ? describe(err) : `it does not answer yet: ${describe(err)}`);
    } finally {
      await probe.close();
    }
    if (shard === undefined || signal.aborted) return;
    const set = sets[shard] as ReplicaSet;
    const member = this.#options.client(url, set.label);
    if (!set.addReplica(member)) {
      await member.close();
      return;
    }
    this.#notUsed.delete(url);
    round.joined.push(url);
    this.#options.log('info', `shard discovery: ${url} joins ${set.label} (read from once it is ready)`);
  }

  #notUse(url: string, reason: string): void {
    if (this.#notUsed.get(url) !== reason) this.#options.log('warn', `shard discovery: not using ${url}: ${reason}`);
    this.#notUsed.set(url, reason);
  }
}
