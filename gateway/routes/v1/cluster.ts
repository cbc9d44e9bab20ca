// GET /v1/cluster — what an operator looks at first: every shard and replica with its URL,
// state (ready, catching-up, ejected, down), write epoch, counts, recent latency, and how
// its anti-entropy with its peers went (last sync, differences found, documents repaired), and,
// with a DNS shard spec, what discovery found.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { AntiEntropyStats } from '../../../shards/protocol.js';
import { Nullable } from '../../schemas.js';

const Replica = Type.Object({
  url: Type.String(),
  state: Type.String(),
  epoch: Nullable(Type.Integer()),
  wal_seq: Nullable(Type.Integer()),
  documents: Nullable(Type.Integer()),
  chunks: Nullable(Type.Integer()),
  latency_ewma_ms: Nullable(Type.Number()),
  latency_p95_ms: Nullable(Type.Number()),
  in_flight: Type.Integer(),
  consecutive_failures: Type.Integer(),
  last_error: Nullable(Type.String()),
  stats_age_ms: Nullable(Type.Number()),
  /** Background anti-entropy of this replica with its peers: last sync, differences found and repaired. */
  anti_entropy: Nullable(AntiEntropyStats),
});

/** Only with a DNS shard spec: what the last lookups found and which addresses are not used, and why. */
const Discovery = Type.Object({
  spec: Type.String(),
  refresh_ms: Type.Integer(),
  last_round_at_ms: Nullable(Type.Integer()),
  addresses: Nullable(Type.Integer()),
  /** The last lookup failed or found no records: membership was kept as it was. */
  problem: Nullable(Type.String()),
  not_used: Type.Array(Type.Object({ url: Type.String(), reason: Type.String() })),
});

const ClusterResponse = Type.Object({
  object: Type.Literal('cluster'),
  shards_total: Type.Integer(),
  shards_ready: Type.Integer(),
  shards: Type.Array(Type.Object({ shard: Type.Integer(), name: Type.String(), ready_replicas: Type.Integer(), replicas: Type.Array(Replica) })),
  discovery: Type.Optional(Discovery),
});

const CLUSTER_TIMEOUT_MS = 2_000;
/** Replica stats older than this are fetched again: an operator wants the current picture. */
const MAX_STATS_AGE_MS = 250;

export default async function clusterRoutes(app: FastifyInstance): Promise<void> {
  app.get('/v1/cluster', { schema: { response: { 200: ClusterResponse } } }, async () => {
    const shards = await app.scatter.cluster(AbortSignal.timeout(CLUSTER_TIMEOUT_MS), MAX_STATS_AGE_MS);
    const views = shards.map((shard) => ({
      ...shard,
      ready_replicas: shard.replicas.filter((replica) => replica.state === 'ready').length,
    }));
    return {
      object: 'cluster' as const,
      shards_total: views.length,
      shards_ready: views.filter((shard) => shard.ready_replicas > 0).length,
      shards: views,
      ...(app.shardDiscovery === undefined ? {} : { discovery: app.shardDiscovery.status() }),
    };
  });
}
