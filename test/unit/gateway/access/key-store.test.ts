import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { KeyStore } from '../../../../gateway/access/key-store.js';
import { addKey, readKeysFile, revokeKey, writeKeysFile } from '../../../../gateway/access/keys-file.js';

describe('KeyStore.authenticate', () => {
  it('accepts a key again without rehashing it, and still refuses a near miss and a revoked key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ragway-keystore-'));
    const path = join(dir, 'keys.json');
    const file = await readKeysFile(path);
    const { key } = addKey(file, { name: 'k', scopes: ['read'], namespaces: ['a'], limits: {} });
    await writeKeysFile(path, file);
    const store = await KeyStore.open(path, 20);
    try {
      assert.equal(store.authenticate(key)?.name, 'k');
      assert.equal(store.authenticate(key)?.name, 'k', 'the remembered presentation matches');
      // Same id and length, one character off: neither the remembered bytes nor the digest match.
      const last = key.at(-1) === 'A' ? 'B' : 'A';
      assert.equal(store.authenticate(`${key.slice(0, -1)}${last}`), undefined);
      assert.equal(store.authenticate(`${key}x`), undefined);
      assert.equal(store.authenticate(key)?.name, 'k');
      revokeKey(file, 'k');
      await writeKeysFile(path, file);
      const deadline = Date.now() + 2_000;
      while (store.authenticate(key) !== undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(store.authenticate(key), undefined, 'a revoked key is refused even after it was remembered');
    } finally {
      store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
