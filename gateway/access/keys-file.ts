// The API keys file: JSON, written by `ragway keys` and read (and re-read on change) by the
// gateway. It never holds a key itself, only its SHA-256 digest; the key is shown once, when
// it is created. Writes go to a temporary file renamed over the old one, so a gateway
// polling the file never reads half of it.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateToken, hashSecret } from '../../core/secrets.js';
import { NAMESPACE_PATTERN_RE } from '../../shards/access.js';

export const SCOPES = ['read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export const KeyLimits = Type.Object(
  {
    /** Sustained requests per second (token bucket refill rate). */
    requests_per_second: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    /** Requests allowed at once above the rate (bucket size); default: one second's worth. */
    burst: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Embedded plus generated tokens per minute. */
    tokens_per_minute: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Streams (SSE answers) open at once. */
    max_streams: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);
export type KeyLimits = Static<typeof KeyLimits>;

export const KeyEntry = Type.Object(
  {
    id: Type.String({ pattern: '^[0-9a-f]{8,32}$' }),
    name: Type.String({ minLength: 1, maxLength: 128 }),
    hash: Type.String({ pattern: '^sha256:[0-9a-f]{64}$' }),
    scopes: Type.Array(Type.Union(SCOPES.map((scope) => Type.Literal(scope))), { minItems: 1, uniqueItems: true }),
    namespaces: Type.Array(Type.String({ pattern: NAMESPACE_PATTERN_RE.source }), { minItems: 1 }),
    limits: KeyLimits,
    created_at: Type.String(),
    revoked_at: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type KeyEntry = Static<typeof KeyEntry>;

export const KeysFile = Type.Object({ version: Type.Literal(1), keys: Type.Array(KeyEntry) }, { additionalProperties: false });
export type KeysFile = Static<typeof KeysFile>;

export const KEY_PREFIX = 'rgw_';
/** `rgw_<id>_<secret>`: the id finds the entry, the whole key is compared by digest. */
const KEY_FORMAT = /^rgw_([0-9a-f]{8,32})_[A-Za-z0-9_-]{20,200}$/;

export class KeysFileError extends Error {
  override readonly name = 'ConfigError';
}

export function keyIdOf(key: string): string | undefined {
  return KEY_FORMAT.exec(key)?.[1];
}

export function parseKeysFile(text: string, path: string): KeysFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new KeysFileError(`keys file ${path} is not JSON: ${(err as Error).message}`);
  }
  if (!Value.Check(KeysFile, parsed)) {
    const first = [...Value.Errors(KeysFile, parsed)][0];
    throw new KeysFileError(`keys file ${path}: ${first?.path || '/'} ${first?.message ?? 'is invalid'}`);
  }
  const ids = new Set<string>();
  for (const key of parsed.keys) {
    if (ids.has(key.id)) throw new KeysFileError(`keys file ${path}: key id ${key.id} appears twice`);
    ids.add(key.id);
  }
  return parsed;
}

/** The file's keys, or an empty list when the file does not exist yet. */
export async function readKeysFile(path: string): Promise<KeysFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, keys: [] };
    throw err;
  }
  return parseKeysFile(text, path);
}

export async function writeKeysFile(path: string, file: KeysFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temporary, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

export interface NewKey {
  name: string;
  scopes: Scope[];
  namespaces: string[];
  limits: KeyLimits;
}

/** Adds a key; returns the key itself (shown once, never stored) and its entry. */
export function addKey(file: KeysFile, spec: NewKey, now = new Date()): { key: string; entry: KeyEntry } {
  if (file.keys.some((entry) => entry.name === spec.name && entry.revoked_at === undefined)) {
    throw new KeysFileError(`a key named "${spec.name}" already exists; revoke it first or pick another name`);
  }
  let id: string;
  do id = randomBytes(6).toString('hex');
  while (file.keys.some((entry) => entry.id === id));
  const key = generateToken(`${KEY_PREFIX}${id}_`);
  const entry: KeyEntry = {
    id,
    name: spec.name,
    hash: hashSecret(key),
    scopes: spec.scopes,
    namespaces: spec.namespaces,
    limits: spec.limits,
    created_at: now.toISOString(),
  };
  if (!Value.Check(KeyEntry, entry)) {
    const first = [...Value.Errors(KeyEntry, entry)][0];
    throw new KeysFileError(`invalid key: ${first?.path ?? ''} ${first?.message ?? ''}`);
  }
  file.keys.push(entry);
  return { key, entry };
}

/** Marks the key named or numbered `which` revoked; returns its entry. */
export function revokeKey(file: KeysFile, which: string, now = new Date()): KeyEntry {
  const entry = file.keys.find((candidate) => candidate.revoked_at === undefined && (candidate.id === which || candidate.name === which));
  if (entry === undefined) throw new KeysFileError(`no active key with id or name "${which}"`);
  entry.revoked_at = now.toISOString();
  return entry;
}
