// Request bodies are JSON, and only JSON sent as JSON. Everything that can hurt the process
// is refused here, before any code walks the parsed value:
//
// - content type: `application/json` or `application/…+json` only. A browser sends
//   `text/plain`, form-urlencoded and multipart bodies cross-site without a CORS preflight,
//   so accepting them would let any web page write to a local ragway.
// - content encoding: none. A compressed body is refused with 415 rather than decoded (no
//   decompression bombs, no CPU spent inflating what an attacker chose).
// - nesting depth: counted on the raw text with a loop, before JSON.parse, so a body nested
//   10,000 deep never reaches the recursive code after it (schema validation, cache keys,
//   JSON.stringify towards the shards).
// - non-finite numbers: JSON.parse turns 1e999 into Infinity, which no later stage can
//   store, compare or serialise faithfully; it is a 400 naming the field.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createError } from './errors.js';

export interface JsonBodyOptions {
  /** Deepest nesting of arrays and objects a body may have (the top-level object is 1). */
  maxDepth: number;
}

const JSON_SUFFIX = /^application\/[a-z0-9!#$&^_.+-]+\+json$/i;

/** `application/json` and `application/<anything>+json`, parameters (charset) ignored. */
export function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false;
  const essence = (header.split(';')[0] ?? '').trim().toLowerCase();
  return essence === 'application/json' || JSON_SUFFIX.test(essence);
}

/**
 * True when `text` nests arrays/objects deeper than `maxDepth`. Brackets inside strings do
 * not count; strings are skipped with indexOf, so the loop touches each structural
 * character once. Malformed text is left for JSON.parse to reject.
 */
export function exceedsDepth(text: string, maxDepth: number): boolean {
  let depth = 0;
  const length = text.length;
  for (let i = 0; i < length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Find the closing quote: one not preceded by an odd number of backslashes.
      let end = i;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end === -1) return false;
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes += 1;
        if (slashes % 2 === 0) break;
      }
      i = end;
    } else if (c === 0x5b || c === 0x7b) {
      depth += 1;
      if (depth > maxDepth) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth -= 1;
    }
  }
  return false;
}

/** "documents[0].metadata.a" style path of the first non-finite number, or undefined. Iterative. */
export function findNonFiniteNumber(value: unknown): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : '';
  if (typeof value !== 'object' || value === null) return undefined;
  // Each frame remembers the path of its container; paths are built only for containers
  // and only joined into text on the (rare) failure.
  const stack: { node: unknown; path: (string | number)[] }[] = [{ node: value, path: [] }];
  while (stack.length > 0) {
    const { node, path } = stack.pop() as { node: unknown; path: (string | number)[] };
    const visit = (key: string | number, item: unknown): string | undefined => {
      if (typeof item === 'number') return Number.isFinite(item) ? undefined : formatPath([...path, key]);
      if (typeof item === 'object' && item !== null) stack.push({ node: item, path: [...path, key] });
      return undefined;
    };
    if (Array.isArray(node)) {
      for (let index = 0; index < node.length; index += 1) {
        const found = visit(index, node[index]);
        if (found !== undefined) return found;
      }
    } else {
      for (const key of Object.keys(node as object)) {
        const found = visit(key, (node as Record<string, unknown>)[key]);
        if (found !== undefined) return found;
      }
    }
  }
  return undefined;
}

function formatPath(parts: readonly (string | number)[]): string {
  return parts.reduce<string>((out, part) => (typeof part === 'number' ? `${out}[${part}]` : out === '' ? part : `${out}.${part}`), '');
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined;
}

/**
 * Replaces Fastify's body parsers with the JSON-only one described above. Content type and
 * encoding are judged in preParsing, before a byte of the body is read.
 */
export function installJsonBody(app: FastifyInstance, options: JsonBodyOptions): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addHook('preParsing', async (request) => {
    if (!hasBody(request)) return;
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      throw createError('RAGWAY_ERR_UNSUPPORTED_MEDIA_TYPE', `content-encoding ${JSON.stringify(encoding)} is not accepted; send the body uncompressed`, {
        param: 'content-encoding',
      });
    }
    const type = request.headers['content-type'];
    if (!isJsonContentType(type)) {
      const got = type === undefined ? 'no content-type' : `content-type ${JSON.stringify(type)}`;
      throw createError(
        'RAGWAY_ERR_UNSUPPORTED_MEDIA_TYPE',
        `send the body as JSON with the header "content-type: application/json" (got ${got})`,
        { param: 'content-type' },
      );
    }
  });
  const parser = (request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (exceedsDepth(text, options.maxDepth)) {
      done(createError('RAGWAY_ERR_INVALID_JSON', `the request body nests arrays and objects deeper than ${options.maxDepth} levels`));
      return;
    }
    parseJson(request, text, (err, parsed) => {
      if (err !== null) {
        done(err);
        return;
      }
      const where = findNonFiniteNumber(parsed);
      if (where !== undefined) {
        const param = where === '' ? null : where;
        done(createError('RAGWAY_ERR_INVALID_REQUEST', `${param ?? 'the body'} is a number too large to represent (finite numbers only)`, { param }));
        return;
      }
      done(null, parsed);
    });
  };
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parser);
  app.addContentTypeParser(/^application\/[a-z0-9!#$&^_.+-]+\+json(\s*;.*)?$/i, { parseAs: 'string' }, parser);
}
