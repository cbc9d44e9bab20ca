// Replicas joining and leaving a replica set while it serves (DNS discovery,
// retriever/discovery/). A replica that joins takes no reads until a probe finds it ready (a
// pod that just started may still be loading or catching up); it takes writes at once, as any
// replica that is not ejected does, so it misses nothing from then on. A replica that leaves is
// taken out of the array every read, write and probe picks from, so nothing new goes to it;
// the calls already in flight finish before its client is closed (each is bounded by the
// caller's deadline and the client's own timeouts; DRAIN_LIMIT_MS only guards against a
// client that never settles), and a read that fails there anyway moves to another replica like
// any transient failure.
import type { Replica } from './replica.js';
import type { ReplicaMembership } from './replica-membership.js';
import type { ReplicaSetObserver } from './replica-types.js';
import { urlOf } from './replica.js';
import type { ShardClient } from './shard-client.js';
import { sleep } from '../core/sleep.js';

const DRAIN_POLL_MS = 20;
const DRAIN_LIMIT_MS = 120_000;

export interface ChangeContext {
  shard: number;
  /** The set's own array: changed in place, so every part holding it sees the change. */
  replicas: Replica[];
  membership: ReplicaMembership;
  emit: (hook: (observer: ReplicaSetObserver) => void) => void;
  /** Builds the Replica (the set's constructor does the same for its first replicas). */
  create: (client: ShardClient, url: string) => Replica;
}

/** Adds `client` unless a replica with its URL is already there; false then (the caller keeps its client). */
export function joinReplica(context: ChangeContext, client: ShardClient): boolean {
  const url = urlOf(client);
  if (context.replicas.some((replica) => replica.url === url)) return false;
  const replica = context.create(client, url);
  // Out of reads until the probe below sees it answer and /readyz say 200.
  replica.notReady = true;
  context.replicas.push(replica);
  context.emit((observer) => observer.onReplicaAdded?.(context.shard, url));
  void context.membership.recheck(replica);
  return true;
}

/**
 * Removes the replica with `url`; resolves once the calls in flight to it are over and its
 * client is closed. False when there was none.
 */
export async function retireReplica(context: ChangeContext, url: string): Promise<boolean> {
  const index = context.replicas.findIndex((replica) => replica.url === url);
  if (index === -1) return false;
  const [replica] = context.replicas.splice(index, 1) as [Replica];
  context.membership.forget(replica);
  context.emit((observer) => observer.onReplicaRemoved?.(context.shard, url));
  for (let waited = 0; replica.inFlight > 0 && waited < DRAIN_LIMIT_MS; waited += DRAIN_POLL_MS) await sleep(DRAIN_POLL_MS);
  await replica.client.close();
  return true;
}
