// Turns every failure a Fastify app can meet — our RagwayErrors, schema validation, body
// parsing, unknown routes, bugs — into the catalog's envelope. Shared by the gateway and
// the shard server so a client sees one error shape everywhere.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createError, isRagwayError, type RagwayError } from './errors.js';

interface ValidationIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
  parentSchema?: Record<string, unknown>;
}

/** "/vector/3" → "vector[3]", "/documents/0/text" → "documents[0].text" (JSON Pointer unescaped). */
export function paramFromInstancePath(instancePath: string, missingProperty?: string): string | null {
  const parts = instancePath
    .split('/')
    .filter((part) => part !== '')
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (missingProperty !== undefined) parts.push(missingProperty);
  if (parts.length === 0) return null;
  return parts.reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : path === '' ? part : `${path}.${part}`), '');
}

function validationError(error: FastifyError): RagwayError {
  // The last issue is the outermost: for anyOf it is the summary, not one branch's complaint.
  // An if/then/else schema's summary ("must match else schema") says nothing: the branch's own
  // issue, just before it, does.
  const issues = (error.validation ?? []) as ValidationIssue[];
  const last = issues.at(-1);
  const issue = (last?.keyword === 'if' && issues.length > 1 ? issues.at(-2) : last) ?? {};
  const missing = typeof issue.params?.['missingProperty'] === 'string' ? issue.params['missingProperty'] : undefined;
  const extra =
    typeof issue.params?.['additionalProperty'] === 'string' ? issue.params['additionalProperty'] : undefined;
  const param = paramFromInstancePath(issue.instancePath ?? '', missing ?? extra);
  // A schema may carry its own wording (`errorMessage`) for rules whose ajv message is
  // cryptic, such as "exactly one of query or vector".
  const custom = issue.parentSchema?.['errorMessage'];
  let message: string;
  if (typeof custom === 'string') message = custom;
  else if (extra !== undefined) message = `unknown field ${param ?? extra}`;
  else message = `${param ?? error.validationContext ?? 'body'} ${issue.message ?? 'is invalid'}`;
  return createError('RAGWAY_ERR_INVALID_REQUEST', message, { param });
}

/** Maps any thrown value to a RagwayError; unknown errors become a 500 without leaking internals. */
export function toRagwayError(error: unknown): RagwayError {
  if (isRagwayError(error)) return error;
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation) return validationError(fastifyError as FastifyError);
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return createError('RAGWAY_ERR_BODY_TOO_LARGE', 'request body is larger than this server accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return createError('RAGWAY_ERR_UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return createError('RAGWAY_ERR_INVALID_JSON', 'the request body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return createError('RAGWAY_ERR_INVALID_JSON', `the request body is not valid JSON: ${fastifyError.message ?? ''}`);
    default:
      break;
  }
  if (error instanceof SyntaxError || (fastifyError.statusCode === 400 && fastifyError.message?.includes('JSON'))) {
    return createError('RAGWAY_ERR_INVALID_JSON', `the request body is not valid JSON: ${fastifyError.message ?? ''}`);
  }
  if (fastifyError.statusCode !== undefined && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return createError('RAGWAY_ERR_INVALID_REQUEST', fastifyError.message ?? 'invalid request');
  }
  return createError('RAGWAY_ERR_INTERNAL', 'internal error; see the server log', { cause: error });
}

export function sendError(reply: FastifyReply, err: RagwayError): FastifyReply {
  if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
  return reply.code(err.statusCode).type('application/json').send(err.toEnvelope());
}

/**
 * Installs the error handler and the 404 handler on `app`; with `lenientJson` (the
 * gateway's default) form and text bodies are parsed as JSON too.
 */
export function installErrorHandling(app: FastifyInstance, options: { lenientJson?: boolean } = {}): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const err = toRagwayError(error);
    if (err.statusCode >= 500) request.log.error({ err: error }, err.message);
    else request.log.debug({ code: err.code }, err.message);
    return sendError(reply, err);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, createError('RAGWAY_ERR_NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`)),
  );
  // `curl -d '{...}'` sends form or text content types; parse them as JSON rather than
  // making every quick try fail with 415.
  if (options.lenientJson === false) return;
  app.addContentTypeParser(
    ['application/x-www-form-urlencoded', 'text/plain'],
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );
}

/** Ajv settings shared by ragway's apps: strict types (no "5" → 5), unknown fields kept for the schema to judge. */
export function ajvOptions(): { customOptions: { coerceTypes: false; removeAdditional: false; allErrors: false; verbose: true; keywords: string[] } } {
  return {
    customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, verbose: true, keywords: ['errorMessage'] },
  };
}
