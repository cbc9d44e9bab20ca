// Cache keys. Pure functions: the same request must give the same key in every gateway
// process, and two requests that could get different answers must never share one.
import { createHash } from 'node:crypto';

// Zero-width space and BOM: pasted text carries them invisibly and they change no meaning.
// ZWJ/ZWNJ are kept — they do change meaning (Persian, Indic scripts, emoji sequences).
const INVISIBLE = /[\u200B\uFEFF]/gu;
const WHITESPACE = /\s+/gu;
// Checked after NFKC, which has already folded full-width ？！． and … into ASCII; the
// ideographic full stop 。 is no compatibility form, so it is listed itself.
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
const TRAILING = new Set(['?', '!', '.', ',', ';', ':', ' ', '\u3002']);

/**
 * The query text as a cache key sees it. "How do I set a TTL?", "how do I set a ttl" and
 * "  How do I  set a TTL ?! " ask the same thing; folding them into one key raises the hit rate
 * of the hottest (most repeated, most variously typed) questions:
 *
 * - NFKC, so full-width, ligature and composed/decomposed forms of one text are one key.
 * - lower case: the default model's tokenizer lowercases anyway; with a cased model it is a
 *   deliberate trade (one embedding stands for all casings) for a much higher hit rate.
 * - whitespace runs collapse to one space and the ends are trimmed (copy-paste noise).
 * - trailing ? ! . , ; : are dropped: end-of-question punctuation carries no intent, while
 *   punctuation inside the text does ("c#", "node.js", "3.14") and is kept.
 *
 * Use it for keys only: the original text is what gets embedded and shown.
 */
export function normalizeQuery(text: string): string {
  // NFKC leaves printable ASCII unchanged, and most queries are that: skip it on the hot path.
  const folded = (PRINTABLE_ASCII.test(text) ? text : text.normalize('NFKC')).replace(INVISIBLE, '').toLowerCase().replace(WHITESPACE, ' ');
  // A loop, not /[?!. ]+$/: that regex backtracks quadratically on a long run of punctuation
  // followed by a letter, and query text comes from clients.
  let end = folded.length;
  while (end > 0 && TRAILING.has(folded[end - 1] ?? '')) end -= 1;
  let start = 0;
  while (start < end && folded[start] === ' ') start += 1;
  return folded.slice(start, end);
}

/**
 * JSON with object keys sorted (by UTF-16 code unit, locale-independent) at every depth, so
 * `{a:1,b:2}` and `{b:2,a:1}` give one key; arrays keep their order.
 *
 * `undefined` means absent, as in JSON: an undefined property is omitted (so `{k:5}` and
 * `{k:5, filter:undefined}` are one key) and undefined in an array or at the top is `null`.
 * Values JSON would silently turn into something else (NaN and ±Infinity → null, Map/Set →
 * {}, functions and symbols dropped, typed arrays → index-keyed objects) throw a TypeError
 * instead: in a cache key a silent conversion is a collision. `toJSON()` is honoured (Dates).
 */
export function stableStringify(value: unknown): string {
  return stringifyValue(value, new Set<object>(), '', '');
}

/** `key` is what JSON.stringify would hand to toJSON; `path` is for error messages. */
function stringifyValue(value: unknown, ancestors: Set<object>, path: string, key: string): string {
  if (value === undefined || value === null) return 'null';
  if (typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: (key: string) => unknown }).toJSON(key);
    if (value === undefined || value === null) return 'null';
  }
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`cannot make a cache key of ${value} at ${describe(path)}`);
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError(`cannot make a cache key of a ${typeof value} at ${describe(path)}`);
  }
  const object = value as object;
  if (object instanceof Map || object instanceof Set || ArrayBuffer.isView(object) || object instanceof ArrayBuffer) {
    const hint = ArrayBuffer.isView(object) ? ' (use vectorKey for vectors)' : '';
    throw new TypeError(`cannot make a cache key of a ${object.constructor.name} at ${describe(path)}${hint}`);
  }
  if (ancestors.has(object)) throw new TypeError(`cannot make a cache key of a circular structure at ${describe(path)}`);
  ancestors.add(object);
  let out: string;
  if (Array.isArray(object)) {
    const items = (object as unknown[]).map((item, i) => stringifyValue(item, ancestors, `${path}[${i}]`, String(i)));
    out = `[${items.join(',')}]`;
  } else {
    const record = object as Record<string, unknown>;
    const fields: string[] = [];
    for (const name of Object.keys(record).sort()) {
      const field = record[name];
      if (field === undefined) continue;
      fields.push(`${JSON.stringify(name)}:${stringifyValue(field, ancestors, path === '' ? name : `${path}.${name}`, name)}`);
    }
    out = `{${fields.join(',')}}`;
  }
  ancestors.delete(object);
  return out;
}

function describe(path: string): string {
  return path === '' ? 'the top level' : JSON.stringify(path);
}

/**
 * A short, fixed-length key for a vector: sha256 of its bytes, hex. Hashing 1.5 KB (384 dims)
 * costs about a microsecond, and a 64-char key keeps the cache's key bytes small where the
 * base64 of the vector itself would be 2 KB per entry. Only the view's own bytes are hashed
 * (a subarray of a larger buffer hashes like a copy of itself). Byte order is the platform's,
 * which is fine for an in-process cache.
 */
export function vectorKey(vector: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength)).digest('hex');
}

/**
 * One key for a request: sha256 (hex) of the stableStringify of its parts. Property order
 * does not matter; any difference in a value does, and the hash keeps keys at 64 chars however
 * big the filter is. Callers put every input that can change the answer in `parts` (normalized
 * query, k, filter, namespace, model, shard epochs...).
 */
export function cacheKey(parts: Record<string, unknown>): string {
  const text = stableStringify(parts);
  // Short keys are used as they are (hashing costs more than it saves on the hot path);
  // long ones (chat histories, big filters) are hashed. The two forms cannot collide: a
  // stable JSON object starts with "{", a digest is hex.
  return text.length <= MAX_PLAIN_KEY_LENGTH ? text : createHash('sha256').update(text).digest('hex');
}

const MAX_PLAIN_KEY_LENGTH = 256;
