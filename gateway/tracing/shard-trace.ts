// The retriever's ShardCallTrace over OpenTelemetry: one CLIENT span per request to a replica,
// child of the stage span that scattered it, named after the operation and saying which shard,
// which replica, and whether it was a hedge (`ragway.hedge`: no, yes, or won — a hedge that
// answered first). Its context is what the shard's server span continues.
import type { Link } from '@opentelemetry/api';
import type { ShardCallSpan, ShardCallStart, ShardCallTrace } from '../../retriever/call-trace.js';
import { SpanKind, type TraceSpan } from '../../core/tracing.js';

export class SpanShardTrace implements ShardCallTrace {
  readonly #parent: TraceSpan;
  readonly #links: Link[];

  constructor(parent: TraceSpan, links: Link[] = []) {
    this.#parent = parent;
    this.#links = links;
  }

  startCall(call: ShardCallStart): ShardCallSpan {
    const replica = URL.canParse(call.replica) ? new URL(call.replica) : undefined;
    const span = this.#parent.child(
      `shard ${call.operation}`,
      {
        'ragway.shard': call.shard,
        'ragway.replica': call.replica,
        'ragway.hedge': call.hedge ? 'yes' : 'no',
        ...(replica !== undefined ? { 'server.address': replica.hostname, 'server.port': Number(replica.port || (replica.protocol === 'https:' ? 443 : 80)) } : {}),
      },
      { kind: SpanKind.CLIENT, ...(this.#links.length > 0 ? { links: this.#links } : {}) },
    );
    const { traceparent, tracestate } = span.headers;
    return {
      traceparent,
      tracestate,
      end: (result, detail) => {
        span.set('ragway.shard.result', result);
        if (detail?.hedgeWon === true) span.set('ragway.hedge', 'won');
        span.end(result === 'error' ? (detail?.error ?? new Error('shard call failed')) : undefined);
      },
    };
  }

  joinedWith(others: readonly ShardCallTrace[]): ShardCallTrace {
    const links = others.flatMap((other) => (other instanceof SpanShardTrace ? [other.#parent.link] : []));
    return new SpanShardTrace(this.#parent, [...this.#links, ...links]);
  }
}
