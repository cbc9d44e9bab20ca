// The replica addresses a DNS name stands for. Two record kinds, as a Kubernetes headless
// Service publishes them: SRV records (`_shard._tcp.ragway-shard.<ns>.svc.cluster.local`) give
// each pod's own stable name and the port, so a replica keeps its URL across restarts; A/AAAA
// records give pod IPs, all on the one port the spec names. The resolver is node:dns's own
// (c-ares), pointed at the configured servers or the system's.
import { Resolver } from 'node:dns/promises';
import { abortError, throwIfAborted } from '../../core/errors.js';

export interface DnsShardSource {
  kind: 'dns';
  /** `srv`: hosts and ports from SRV records; `a`: A and AAAA records, each address on `port`. */
  record: 'srv' | 'a';
  /** The name looked up, e.g. `_shard._tcp.ragway-shard.ragway.svc.cluster.local`. */
  name: string;
  /** `a` records: the port every address serves on (unused for SRV, which carries its own). */
  port: number;
  /** How many shards there are: a shard with no address found shows as a coverage gap. */
  shards: number;
  scheme: 'http' | 'https';
  /** The spec as written, for messages. */
  spec: string;
}

/** Error codes that mean "this name has no such records", not "DNS failed". */
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);

export class DnsLookup {
  readonly #resolver: Resolver;

  /** `servers`: "ip" or "ip:port" entries; empty uses the system's resolvers. */
  constructor(servers: readonly string[], timeoutMs: number) {
    this.#resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
    if (servers.length > 0) this.#resolver.setServers([...servers]);
  }

  /** Base URLs, sorted and without duplicates; [] when the name has no records of the kind. */
  async endpoints(source: DnsShardSource, signal: AbortSignal): Promise<string[]> {
    throwIfAborted(signal);
    // c-ares takes no per-query signal: cancel() ends every query of this resolver, which is
    // only this lookup's (one discovery owns one resolver and runs one round at a time).
    const cancel = (): void => this.#resolver.cancel();
    signal.addEventListener('abort', cancel, { once: true });
    try {
      const urls = source.record === 'srv' ? await this.#srv(source) : await this.#addresses(source);
      return [...new Set(urls)].sort();
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      throw err;
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }

  async #srv(source: DnsShardSource): Promise<string[]> {
    let records: Awaited<ReturnType<Resolver['resolveSrv']>>;
    try {
      records = await this.#resolver.resolveSrv(source.name);
    } catch (err) {
      if (NO_RECORDS.has((err as NodeJS.ErrnoException).code ?? '')) return [];
      throw err;
    }
    return records.map((record) => `${source.scheme}://${hostPart(record.name.replace(/\.$/, ''))}:${record.port}`);
  }

  async #addresses(source: DnsShardSource): Promise<string[]> {
    const [v4, v6] = await Promise.allSettled([this.#resolver.resolve4(source.name), this.#resolver.resolve6(source.name)]);
    const found: string[] = [];
    const failures: unknown[] = [];
    for (const result of [v4, v6]) {
      if (result.status === 'fulfilled') found.push(...result.value);
      else if (!NO_RECORDS.has((result.reason as NodeJS.ErrnoException).code ?? '')) failures.push(result.reason);
    }
    // One family failing while the other answered is still an answer (many clusters are IPv4 only).
    if (found.length === 0 && failures.length > 0) throw failures[0];
    return found.map((address) => `${source.scheme}://${hostPart(address)}:${source.port}`);
  }
}

function hostPart(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
