// Prometheus metrics for one gateway instance. Each app gets its own Registry (no global
// default registry), so tests can build many apps in one process.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BatcherObserver } from '../embedder/batcher.js';

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  readonly embedBatchInputs: Histogram;
  readonly embedBatchSeconds: Histogram;
  readonly embedQueueWait: Histogram;
  readonly embedDropped: Counter;
  readonly embedRejected: Counter;
  readonly shardLatency: Histogram<'shard' | 'outcome'>;
  readonly searchBatchQueries: Histogram;

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
    this.searchBatchQueries = new Histogram({
      name: 'ragway_search_batch_queries',
      help: 'Concurrent searches coalesced into one request per shard',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
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

  scatterObserver(): { onShardLatency(shardIndex: number, seconds: number, ok: boolean): void } {
    return {
      onShardLatency: (shardIndex, seconds, ok) =>
        this.shardLatency.observe({ shard: String(shardIndex), outcome: ok ? 'ok' : 'error' }, seconds),
    };
  }
}
