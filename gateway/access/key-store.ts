// The gateway's view of the keys file: loaded at start, re-read whenever its modification
// time, size or inode changes (polled: fs.watch misses renames on some filesystems, and a
// stat every 250 ms costs nothing), so `ragway keys revoke` takes effect within one poll,
// without a restart. A file that turns unreadable or invalid keeps the last good keys and
// says so; a file that disappears leaves no key valid (it never turns auth off).
import { timingSafeEqual } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { digestsEqual, hashSecret } from '../../core/secrets.js';
import { keyIdOf, readKeysFile, type KeyEntry, type KeyLimits, type Scope } from './keys-file.js';

export interface ApiKey {
  id: string;
  name: string;
  scopes: ReadonlySet<Scope>;
  namespaces: readonly string[];
  limits: KeyLimits;
}

export interface KeyStoreEvents {
  /** Keys added or revoked since the last load (an audit line each). */
  onChange?: (change: { added: string[]; revoked: string[]; active: number }) => void;
  onError?: (message: string) => void;
}

interface Loaded {
  entry: KeyEntry;
  key: ApiKey;
  /**
   * The presentation that last matched the stored digest, so a key seen again is checked with
   * one constant-time comparison instead of a SHA-256 per request (the auth check's main cost
   * on cached search). Lives only in this process's memory, never logged or written, and goes
   * with the entry when the keys file changes (a revoked key loses it at the next poll).
   */
  verified?: Buffer;
}

export class KeyStore {
  readonly path: string;
  readonly #events: KeyStoreEvents;
  #byId = new Map<string, Loaded>();
  #signature = '';
  #exists = false;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;

  private constructor(path: string, events: KeyStoreEvents) {
    this.path = path;
    this.#events = events;
  }

  /** Loads the file (a missing file is no keys; an invalid one is an error) and starts polling. */
  static async open(path: string, pollMs: number, events: KeyStoreEvents = {}): Promise<KeyStore> {
    const store = new KeyStore(path, events);
    await store.#reload(true);
    store.#timer = setInterval(() => {
      store.#polling ??= store.#reload(false).finally(() => {
        store.#polling = undefined;
      });
    }, pollMs);
    store.#timer.unref();
    return store;
  }

  /** True once the file exists: from then on every request needs a key. */
  get present(): boolean {
    return this.#exists;
  }

  get activeKeys(): number {
    return this.#byId.size;
  }

  /** The key `presented` belongs to, or undefined (unknown, malformed or revoked). */
  authenticate(presented: string): ApiKey | undefined {
    const id = keyIdOf(presented);
    const loaded = id === undefined ? undefined : this.#byId.get(id);
    const verified = loaded?.verified;
    if (verified !== undefined) {
      const bytes = Buffer.from(presented, 'utf8');
      // Equal lengths first (timingSafeEqual needs them; the key format fixes the length anyway).
      if (bytes.length === verified.length && timingSafeEqual(bytes, verified)) return loaded?.key;
    }
    // Hash and compare even without a candidate, so timing does not tell ids apart.
    const digest = hashSecret(presented);
    const matches = digestsEqual(digest, loaded?.entry.hash ?? 'sha256:' + '0'.repeat(64));
    if (!matches || loaded === undefined) return undefined;
    loaded.verified = Buffer.from(presented, 'utf8');
    return loaded.key;
  }

  close(): void {
    clearInterval(this.#timer);
  }

  async #reload(initial: boolean): Promise<void> {
    let signature: string;
    try {
      const info = await stat(this.path);
      signature = `${info.ino}:${info.size}:${info.mtimeMs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#events.onError?.(`keys file ${this.path}: ${(err as Error).message}; keeping the keys loaded before`);
        return;
      }
      signature = 'missing';
    }
    if (signature === this.#signature) return;
    let entries: KeyEntry[];
    try {
      entries = signature === 'missing' ? [] : (await readKeysFile(this.path)).keys;
    } catch (err) {
      if (initial) throw err;
      this.#events.onError?.(`${(err as Error).message}; keeping the keys loaded before`);
      return;
    }
    const next = new Map<string, Loaded>();
    for (const entry of entries) {
      if (entry.revoked_at !== undefined) continue;
      next.set(entry.id, {
        entry,
        key: { id: entry.id, name: entry.name, scopes: new Set(entry.scopes), namespaces: entry.namespaces, limits: entry.limits },
      });
    }
    const added = [...next.values()].filter(({ entry }) => !this.#byId.has(entry.id)).map(({ entry }) => entry.name);
    const revoked = [...this.#byId.values()].filter(({ entry }) => !next.has(entry.id)).map(({ entry }) => entry.name);
    this.#byId = next;
    this.#signature = signature;
    // Once a keys file has existed, its disappearance means no valid key, not no auth.
    this.#exists = this.#exists || signature !== 'missing';
    if (added.length > 0 || revoked.length > 0) this.#events.onChange?.({ added, revoked, active: next.size });
  }
}
