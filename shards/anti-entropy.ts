// Anti-entropy between running replicas of a shard. A replica that misses writes while it
// stays up (a dropped connection, a timeout the gateway gave up on) is not caught up by a
// restart, because there is none; instead every replica compares what it holds with one
// peer per round, in the background, and pulls the documents it lacks or holds older.
//
// A round (the digests are described in digest-protocol.ts): ask the peer for its namespace
// digests — when they equal ours, that one request is the whole cost — then, for a namespace
// that differs, its 64 bucket digests, then for each bucket that differs its document
// hashes, then the documents whose hashes differ, merged by the ordinary last-writer-wins
// rules and logged. A document this replica holds newer is left alone here: the peer pulls
// it in its own round. Deletes converge the same way, since a tombstone's floor is part of
// the document's hash and of what is pulled.
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import { Agent } from 'undici';
import { abortError } from '../core/errors.js';
import { peerRequest } from './catch-up.js';
import {
  DIGEST_BUCKETS,
  DIGEST_PATHS,
  type BucketDigest,
  type DigestDocumentsResponse,
  type NamespaceDigest,
  type RootDigest,
} from './digest-protocol.js';
import type { IndexStore } from './index-store.js';
import type { AntiEntropyStats } from './protocol.js';

export interface AntiEntropyOptions {
  store: IndexStore;
  /** Base URLs of the other replicas, asked in turn (one per round). */
  peers: readonly string[];
  /** Pause between rounds; 0 means no background rounds (runOnce still works). */
  intervalMs: number;
  /** Per request (default 30 s). */
  requestTimeoutMs?: number;
  /** The cluster credential the peers require (sent in CLUSTER_TOKEN_HEADER). */
  clusterToken?: string | undefined;
  log?: (level: 'info' | 'warn', message: string) => void;
}

export interface RoundResult {
  peer: string;
  /** Documents whose hash differed from the peer's. */
  differences: number;
  /** Of those, documents the pull changed here. */
  repaired: number;
  requests: number;
}

/** Document ids per pull request. */
const PULL_BATCH = 256;
const YIELD_EVERY = 64;

export class AntiEntropy {
  readonly #options: AntiEntropyOptions;
  readonly #agent = new Agent({ connections: 2, keepAliveTimeout: 10_000 });
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #nextPeer = 0;
  #stats: AntiEntropyStats;

  constructor(options: AntiEntropyOptions) {
    this.#options = options;
    this.#stats = {
      interval_ms: options.intervalMs,
      rounds: 0,
      rounds_with_differences: 0,
      documents_repaired: 0,
      last_differences: 0,
      last_requests: 0,
      last_peer: null,
      last_sync_at_ms: null,
      last_duration_ms: null,
      last_error: null,
    };
  }

  get stats(): AntiEntropyStats {
    return { ...this.#stats };
  }

  /** Starts the background rounds (after the start-up catch-up: the caller decides when). */
  start(): void {
    if (this.#loop !== undefined || this.#options.intervalMs <= 0 || this.#options.peers.length === 0) return;
    const signal = this.#abort.signal;
    this.#loop = (async () => {
      while (!signal.aborted) {
        await sleep(this.#options.intervalMs, undefined, { signal }).catch(() => undefined);
        if (signal.aborted) break;
        await this.runOnce().catch(() => undefined);
      }
    })();
  }

  /** One round against the next peer; failures are recorded in the stats and rethrown. */
  async runOnce(): Promise<RoundResult | undefined> {
    const { store, peers } = this.#options;
    // A replica still catching up (or refusing writes) has nothing trustworthy to compare yet.
    if (peers.length === 0 || store.state !== 'ready' || store.unavailableReason !== undefined) return undefined;
    const peer = (peers[this.#nextPeer++ % peers.length] as string).replace(/\/+$/, '');
    const started = performance.now();
    try {
      const result = await this.#round(peer);
      this.#stats = {
        ...this.#stats,
        rounds: this.#stats.rounds + 1,
        rounds_with_differences: this.#stats.rounds_with_differences + (result.requests > 1 ? 1 : 0),
        documents_repaired: this.#stats.documents_repaired + result.repaired,
        last_differences: result.differences,
        last_requests: result.requests,
        last_peer: peer,
        last_sync_at_ms: Date.now(),
        last_duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
        last_error: null,
      };
      if (result.repaired > 0) {
        this.#options.log?.('info', `anti-entropy with ${peer}: ${result.differences} documents differed, ${result.repaired} repaired here`);
      }
      return result;
    } catch (err) {
      if (this.#abort.signal.aborted) throw abortError(this.#abort.signal);
      const message = `anti-entropy with ${peer} failed: ${(err as Error).message}`;
      if (this.#stats.last_error !== message) this.#options.log?.('warn', message);
      this.#stats = { ...this.#stats, last_error: message, last_peer: peer };
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#abort.abort(new Error('anti-entropy stopped'));
    await this.#loop;
    await this.#agent.destroy();
  }

  async #round(peer: string): Promise<RoundResult> {
    const { store } = this.#options;
    const signal = this.#abort.signal;
    let requests = 0;
    const fetchJson = async <T>(path: string, body?: unknown): Promise<T> => {
      requests += 1;
      const response = await peerRequest(peer, path, this.#agent, { signal, requestTimeoutMs: this.#options.requestTimeoutMs ?? 30_000, clusterToken: this.#options.clusterToken }, body);
      return JSON.parse(await response.body.text()) as T;
    };
    const theirs = await fetchJson<RootDigest>(DIGEST_PATHS.digest);
    if (theirs.buckets !== DIGEST_BUCKETS) throw new Error(`the peer sums documents into ${theirs.buckets} buckets, this replica into ${DIGEST_BUCKETS}`);
    const mine = store.digest({}) as RootDigest;
    let differences = 0;
    let repaired = 0;
    for (const [namespace, summary] of Object.entries(theirs.namespaces)) {
      if (mine.namespaces[namespace]?.digest === summary.digest) continue;
      const query = `${DIGEST_PATHS.digest}?namespace=${encodeURIComponent(namespace)}`;
      const theirBuckets = await fetchJson<NamespaceDigest>(query);
      const myBuckets = (store.digest({ namespace }) as NamespaceDigest).buckets;
      for (let bucket = 0; bucket < DIGEST_BUCKETS; bucket++) {
        const their = theirBuckets.buckets[bucket] ?? '';
        if (their === '' || their === myBuckets[bucket]) continue;
        const theirDocuments = await fetchJson<BucketDigest>(`${query}&bucket=${bucket}`);
        const myDocuments = new Map((store.digest({ namespace, bucket }) as BucketDigest).documents);
        const wanted = theirDocuments.documents.filter(([id, hash]) => myDocuments.get(id) !== hash).map(([id]) => id);
        differences += wanted.length;
        for (let i = 0; i < wanted.length; i += PULL_BATCH) {
          const { documents } = await fetchJson<DigestDocumentsResponse>(DIGEST_PATHS.documents, {
            namespace,
            document_ids: wanted.slice(i, i + PULL_BATCH),
          });
          for (const [j, document] of documents.entries()) {
            if (j % YIELD_EVERY === YIELD_EVERY - 1) await yieldToLoop();
            if (signal.aborted) throw abortError(signal);
            if (store.repairFrom(document)) repaired += 1;
          }
        }
      }
    }
    // Repairs are counted only once they are on disk.
    if (repaired > 0) await store.durable();
    return { peer, differences, repaired, requests };
  }
}
