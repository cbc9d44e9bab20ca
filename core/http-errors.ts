// Turns every failure a Fastify app can meet — our RagwayErrors, schema validation, body
// parsing, unknown routes, bugs — into the catalog's envelope. Shared by the gateway and
// the shard server so a client sees one error shape everywhere.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, createError, isRagwayError, type ErrorSpec, type RagwayError } from './errors.js';
import { installJsonBody } from './json-body.js';

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
      return createError('RAGWAY_ERR_UNSUPPORTED_MEDIA_TYPE', 'send the body as JSON with the header "content-type: application/json"');
    case 'FST_ERR_BAD_URL':
      return createError('RAGWAY_ERR_INVALID_REQUEST', 'the URL path is not valid percent-encoding', { param: 'path' });
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return createError('RAGWAY_ERR_URI_TOO_LONG', 'a path segment of the URL is longer than this server accepts', { param: 'path' });
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
 * Installs the error handler, the 404 handler and the JSON-only body parser on `app`
 * (core/json-body.ts: content type, encoding, depth and non-finite numbers judged there).
 */
export function installErrorHandling(
  app: FastifyInstance,
  options: {
    maxJsonDepth: number;
    /** What a client reads of a 5xx (the full message and cause go to the log); default: the message. */
    publicMessage?: (message: string, requestId: string) => string;
  },
): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    let err = toRagwayError(error);
    const failure = err.statusCode >= 500 && (ERRORS[err.code] as ErrorSpec).shedsLoad !== true;
    if (failure) request.log.error({ err: error }, err.message);
    else request.log.debug({ code: err.code }, err.message);
    if (failure && options.publicMessage !== undefined) {
      err = createError(err.code, options.publicMessage(err.message, request.id), {
        param: err.param,
        ...(err.retryAfterSeconds !== undefined ? { retryAfterSeconds: err.retryAfterSeconds } : {}),
      });
    }
    // Fastify closes the connection after a body error, "as the client may send more data".
    // For a body that is merely too large that turns the 413 into a TCP reset: the client is
    // still sending, and the unread bytes arriving at a closed socket reset it before the
    // client reads the answer. Kept alive instead, Node discards the rest of the body (bounded
    // by the request timeout) and the client reads the 413.
    if (err.code === 'RAGWAY_ERR_BODY_TOO_LARGE') reply.removeHeader('connection');
    return sendError(reply, err);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, createError('RAGWAY_ERR_NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`)),
  );
  installJsonBody(app, { maxDepth: options.maxJsonDepth });
}

/**
 * `x-max-json-bytes`: the UTF-8 size of a value's JSON is at most the keyword's number (an
 * `x-` name, so the OpenAPI document generated from the schemas stays valid). Bounds metadata
 * (copied into every chunk of a document) and filters (compiled per query, part of cache
 * keys). Runs after the body parser has bounded the depth, so stringifying is safe.
 */
const maxJsonBytesKeyword = {
  keyword: 'x-max-json-bytes',
  schemaType: 'number',
  errors: true,
  validate: function validate(limit: number, data: unknown): boolean {
    const bytes = Buffer.byteLength(JSON.stringify(data) ?? '');
    if (bytes <= limit) return true;
    (validate as unknown as { errors: unknown[] }).errors = [
      { keyword: 'x-max-json-bytes', message: `is ${bytes} bytes as JSON; at most ${limit} are accepted`, params: { limit } },
    ];
    return false;
  },
};

/** Ajv settings shared by ragway's apps: strict types (no "5" → 5), unknown fields kept for the schema to judge. */
export function ajvOptions() {
  return {
    customOptions: {
      coerceTypes: false as const,
      removeAdditional: false as const,
      allErrors: false as const,
      verbose: true as const,
      keywords: ['errorMessage'],
    },
    // Typed structurally: ajv is Fastify's dependency, not ours.
    plugins: [<A extends { addKeyword(definition: never): A }>(ajv: A): A => ajv.addKeyword(maxJsonBytesKeyword as never)],
  };
}
