// Startup/readiness check: a shard that speaks another protocol, or holds vectors of another
// dimension than the embedding model produces, would otherwise fail every request with an
// opaque 400 (or, worse, return nonsense). Say what is wrong, once, before serving.
import { createError } from '../core/errors.js';
import { PROTOCOL_VERSION, type StatsResponse } from '../shards/protocol.js';
import type { ShardClient } from './shard-client.js';

export async function checkShard(client: ShardClient, expectedDim: number, signal?: AbortSignal): Promise<StatsResponse> {
  const stats = await client.stats(signal);
  if (stats.protocol_version !== PROTOCOL_VERSION) {
    throw createError(
      'RAGWAY_ERR_PROTOCOL_MISMATCH',
      `${client.name} speaks shard protocol ${stats.protocol_version}, this gateway speaks ${PROTOCOL_VERSION}; run the same ragway version on both`,
    );
  }
  if (stats.dim !== expectedDim) {
    throw createError(
      'RAGWAY_ERR_NOT_READY',
      `${client.name} holds ${stats.dim}-dimensional vectors but the embedding model produces ${expectedDim}; ` +
        'point the gateway at shards built with this model, or re-ingest into an empty data directory',
    );
  }
  return stats;
}
