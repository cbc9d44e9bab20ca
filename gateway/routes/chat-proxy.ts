// Chat with retrieval off (`rag: {enabled: false}`) on an LLM upstream: ragway is a transparent
// proxy. The upstream receives the client's body as it came — messages, tools, response_format,
// seed, logprobs, n, user and fields ragway does not know — less ragway's own extensions (`rag`,
// `cache`), and the client receives the upstream's response field for field, streamed or not,
// except `model`, which names what ragway served. No system prompt is added: an application
// that turned retrieval off (small talk, tool calls, its own context) gets exactly its request.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { toRagwayError } from '../../core/http-errors.js';
import { requestSignal } from '../../core/request-signal.js';
import type { Generator } from '../providers/provider.js';
import { SseFrameSplitter } from '../providers/sse-frames.js';
import { SseParser, type SseEvent } from '../providers/sse-parser.js';
import { SseStream } from '../sse.js';
import type { StreamTokenMeter } from '../access/token-meter.js';
import type { TraceSpan } from '../../core/tracing.js';

/** Fields of a chat body that are ragway's, not the upstream's. */
const RAGWAY_FIELDS: ReadonlySet<string> = new Set(['rag', 'cache']);

export async function proxyChat(
  request: FastifyRequest,
  reply: FastifyReply,
  generator: { id: string; proxy: NonNullable<Generator['proxy']> },
  body: Readonly<Record<string, unknown>>,
  options: { pingIntervalMs: number; stallTimeoutMs: number },
): Promise<unknown> {
  const forwarded: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(body)) if (!RAGWAY_FIELDS.has(name)) forwarded[name] = value;
  const span = request.traceSpan?.child('generate', { 'gen_ai.request.model': generator.id, 'ragway.proxied': true });
  try {
    return await relay(request, reply, generator, body, forwarded, options, span);
  } catch (err) {
    span?.fail(err);
    throw err;
  } finally {
    span?.end();
  }
}

async function relay(
  request: FastifyRequest,
  reply: FastifyReply,
  generator: { id: string; proxy: NonNullable<Generator['proxy']> },
  body: Readonly<Record<string, unknown>>,
  forwarded: Record<string, unknown>,
  options: { pingIntervalMs: number; stallTimeoutMs: number },
  span: TraceSpan | undefined,
): Promise<unknown> {
  const upstream = await generator.proxy(forwarded, requestSignal(request, reply), span?.headers);
  const renamed = renamer(upstream.upstreamModel, generator.id);

  if (body.stream !== true) {
    const parts: Buffer[] = [];
    await upstream.pipe((chunk) => {
      parts.push(chunk);
    });
    reply.type(upstream.contentType);
    // A string is sent as it is: the route's response schema describes ragway's own answers.
    return renamed(Buffer.concat(parts).toString('utf8'));
  }

  const sse = new SseStream(reply, options);
  sse.open();
  try {
    // A key with a token budget has a meter: it sees every frame (access/token-meter.ts).
    const meter = request.tokenMeter;
    await upstream.pipe(upstream.upstreamModel === generator.id ? passThrough(sse, meter) : reframed(sse, renamed, meter));
  } catch (err) {
    // Headers are gone: the failure travels in the stream, as on the RAG path, then [DONE].
    const error = toRagwayError(err);
    if (error.statusCode >= 500) request.log.error({ err }, 'proxied chat stream failed');
    span?.fail(err);
    await sse.send(JSON.stringify(error.toEnvelope()));
    await sse.send('[DONE]');
  } finally {
    request.tokenMeter?.finish();
    sse.end();
  }
  return reply;
}

/**
 * The upstream's frames go out as they came, unparsed, whole frames only (so a ping or an
 * error frame never lands inside one). A stream with CR line endings switches to the parser
 * for the rest of it.
 */
function passThrough(sse: SseStream, meter: StreamTokenMeter | undefined): (chunk: Buffer) => void | Promise<void> {
  const frames = new SseFrameSplitter();
  let parsing: ((chunk: Buffer) => Promise<void>) | undefined;
  return (chunk) => {
    if (parsing !== undefined) return parsing(chunk);
    const whole = frames.push(chunk);
    if (whole === undefined) {
      parsing = reframed(sse, (data) => data, meter);
      const pending = frames.takePending();
      return pending.length === 0 ? parsing(chunk) : parsing(pending).then(() => (parsing as (chunk: Buffer) => Promise<void>)(chunk));
    }
    if (meter !== undefined && whole.length > 0) meter.frames(whole.toString('utf8'));
    // `[DONE]` ends an OpenAI stream: it and the end of the response leave in one write; what
    // the upstream still sends is read (its connection is kept) but dropped.
    if (endsWithDone(whole)) sse.end(whole);
    else if (whole.length > 0) return sse.writeFrames(whole);
    return undefined;
  };
}

/** Parses the upstream's events and writes each again, its data passed through `rename`. */
function reframed(sse: SseStream, rename: (data: string) => string, meter: StreamTokenMeter | undefined): (chunk: Buffer) => Promise<void> {
  const parser = new SseParser();
  return async (chunk) => {
    for (const event of parser.push(chunk)) {
      meter?.frame(event.data);
      await sse.send(rename(event.data), event.event === 'message' ? undefined : event.event);
    }
  };
}

const DONE_FRAME = Buffer.from('data: [DONE]\n\n');

function endsWithDone(frames: Buffer): boolean {
  if (frames.length < DONE_FRAME.length) return false;
  const start = frames.length - DONE_FRAME.length;
  // It must be a frame of its own: at the start of `frames` (which begin at a frame boundary)
  // or after a blank line, not the last data line of a longer event.
  return frames.subarray(start).equals(DONE_FRAME) && (start === 0 || (frames[start - 1] === 0x0a && frames[start - 2] === 0x0a));
}

/**
 * Rewrites the top-level `model` of a JSON document from the upstream's name to the id clients
 * use; anything else (`[DONE]`, another shape) passes unchanged. When the two names are the
 * same, nothing is parsed at all.
 */
function renamer(upstreamModel: string, id: string): (data: string) => string {
  if (upstreamModel === id) return (data) => data;
  return (data) => {
    if (!data.startsWith('{')) return data;
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      return data;
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json) || !('model' in json)) return data;
    return JSON.stringify({ ...json, model: id });
  };
}
