// What the retriever needs from tracing, and nothing more: a way to open the span of one call
// to one replica and the W3C headers that make the shard's own span its child. The gateway
// implements it over OpenTelemetry (gateway/tracing/shard-trace.ts); with tracing off nobody
// passes one and no call pays for it.

/** One request to one replica, as the span describes it. */
export interface ShardCallStart {
  operation: string;
  shard: number;
  /** The replica's base URL. */
  replica: string;
  /** Sent because the first replica was slow (a hedge), not as the first attempt. */
  hedge: boolean;
}

export type ShardCallResult = 'ok' | 'error' | 'cancelled';

export interface ShardCallSpan {
  readonly traceparent: string;
  readonly tracestate?: string | undefined;
  /** `hedgeWon`: this hedge answered before the first attempt. `error`: why it failed. */
  end(result: ShardCallResult, detail?: { hedgeWon?: boolean; error?: unknown }): void;
}

export interface ShardCallTrace {
  startCall(call: ShardCallStart): ShardCallSpan;
  /**
   * The trace of a request several callers share (the coalescer's batch): its calls are
   * children of this caller's span and link to the others' (OpenTelemetry's model of a batch).
   */
  joinedWith(others: readonly ShardCallTrace[]): ShardCallTrace;
}
