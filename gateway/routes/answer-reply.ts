// Serves one answer event stream over HTTP with an encoder: the part both answer routes
// share. Failures before the first event keep their HTTP status (the error handler answers);
// the cache headers come from the `sources` event, the one place the cache status is decided.
// Streaming: headers with the first byte, each event's frames as they come, and a failure
// after the headers in the stream — never a silent end.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AnswerEncoder } from '../answer/encoders.js';
import type { AnswerCache, AnswerEvent, DoneEvent, SourcesEvent } from '../answer/events.js';
import { SseStream } from '../sse.js';
import { CACHE_SIMILARITY_HEADER, CACHE_STATUS_HEADER } from './client-controls.js';

export interface AnswerReplyOptions {
  stream: boolean;
  pingIntervalMs: number;
  /** Close the stream when its client has not read for this long (RAGWAY_SSE_STALL_TIMEOUT_MS). */
  stallTimeoutMs: number;
}

export function answerCacheHeaders(cache: AnswerCache): Record<string, string> {
  return {
    [CACHE_STATUS_HEADER]: cache.status,
    ...(cache.similarity !== undefined ? { [CACHE_SIMILARITY_HEADER]: cache.similarity.toFixed(4) } : {}),
  };
}

export async function replyWithAnswer(
  request: FastifyRequest,
  reply: FastifyReply,
  answer: AsyncGenerator<AnswerEvent, void, undefined>,
  encoder: AnswerEncoder,
  options: AnswerReplyOptions,
): Promise<unknown> {
  const first = await answer.next();
  if (first.done === true || first.value.type !== 'sources') throw new Error('an answer stream must start with its sources');
  const sources: SourcesEvent = first.value;
  const headers = answerCacheHeaders(sources.cache);

  if (!options.stream) {
    let done: DoneEvent | undefined;
    for await (const event of answer) {
      if (event.type === 'error') throw event.error;
      if (event.type === 'done') done = event;
    }
    if (done === undefined) throw new Error('the answer stream ended without done or error');
    reply.headers(headers);
    return encoder.body(sources, done);
  }

  const sse = new SseStream(reply, { pingIntervalMs: options.pingIntervalMs, stallTimeoutMs: options.stallTimeoutMs });
  sse.open(headers);
  try {
    for (const frame of encoder.frames(sources)) await sse.send(frame.data, frame.event);
    for await (const event of answer) {
      if (event.type === 'error' && event.error.statusCode >= 500) request.log.error({ err: event.error }, 'answer stream failed');
      if (event.type === 'delta') request.tokenMeter?.chunk();
      else if (event.type === 'done') request.tokenMeter?.usage(event.usage.total_tokens);
      for (const frame of encoder.frames(event)) await sse.send(frame.data, frame.event);
    }
    for (const frame of encoder.end()) await sse.send(frame.data, frame.event);
  } finally {
    // Also when the client left mid-stream: return() closes the generation behind it.
    await answer.return(undefined);
    request.tokenMeter?.finish();
    sse.end();
  }
  return reply;
}
