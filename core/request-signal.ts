// One AbortSignal per request, aborted when the client goes away before the response is
// complete, so embedding slots, shard calls and (later) upstream LLM calls are released
// instead of finishing work nobody will read.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createError } from './errors.js';

// Where a request keeps its signal: every stage that asks gets the same one, so a request
// costs one AbortController and one 'close' listener however many stages need it.
const SIGNAL = Symbol('ragway.requestSignal');

type WithSignal = FastifyRequest & { [SIGNAL]?: AbortSignal };

export function requestSignal(request: FastifyRequest, reply: FastifyReply): AbortSignal {
  const holder = request as WithSignal;
  const existing = holder[SIGNAL];
  if (existing !== undefined) return existing;
  const controller = new AbortController();
  // ServerResponse emits 'close' both after a normal finish and when the socket drops;
  // only the second leaves the response unfinished.
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) {
      controller.abort(createError('RAGWAY_ERR_CLIENT_CLOSED', `client closed the connection (${request.id})`));
    }
  });
  holder[SIGNAL] = controller.signal;
  return controller.signal;
}
