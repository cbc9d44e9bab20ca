// Prometheus metrics for one gateway instance. Each app gets its own Registry (no global
// default registry), so tests can build many apps in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BatcherObserver } from '../embedder/batcher.js';
import type { CacheLayerObserver } from './cache/lru-layer.js';
import type { Coverage, ScatterObserver, ShardView } from '../retriever/scatter.js';
import type { ReplicaCallOutcome } from '../retriever/replica-set.js';
import { registerClusterGauges } from './cluster-metrics.js';

/** What the admission metrics read of a gate (gateway/access/admission.ts). */
export interface AdmissionGateView {
  readonly limit: number;
  readonly active: number;
  readonly queued: number;
  readonly rejected: number;
}

const REPLICA_CALL_OUTCOMES: readonly ReplicaCallOutcome[] = ['ok', 'error', 'cancelled'];

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  readonly embedBatchInputs: Histogram;
  readonly embedBatchSeconds: Histogram;
  readonly embedQueueWait: Histogram;
  readonly embedDropped: Counter;
  readonly embedRejected: Counter;
  readonly shardLatency: Histogram<'shard' | 'outcome'>;
  readonly replicaLatency: Histogram<'shard' | 'replica' | 'outcome'>;
  readonly membershipChanges: Counter<'shard' | 'change'>;
  readonly scatterSearches: Counter<'coverage'>;
  readonly missingShards: Counter<'shard'>;
  readonly stageDuration: Histogram<'stage'>;
  readonly timeToFirstToken: Histogram;
  readonly searchBatchQueries: Histogram;
  readonly hedges: Counter<'shard' | 'result'>;
  readonly replicaTransitions: Counter<'shard' | 'replica' | 'to'>;
  readonly cacheLookups: Counter<'layer' | 'result'>;
  readonly semanticSimilarity: Histogram;
  readonly semanticLookups: Counter<'outcome'>;
  readonly cacheEvictions: Counter<'layer' | 'reason'>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'ragway_' });
    const registers = [this.registry];
    this.httpDuration = new Histogram({
      name: 'ragway_http_request_duration_seconds',
      help: 'HTTP request duration by route and status',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.embedBatchInputs = new Histogram({
      name: 'ragway_embed_batch_size',
      help: 'Inputs per embedding model call',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers,
    });
    this.embedBatchSeconds = new Histogram({
      name: 'ragway_embed_batch_duration_seconds',
      help: 'Duration of one embedding model call',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.embedQueueWait = new Histogram({
      name: 'ragway_embed_queue_wait_seconds',
      help: 'Time an input waited in the embedding queue before its batch ran',
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.embedDropped = new Counter({
      name: 'ragway_embed_dropped_inputs_total',
      help: 'Queued inputs dropped before compute because their caller went away',
      registers,
    });
    this.embedRejected = new Counter({
      name: 'ragway_embed_rejected_inputs_total',
      help: 'Inputs refused with 429 because the embedding queue was full',
      registers,
    });
    this.shardLatency = new Histogram({
      name: 'ragway_shard_request_duration_seconds',
      help: 'Shard search call latency as seen by the gateway',
      labelNames: ['shard', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    this.replicaLatency = new Histogram({
      name: 'ragway_replica_request_duration_seconds',
      help: 'Search calls to one replica as seen by the gateway, by outcome (ok, error; cancelled: a hedge that lost or a caller that left)',
      labelNames: ['shard', 'replica', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    this.membershipChanges = new Counter({
      name: 'ragway_replica_membership_changes_total',
      help: 'Replicas that joined or left a shard through DNS discovery',
      labelNames: ['shard', 'change'],
      registers,
    });
    this.scatterSearches = new Counter({
      name: 'ragway_scatter_searches_total',
      help: 'Scatter-gather search rounds (each a batch of coalesced queries) by coverage: complete, or partial (a shard left out)',
      labelNames: ['coverage'],
      registers,
    });
    this.missingShards = new Counter({
      name: 'ragway_scatter_missing_shards_total',
      help: 'Shards left out of a search round because no replica could answer in time',
      labelNames: ['shard'],
      registers,
    });
    this.stageDuration = new Histogram({
      name: 'ragway_stage_duration_seconds',
      help: 'Time spent in each stage of the searches and answers computed (cache hits run none): embed, search (scatter-gather), rerank, generate',
      labelNames: ['stage'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.timeToFirstToken = new Histogram({
      name: 'ragway_time_to_first_token_seconds',
      help: 'From the start of an answer (cache, retrieval, prompt) to its first generated token',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.cacheLookups = new Counter({
      name: 'ragway_cache_lookups_total',
      help: 'Cache lookups by layer (embeddings, retrieval, answers) and result (hit, miss)',
      labelNames: ['layer', 'result'],
      registers,
    });
    this.cacheEvictions = new Counter({
      name: 'ragway_cache_evictions_total',
      help: 'Cache entries removed, by layer and reason (evict = over the byte budget, expire = TTL, stale = a shard was written)',
      labelNames: ['layer', 'reason'],
      registers,
    });
    this.semanticSimilarity = new Histogram({
      name: 'ragway_semantic_cache_nearest_similarity',
      help: 'Cosine similarity of the nearest earlier question at each semantic cache lookup',
      buckets: [0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98, 0.99, 1],
      registers,
    });
    this.semanticLookups = new Counter({
      name: 'ragway_semantic_cache_lookups_total',
      help: 'Semantic cache lookups by outcome (hit; empty, below-threshold, guard, stale: misses)',
      labelNames: ['outcome'],
      registers,
    });
    this.hedges = new Counter({
      name: 'ragway_shard_hedges_total',
      help: 'Hedged shard calls: sent to a second replica because the first was slow, and won (answered first)',
      labelNames: ['shard', 'result'],
      registers,
    });
    this.replicaTransitions = new Counter({
      name: 'ragway_replica_transitions_total',
      help: 'Replicas taken out of rotation (ejected) after repeated failures, and restored by a probe',
      labelNames: ['shard', 'replica', 'to'],
      registers,
    });
    this.searchBatchQueries = new Histogram({
      name: 'ragway_search_batch_queries',
      help: 'Concurrent searches coalesced into one request per shard',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
  }

  /** Per-replica health, load and anti-entropy, and replicas per shard, read from the cluster view at scrape time (cluster-metrics.ts). */
  watchCluster(cluster: () => Promise<ShardView[]>): void {
    registerClusterGauges(this.registry, cluster);
  }

  /** Each admission gate's limit, load and refusals, read at scrape time (refusals made ahead of Fastify included). */
  watchAdmission(gates: ReadonlyMap<string, AdmissionGateView>): void {
    const registers = [this.registry];
    const gauge = (name: string, help: string, value: (gate: AdmissionGateView) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['class'],
        registers,
        collect() {
          for (const [routeClass, gate] of gates) this.set({ class: routeClass }, value(gate));
        },
      });
    };
    gauge('ragway_admission_limit', 'Requests of the route class allowed to run at once now (the adaptive limit moves)', (gate) => gate.limit);
    gauge('ragway_admission_active', 'Requests of the route class running now', (gate) => gate.active);
    gauge('ragway_admission_queued', 'Requests of the route class waiting for a slot', (gate) => gate.queued);
    const counted = new Map<string, number>();
    new Counter({
      name: 'ragway_admission_rejected_total',
      help: 'Requests refused with 503 because the route class was at its limit and its queue full',
      labelNames: ['class'],
      registers,
      collect() {
        for (const [routeClass, gate] of gates) {
          this.inc({ class: routeClass }, gate.rejected - (counted.get(routeClass) ?? 0));
          counted.set(routeClass, gate.rejected);
        }
      },
    });
  }

  /** Coverage of one scatter-gather search round (a batch of coalesced queries). */
  observeCoverage(coverage: Coverage): void {
    this.scatterSearches.inc({ coverage: coverage.partial ? 'partial' : 'complete' });
    for (const missing of coverage.missing ?? []) this.missingShards.inc({ shard: String(missing.shard) });
  }

  observeSemanticLookup(similarity: number | undefined, outcome: string): void {
    if (similarity !== undefined) this.semanticSimilarity.observe(similarity);
    this.semanticLookups.inc({ outcome });
  }

  cacheObserver(): CacheLayerObserver {
    return {
      onHit: (layer) => this.cacheLookups.inc({ layer, result: 'hit' }),
      onMiss: (layer) => this.cacheLookups.inc({ layer, result: 'miss' }),
      onEvict: (layer, reason) => this.cacheEvictions.inc({ layer, reason }),
    };
  }

  batcherObserver(): BatcherObserver {
    return {
      onBatch: (inputs, _paddedTokens, seconds) => {
        this.embedBatchInputs.observe(inputs);
        this.embedBatchSeconds.observe(seconds);
      },
      onQueueWait: (seconds) => this.embedQueueWait.observe(seconds),
      onDropped: (inputs) => this.embedDropped.inc(inputs),
      onRejected: (inputs) => this.embedRejected.inc(inputs),
    };
  }

  scatterObserver(): ScatterObserver {
    return {
      onShardLatency: (shardIndex, seconds, ok) =>
        this.shardLatency.observe({ shard: String(shardIndex), outcome: ok ? 'ok' : 'error' }, seconds),
      onHedge: (shard) => this.hedges.inc({ shard: String(shard), result: 'sent' }),
      onHedgeWon: (shard) => this.hedges.inc({ shard: String(shard), result: 'won' }),
      onReplicaEjected: (shard, url) => this.replicaTransitions.inc({ shard: String(shard), replica: url, to: 'ejected' }),
      onReplicaRestored: (shard, url) => this.replicaTransitions.inc({ shard: String(shard), replica: url, to: 'restored' }),
      onReplicaCall: (shard, url, seconds, outcome) => this.replicaLatency.observe({ shard: String(shard), replica: url, outcome }, seconds),
      onReplicaAdded: (shard) => this.membershipChanges.inc({ shard: String(shard), change: 'joined' }),
      onReplicaRemoved: (shard, url) => {
        this.membershipChanges.inc({ shard: String(shard), change: 'left' });
        // Replicas are a bounded set only if those that left stop being exported.
        for (const outcome of REPLICA_CALL_OUTCOMES) this.replicaLatency.remove({ shard: String(shard), replica: url, outcome });
        for (const to of ['ejected', 'restored']) this.replicaTransitions.remove({ shard: String(shard), replica: url, to });
      },
      onCoverage: (coverage) => this.observeCoverage(coverage),
    };
  }
}
