// `ragway keys create|list|revoke`: manages the API keys file the gateway reloads on its
// own (within RAGWAY_KEYS_POLL_MS). A new key is printed once, on stdout; the file keeps
// only its digest. Every change is also one audit line (JSON) on stderr.
import { resolve, join } from 'node:path';
import { loadConfig } from '../gateway/config.js';
import { SCOPES, addKey, readKeysFile, revokeKey, writeKeysFile, type KeyLimits, type Scope } from '../gateway/access/keys-file.js';
import { NAMESPACE_PATTERN_RE } from '../shards/access.js';
import { integerFlag, parseFlags, UsageError } from './args.js';

const USAGE = `ragway keys create --name NAME [--scopes read,write,admin] [--namespaces NS[,team-*]]
                   [--rps N] [--burst N] [--tpm N] [--max-streams N] [--file PATH]
ragway keys list   [--file PATH] [--json]
ragway keys revoke <id | name> [--file PATH]`;

/** The keys file: --file, else RAGWAY_KEYS_FILE, else <RAGWAY_DATA_DIR>/keys.json. */
export function keysFilePath(flag: string | undefined): string {
  const config = loadConfig();
  return resolve(flag ?? (config.keysFile !== '' ? config.keysFile : join(config.dataDir, 'keys.json')));
}

function auditLine(event: string, fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), audit: true, event, ...fields })}\n`);
}

export async function runKeys(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  switch (action) {
    case 'create':
      return create(rest);
    case 'list':
      return list(rest);
    case 'revoke':
      return revoke(rest);
    default:
      throw new UsageError(`usage:\n${USAGE}`);
  }
}

async function create(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    name: { type: 'string' },
    scopes: { type: 'string' },
    namespaces: { type: 'string' },
    rps: { type: 'string' },
    burst: { type: 'string' },
    tpm: { type: 'string' },
    'max-streams': { type: 'string' },
    file: { type: 'string' },
  });
  if (values.name === undefined || values.name.trim() === '') throw new UsageError('ragway keys create needs --name NAME');
  const scopes = (values.scopes ?? 'read').split(',').map((scope) => scope.trim());
  for (const scope of scopes) {
    if (!(SCOPES as readonly string[]).includes(scope)) throw new UsageError(`--scopes: "${scope}" is not one of ${SCOPES.join(', ')}`);
  }
  const namespaces = (values.namespaces ?? 'default').split(',').map((ns) => ns.trim());
  for (const ns of namespaces) {
    if (!NAMESPACE_PATTERN_RE.test(ns)) throw new UsageError(`--namespaces: "${ns}" is neither a namespace nor a prefix pattern such as team-a-*`);
  }
  const limits: KeyLimits = {};
  if (values.rps !== undefined) {
    const rps = Number(values.rps);
    if (!Number.isFinite(rps) || rps <= 0) throw new UsageError(`--rps must be a positive number, got "${values.rps}"`);
    limits.requests_per_second = rps;
  }
  const burst = integerFlag('burst', values.burst, 1);
  const tpm = integerFlag('tpm', values.tpm, 1);
  const maxStreams = integerFlag('max-streams', values['max-streams'], 1);
  if (burst !== undefined) limits.burst = burst;
  if (tpm !== undefined) limits.tokens_per_minute = tpm;
  if (maxStreams !== undefined) limits.max_streams = maxStreams;

  const path = keysFilePath(values.file);
  const file = await readKeysFile(path);
  const { key, entry } = addKey(file, { name: values.name.trim(), scopes: [...new Set(scopes)] as Scope[], namespaces, limits });
  await writeKeysFile(path, file);
  auditLine('key.created', { key: entry.name, id: entry.id, scopes: entry.scopes, namespaces: entry.namespaces, limits: entry.limits, file: path });
  process.stdout.write(`${key}\n`);
  process.stderr.write(`created key "${entry.name}" (id ${entry.id}) in ${path}; it is shown only this once\n`);
}

async function list(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { file: { type: 'string' }, json: { type: 'boolean' } });
  const file = await readKeysFile(keysFilePath(values.file));
  // Digests stay in the file: a listing is for people, and nothing in it can be replayed.
  const rows = file.keys.map(({ hash: _hash, ...entry }) => entry);
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  for (const row of rows) {
    const limits = Object.entries(row.limits).map(([name, value]) => `${name}=${value}`).join(' ') || 'unlimited';
    const state = row.revoked_at === undefined ? 'active' : `revoked ${row.revoked_at}`;
    process.stdout.write(`${row.id}  ${row.name}  scopes=${row.scopes.join(',')}  namespaces=${row.namespaces.join(',')}  ${limits}  ${state}\n`);
  }
}

async function revoke(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, { file: { type: 'string' } }, true);
  const which = positionals[0];
  if (which === undefined) throw new UsageError('ragway keys revoke needs the id or name of a key');
  const path = keysFilePath(values.file);
  const file = await readKeysFile(path);
  const entry = revokeKey(file, which);
  await writeKeysFile(path, file);
  auditLine('key.revoked', { key: entry.name, id: entry.id, file: path });
  process.stderr.write(`revoked key "${entry.name}" (id ${entry.id}); gateways stop accepting it within a poll interval\n`);
}
