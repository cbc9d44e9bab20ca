// One AbortSignal per request, aborted when the client goes away before the response is
// complete, so embedding slots, shard calls and (later) upstream LLM calls are released
// instead of finishing work nobody will read.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createError } from './errors.js';

export function requestSignal(request: FastifyRequest, reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  // ServerResponse emits 'close' both after a normal finish and when the socket drops;
  // only the second leaves the response unfinished.
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) {
      controller.abort(createError('RAGWAY_ERR_CLIENT_CLOSED', `client closed the connection (${request.id})`));
    }
  });
  return controller.signal;
}
