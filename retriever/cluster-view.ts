// The cluster view (GET /v1/cluster): every shard's replicas with state, epoch, counts, latency
// and load. Replica sets answer from their background refresh, refreshed here first when older
// than `maxAgeMs`; a plain client is asked for its stats now.
import { abortError, throwIfAborted } from '../core/errors.js';
import { ReplicaSet } from './replica-set.js';
import type { ShardView } from './scatter-types.js';
import type { ShardClient } from './shard-client.js';

export async function clusterView(clients: readonly ShardClient[], signal: AbortSignal | undefined, maxAgeMs: number): Promise<ShardView[]> {
  throwIfAborted(signal);
  return Promise.all(
    clients.map(async (client, shard): Promise<ShardView> => {
      if (client instanceof ReplicaSet) {
        if (client.viewAgeMs > maxAgeMs) await client.refresh();
        return { shard, name: client.name, replicas: client.view() };
      }
      const url = (client as { url?: unknown }).url;
      const base = { url: typeof url === 'string' ? url : client.name, latency_ewma_ms: null, latency_p95_ms: null, in_flight: 0, consecutive_failures: 0, stats_age_ms: 0 };
      try {
        const stats = await client.stats(signal);
        const state = (stats.state as string | undefined) === 'catching-up' ? 'catching-up' : 'ready';
        return {
          shard,
          name: client.name,
          replicas: [
            {
              ...base,
              state,
              epoch: stats.epoch,
              wal_seq: stats.wal_seq ?? null,
              documents: stats.documents,
              chunks: stats.count,
              last_error: null,
              anti_entropy: stats.anti_entropy ?? null,
            },
          ],
        };
      } catch (err) {
        if (signal?.aborted) throw abortError(signal);
        const message = err instanceof Error ? err.message : String(err);
        return {
          shard,
          name: client.name,
          replicas: [
            { ...base, state: 'down', epoch: null, wal_seq: null, documents: null, chunks: null, last_error: message, stats_age_ms: null, anti_entropy: null },
          ],
        };
      }
    }),
  );
}
