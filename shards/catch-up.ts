// Catch-up of a restarted replica from the other replicas of its shard (`--peers`). It asks
// a peer for the changes after the peer's seq it last caught up to, page by page, and
// applies them as ordinary writes: they carry versions, so whatever this replica already
// holds (or takes meanwhile from the gateway) makes them no-ops rather than conflicts. When
// the peer no longer retains those changes it copies the peer's export instead, then
// continues with the changes after the export's high-water mark.
//
// Seqs are per replica, so the position in a peer's feed is remembered per peer (in
// `peer-cursors.json`), never taken from this replica's own wal_seq: the two diverge as soon
// as one replica takes a write the other missed. A peer never synced from (or whose URL
// changed) is read from the start of its retained feed, or copied from its export —
// redundant work, since applying is idempotent, but never a missed write.
//
// A peer that is down, or itself not ready (503), is skipped for the next one. When no peer
// gives a complete catch-up within `unreachableTimeoutMs`, the replica serves its own data:
// a cluster that restarts every replica at once must still come up.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import { Agent, type Dispatcher } from 'undici';
import { abortError, throwIfAborted } from '../core/errors.js';
import type { IndexStore } from './index-store.js';
import {
  EXPORT_FORMAT,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  SHARD_PATHS,
  type Change,
  type ChangesResponse,
  type ExportHeader,
  type ExportLine,
} from './protocol.js';
import { CLUSTER_TOKEN_HEADER } from './access.js';

export interface CatchUpOptions {
  store: IndexStore;
  /** Base URLs of the other replicas, tried in order. */
  peers: readonly string[];
  signal: AbortSignal;
  /** Serve own data when no peer completed a catch-up within this long (default 5 s). */
  unreachableTimeoutMs?: number;
  /** Changes per page (default 1000). */
  pageLimit?: number;
  /** Per request: headers and idle body (default 60 s; an export streams much longer than that in total). */
  requestTimeoutMs?: number;
  log?: (level: 'info' | 'warn', message: string) => void;
  /** The cluster credential, sent to peers (they refuse the feed without it). */
  clusterToken?: string | undefined;
}

export interface CatchUpResult {
  /** The peer caught up from; undefined when none could be used in time. */
  peer: string | undefined;
  /** Changes applied from the feed (those that changed nothing included). */
  changes: number;
  /** Documents merged from exports. */
  imported: number;
  ms: number;
}

const DEFAULTS = { unreachableTimeoutMs: 5_000, pageLimit: 1_000, requestTimeoutMs: 60_000 } as const;
/** A peer that truncates its feed faster than we can copy its export is not going to work out. */
const MAX_IMPORTS_PER_PEER = 3;
/** Apply this many changes or documents, then let the event loop serve probes and writes. */
const YIELD_EVERY = 64;

/** Never rejects except on abort: a failed catch-up leaves the replica serving its own data. */
export async function catchUpFromPeers(options: CatchUpOptions): Promise<CatchUpResult> {
  const started = Date.now();
  const timeoutMs = options.unreachableTimeoutMs ?? DEFAULTS.unreachableTimeoutMs;
  const log = options.log ?? (() => undefined);
  const agent = new Agent({ connections: 2, keepAliveTimeout: 10_000 });
  const giveUpAt = started + timeoutMs;
  // A peer that stays down fails the same way every round: say so once.
  const reported = new Set<string>();
  try {
    for (let round = 0; ; round++) {
      for (const peer of options.peers) {
        throwIfAborted(options.signal);
        try {
          const result = await catchUpFrom(peer.replace(/\/+$/, ''), agent, options, log);
          return { ...result, peer, ms: Date.now() - started };
        } catch (err) {
          if (options.signal.aborted) throw abortError(options.signal);
          const message = `catch-up from ${peer} failed: ${(err as Error).message}`;
          if (!reported.has(message)) log('warn', message);
          reported.add(message);
        }
      }
      const left = giveUpAt - Date.now();
      if (left <= 0) {
        log('warn', `no peer of ${options.peers.join(', ')} completed a catch-up within ${timeoutMs} ms; serving this replica's own data (wal_seq ${options.store.walSeq})`);
        return { peer: undefined, changes: 0, imported: 0, ms: Date.now() - started };
      }
      await sleep(Math.min(left, 100 * 2 ** Math.min(round, 4)), undefined, { signal: options.signal }).catch(() => {
        throw abortError(options.signal);
      });
    }
  } finally {
    await agent.destroy();
  }
}

async function catchUpFrom(
  peer: string,
  agent: Agent,
  options: CatchUpOptions,
  log: NonNullable<CatchUpOptions['log']>,
): Promise<{ changes: number; imported: number }> {
  const { store, signal } = options;
  const pageLimit = options.pageLimit ?? DEFAULTS.pageLimit;
  const cursors = await readCursors(store.dataDir);
  let since = cursors[peer] ?? 0;
  let changes = 0;
  let imported = 0;
  let imports = 0;
  for (;;) {
    const page = JSON.parse(await readText(peer, `${SHARD_PATHS.changes}?since=${since}&limit=${pageLimit}`, agent, options)) as ChangesResponse;
    if (page.snapshot_required) {
      imports += 1;
      if (imports > MAX_IMPORTS_PER_PEER) throw new Error(`${peer} kept dropping its changes faster than its export could be copied`);
      log('info', `${peer} no longer retains its changes after seq ${since}; copying its export`);
      const copy = await importExport(peer, agent, options);
      log('info', `imported ${copy.documents} documents from ${peer} up to its seq ${copy.highWater}`);
      imported += copy.documents;
      since = copy.highWater;
      continue;
    }
    for (const [i, change] of page.changes.entries()) {
      if (i % YIELD_EVERY === YIELD_EVERY - 1) await yieldToLoop();
      throwIfAborted(signal);
      applyChange(store, change);
      since = change.seq;
      changes += 1;
    }
    // Only what is on disk counts as caught up: the replica declares itself ready next.
    await store.durable();
    if (page.changes.length === 0 || since >= page.high_water) break;
  }
  await writeCursors(store.dataDir, { ...cursors, [peer]: since });
  log('info', `caught up from ${peer}: ${changes} changes, ${imported} documents imported, wal_seq now ${store.walSeq}`);
  return { changes, imported };
}

const CURSORS_FILE = 'peer-cursors.json';

/** Each peer's seq this replica has applied everything up to (absent: never synced). */
async function readCursors(dataDir: string): Promise<Record<string, number>> {
  try {
    const parsed = JSON.parse(await readFile(join(dataDir, CURSORS_FILE), 'utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null) return {};
    return Object.fromEntries(Object.entries(parsed).filter((entry): entry is [string, number] => Number.isInteger(entry[1])));
  } catch {
    return {};
  }
}

async function writeCursors(dataDir: string, cursors: Record<string, number>): Promise<void> {
  const path = join(dataDir, CURSORS_FILE);
  await writeFile(`${path}.tmp`, JSON.stringify(cursors));
  await rename(`${path}.tmp`, path);
}

function applyChange(store: IndexStore, change: Change): void {
  if (change.op === 'upsert' && change.upsert !== undefined) store.upsert(change.upsert);
  else if (change.op === 'delete' && change.delete !== undefined) store.delete(change.delete);
  else throw new Error(`change seq ${change.seq} has op ${String(change.op)} but no matching request`);
}

/** One request to a peer with the protocol header; anything but a 200 throws, saying what the peer said. */
export async function peerRequest(
  peer: string,
  path: string,
  agent: Agent,
  options: { signal: AbortSignal; requestTimeoutMs?: number | undefined; clusterToken?: string | undefined },
  body?: unknown,
): Promise<Dispatcher.ResponseData> {
  const timeout = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
  const response = await agent.request({
    origin: new URL(peer).origin,
    path: `${new URL(peer).pathname.replace(/\/+$/, '')}${path}`,
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
      accept: 'application/json',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.clusterToken ? { [CLUSTER_TOKEN_HEADER]: options.clusterToken } : {}),
    },
    body: body === undefined ? null : JSON.stringify(body),
    signal: options.signal,
    headersTimeout: timeout,
    bodyTimeout: timeout,
  });
  if (response.statusCode !== 200) {
    const text = await response.body.text().catch(() => '');
    throw new Error(`${body === undefined ? 'GET' : 'POST'} ${path} answered HTTP ${response.statusCode}: ${describeError(text)}`);
  }
  return response;
}

function get(peer: string, path: string, agent: Agent, options: CatchUpOptions): Promise<Dispatcher.ResponseData> {
  return peerRequest(peer, path, agent, options);
}

async function readText(peer: string, path: string, agent: Agent, options: CatchUpOptions): Promise<string> {
  return (await get(peer, path, agent, options)).body.text();
}

function describeError(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } };
    if (typeof parsed.error?.message === 'string') return parsed.error.message;
  } catch {
    // Not the error envelope: show the start of whatever it was.
  }
  return body.slice(0, 200);
}

/** Streams the peer's export into the store; throws unless it arrived whole (header … end). */
async function importExport(peer: string, agent: Agent, options: CatchUpOptions): Promise<{ highWater: number; documents: number }> {
  const { store, signal } = options;
  const response = await get(peer, SHARD_PATHS.export, agent, options);
  const decoder = new TextDecoder();
  let pending = '';
  let header: ExportHeader | undefined;
  let ended = false;
  let documents = 0;
  let chunks = 0;
  const handle = (line: string): void => {
    if (line.trim() === '') return;
    const parsed = JSON.parse(line) as ExportLine;
    if (header === undefined) {
      if (parsed.type !== 'header') throw new Error('the export does not start with a header line');
      if (parsed.format !== EXPORT_FORMAT) throw new Error(`the export has format ${parsed.format}; this build reads ${EXPORT_FORMAT}`);
      if (parsed.dim !== store.dim || parsed.space !== store.space) {
        throw new Error(`the peer holds a ${parsed.dim}-dimensional ${parsed.space} index; this replica is ${store.dim}-dimensional ${store.space}`);
      }
      header = parsed;
      return;
    }
    if (ended) throw new Error('the export has lines after its end line');
    if (parsed.type === 'document') {
      store.importDocument(parsed);
      documents += 1;
      chunks += parsed.chunks.length;
    } else if (parsed.type === 'end') {
      if (parsed.documents !== documents || parsed.chunks !== chunks) {
        throw new Error(`the export's end line counts ${parsed.documents} documents and ${parsed.chunks} chunks; received ${documents} and ${chunks}`);
      }
      ended = true;
    } else {
      throw new Error(`unexpected export line type ${JSON.stringify((parsed as { type?: unknown }).type)}`);
    }
  };
  for await (const data of response.body) {
    throwIfAborted(signal);
    pending += decoder.decode(data as Buffer, { stream: true });
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const [i, line] of lines.entries()) {
      if (i % YIELD_EVERY === YIELD_EVERY - 1) await yieldToLoop();
      handle(line);
    }
  }
  handle(pending + decoder.decode());
  if (header === undefined || !ended) throw new Error('the export stream ended early (no end line); not using a partial copy');
  store.completeImport(header.high_water);
  return { highWater: header.high_water, documents };
}
