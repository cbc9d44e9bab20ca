// The fixtures the replica-set tests share; the replicas themselves (ControlledReplica: a real
// in-process store behind knobs) live in test/helpers/fake-shard-clients.ts.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createError } from '../../../core/errors.js';
import { ReplicaSet, type ReplicaSetObserver, type ReplicaSetOptions } from '../../../retriever/replica-set.js';
import { IndexStore } from '../../../shards/index-store.js';
import { mulberry32 } from '../../helpers/random.js';
import type { ChunkInput } from '../../../retriever/scatter.js';
import { encodeVector, type SearchRequest } from '../../../shards/protocol.js';
import { ControlledReplica } from '../../helpers/fake-shard-clients.js';
import { randomUnitVectors } from '../../helpers/random.js';

export { hasCode } from '../../helpers/errors.js';
export { ControlledReplica };
export { setTimeout as sleep } from 'node:timers/promises';

export const DIM = 8;
export const NS = 'ns';
export const vectors = randomUnitVectors(200, DIM, 5);
export const chunks: ChunkInput[] = vectors.map((vector, i) => ({ id: `c${i}`, document_id: `d${i}`, namespace: NS, text: `t${i}`, vector }));

/** What HttpShardClient throws for a replica that refuses connections. */
export const refused = (replica: ControlledReplica) => (): unknown =>
  createError('RAGWAY_ERR_SHARD_UNAVAILABLE', `${replica.name} unavailable: connect ECONNREFUSED`);

export const query = (i: number): SearchRequest => ({ queries: [{ vector: encodeVector(vectors[i % vectors.length] as Float32Array), k: 3, namespace: NS }] });

/** Records every observer hook call as "hook:args". */
export function recordingObserver(): ReplicaSetObserver & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    onHedge: (shard) => events.push(`hedge:${shard}`),
    onHedgeWon: (shard) => events.push(`won:${shard}`),
    onReplicaEjected: (shard, url) => events.push(`ejected:${shard}:${url}`),
    onReplicaRestored: (shard, url) => events.push(`restored:${shard}:${url}`),
  };
}

/**
 * `count` replicas of one shard, each its own store holding `chunks`, in a set seeded for
 * repeatable replica choice. The directories and sets go into `owned` for the caller to clean up.
 */
export async function replicaSetOf(
  count: number,
  options: ReplicaSetOptions,
  owned: { dirs: string[]; sets: ReplicaSet[] },
): Promise<{ set: ReplicaSet; replicas: ControlledReplica[] }> {
  const controlled = Array.from({ length: count }, (_, index) => {
    const dir = mkdtempSync(join(tmpdir(), 'ragway-replica-set-'));
    owned.dirs.push(dir);
    return new ControlledReplica(IndexStore.open({ dataDir: dir, dim: DIM, space: 'cosine', autoSaveMs: 0 }), index);
  });
  const set = new ReplicaSet(controlled, { random: mulberry32(42), ...options });
  owned.sets.push(set);
  await set.upsert({ chunks: chunks.map((chunk) => ({ ...chunk, vector: encodeVector(chunk.vector as Float32Array) })) });
  return { set, replicas: controlled };
}
