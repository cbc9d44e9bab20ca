// OpenTelemetry tracing for the gateway and the shard processes, with the span context passed
// explicitly (options objects, request decorations) rather than through an ambient context:
// no global tracer provider, propagator or AsyncLocalStorage context manager is registered,
// so a process with tracing off runs exactly the code it ran before, and one with tracing on
// pays for spans, not for a context store on every await (docs/architecture.md §3.1).
//
// Spans leave in batches over OTLP/HTTP (JSON) to one collector URL. The batch size, delay
// and export timeout are the SDK's own OTEL_BSP_* / OTEL_EXPORTER_OTLP_* variables, read by
// the SDK; everything ragway decides is passed in here.
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  defaultTextMapGetter,
  defaultTextMapSetter,
  trace,
  type Attributes,
  type AttributeValue,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

export { SpanKind } from '@opentelemetry/api';

export interface TracingSettings {
  /** service.name of this process's spans. */
  serviceName: string;
  /** Where spans are POSTed (an OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces). */
  url: string;
  /** More resource attributes (OTEL_RESOURCE_ATTRIBUTES, and the process's own). */
  resourceAttributes?: Attributes;
  /** Fraction of new traces recorded (a client's sampled flag is always followed). Default 1. */
  sampleRatio?: number;
  /** Instead of the OTLP exporter (tests of this module). */
  exporter?: SpanExporter;
}

/** The W3C trace context headers of a span, as sent on an outgoing request. */
export interface TraceHeaders {
  traceparent: string;
  tracestate?: string;
}

/** One process's tracer provider. Built once at start; shutdown() exports what is left. */
export class Tracing {
  readonly #provider: BasicTracerProvider;
  readonly #tracer: Tracer;
  readonly #propagator = new W3CTraceContextPropagator();
  #closed: Promise<void> | undefined;

  constructor(settings: TracingSettings) {
    const ratio = settings.sampleRatio ?? 1;
    this.#provider = new BasicTracerProvider({
      resource: defaultResource().merge(resourceFromAttributes({ ...settings.resourceAttributes, [ATTR_SERVICE_NAME]: settings.serviceName })),
      sampler: new ParentBasedSampler({ root: ratio >= 1 ? new AlwaysOnSampler() : new TraceIdRatioBasedSampler(ratio) }),
      spanProcessors: [new BatchSpanProcessor(settings.exporter ?? new OTLPTraceExporter({ url: settings.url }))],
    });
    this.#tracer = this.#provider.getTracer('ragway');
  }

  /**
   * A span continuing the caller's trace when `headers` carry a valid `traceparent` (and its
   * `tracestate`), else the root of a new one.
   */
  startFromHeaders(name: string, headers: Record<string, string | string[] | undefined>, attributes: Attributes, kind = SpanKind.SERVER): TraceSpan {
    return this.#start(name, this.#extract(headers), { kind, attributes });
  }

  /** True when `headers` carry a valid `traceparent`: the request is part of a trace begun elsewhere. */
  continuesTrace(headers: Record<string, string | string[] | undefined>): boolean {
    return typeof headers['traceparent'] === 'string' && trace.getSpanContext(this.#extract(headers)) !== undefined;
  }

  #extract(headers: Record<string, string | string[] | undefined>): Context {
    return this.#propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
  }

  /** A span under `parent` (undefined: a new trace). */
  start(name: string, parent: TraceSpan | undefined, options: { kind?: SpanKind; attributes?: Attributes; links?: Link[] } = {}): TraceSpan {
    return this.#start(name, parent?.context ?? ROOT_CONTEXT, options);
  }

  #start(name: string, parent: Context, options: { kind?: SpanKind; attributes?: Attributes; links?: Link[] }): TraceSpan {
    const span = this.#tracer.startSpan(name, options, parent);
    return new TraceSpan(this, span, trace.setSpan(parent, span));
  }

  headersOf(context: Context): TraceHeaders {
    const carrier: Record<string, string> = {};
    this.#propagator.inject(context, carrier, defaultTextMapSetter);
    const traceparent = carrier['traceparent'] ?? '';
    const tracestate = carrier['tracestate'];
    return tracestate === undefined ? { traceparent } : { traceparent, tracestate };
  }

  /** Exports the finished spans still queued now. */
  flush(): Promise<void> {
    return this.#provider.forceFlush();
  }

  /** Ends new spans nowhere and exports the finished ones still queued. Idempotent. */
  shutdown(): Promise<void> {
    this.#closed ??= this.#provider.shutdown();
    return this.#closed;
  }
}

/**
 * One span with the context its children start from. Ending is idempotent, and a span that
 * was not sampled costs next to nothing (the SDK hands out a non-recording span) but still
 * carries the trace id, so downstream processes make the same decision.
 */
export class TraceSpan {
  readonly #tracing: Tracing;
  readonly #span: Span;
  readonly context: Context;
  #ended = false;

  constructor(tracing: Tracing, span: Span, context: Context) {
    this.#tracing = tracing;
    this.#span = span;
    this.context = context;
  }

  get traceId(): string {
    return this.#span.spanContext().traceId;
  }

  get spanId(): string {
    return this.#span.spanContext().spanId;
  }

  /** What this span's children in other processes are told: send as request headers. */
  get headers(): TraceHeaders {
    return this.#tracing.headersOf(this.context);
  }

  /** For a span started by another request that this one's work joined (a shared batch). */
  get link(): Link {
    return { context: this.#span.spanContext() };
  }

  child(name: string, attributes?: Attributes, options: { kind?: SpanKind; links?: Link[] } = {}): TraceSpan {
    return this.#tracing.start(name, this, { ...options, ...(attributes !== undefined ? { attributes } : {}) });
  }

  set(name: string, value: AttributeValue | undefined): this {
    if (value !== undefined) this.#span.setAttribute(name, value);
    return this;
  }

  rename(name: string): this {
    this.#span.updateName(name);
    return this;
  }

  /** Marks the span failed: status ERROR, `error.type` the catalog code when there is one, the exception recorded. */
  fail(err: unknown): this {
    const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : undefined;
    const message = err instanceof Error ? err.message : String(err);
    this.#span.setStatus({ code: SpanStatusCode.ERROR, message });
    this.#span.setAttribute('error.type', code ?? (err instanceof Error ? err.name : 'Error'));
    if (err instanceof Error) this.#span.recordException(err);
    return this;
  }

  end(err?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    if (err !== undefined) this.fail(err);
    this.#span.end();
  }

  /** Runs `work` inside a child span that ends when it settles (failed when it rejects). */
  async run<T>(name: string, attributes: Attributes | undefined, work: (span: TraceSpan) => Promise<T>): Promise<T> {
    const span = this.child(name, attributes);
    try {
      const value = await work(span);
      span.end();
      return value;
    } catch (err) {
      span.end(err);
      throw err;
    }
  }
}
