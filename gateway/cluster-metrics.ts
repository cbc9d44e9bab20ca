// Gauges read from the cluster view at scrape time: each replica's health and load as the
// gateway judges it, how many replicas each shard has (0 ready is a coverage gap), and each
// replica's anti-entropy (the numbers live in the shards; a replica restart resets its counts,
// hence gauges). One cluster view serves every gauge of a scrape. Series exist only for the
// replicas in the view, so a replica that left (discovery) leaves the export with it.
import { Gauge, type Registry } from 'prom-client';
import type { ShardView } from '../retriever/scatter.js';
import type { ReplicaView } from '../retriever/replica-set.js';
import type { AntiEntropyStats } from '../shards/protocol.js';

type ReplicaValue = (replica: ReplicaView) => number | null;

const antiEntropy = (value: (stats: AntiEntropyStats) => number | null): ReplicaValue => (replica) =>
  replica.anti_entropy === null ? null : value(replica.anti_entropy);

const REPLICA_GAUGES: [string, string, ReplicaValue][] = [
  ['ragway_replica_up', 'A replica the gateway reads from now (1: ready; 0: catching up, ejected, down or not ready)', (r) => (r.state === 'ready' ? 1 : 0)],
  ['ragway_replica_in_flight', 'Calls from this gateway to the replica in flight', (r) => r.in_flight],
  ['ragway_replica_consecutive_failures', 'Transient failures in a row of calls and probes to the replica', (r) => r.consecutive_failures],
  ['ragway_replica_anti_entropy_rounds', 'Anti-entropy rounds a replica completed with its peers since it started', antiEntropy((s) => s.rounds)],
  ['ragway_replica_anti_entropy_documents_repaired', 'Documents a replica pulled from a peer that changed it, since it started', antiEntropy((s) => s.documents_repaired)],
  ['ragway_replica_anti_entropy_last_differences', 'Documents that differed from the peer in the last anti-entropy round', antiEntropy((s) => s.last_differences)],
  [
    'ragway_replica_anti_entropy_last_sync_age_seconds',
    'Seconds since the last completed anti-entropy round',
    antiEntropy((s) => (s.last_sync_at_ms === null ? null : (Date.now() - s.last_sync_at_ms) / 1000)),
  ],
];

export function registerClusterGauges(registry: Registry, cluster: () => Promise<ShardView[]>): void {
  // prom-client collects every metric of a scrape concurrently: they share one view.
  let pending: Promise<ShardView[]> | undefined;
  const view = (): Promise<ShardView[]> => {
    pending ??= cluster()
      .catch(() => [])
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };
  for (const [name, help, value] of REPLICA_GAUGES) {
    new Gauge({
      name,
      help,
      labelNames: ['shard', 'replica'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const shard of await view()) {
          for (const replica of shard.replicas) {
            const v = value(replica);
            if (v !== null) this.set({ shard: String(shard.shard), replica: replica.url }, v);
          }
        }
      },
    });
  }
  new Gauge({
    name: 'ragway_shard_replicas',
    help: 'Replicas of each shard known to the gateway, by state (ready, catching-up, ejected, down); a shard with no ready replica cannot answer',
    labelNames: ['shard', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const shard of await view()) {
        const counts: Record<string, number> = { ready: 0, 'catching-up': 0, ejected: 0, down: 0 };
        for (const replica of shard.replicas) counts[replica.state] = (counts[replica.state] ?? 0) + 1;
        for (const [state, count] of Object.entries(counts)) this.set({ shard: String(shard.shard), state }, count);
      }
    },
  });
}
