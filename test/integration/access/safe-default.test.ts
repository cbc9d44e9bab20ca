// The safe default: without keys the gateway listens on loopback only (and says so); bound
// to any other address it refuses to start unless authentication is switched off on purpose,
// and with a keys file it starts anywhere.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { loadConfig, type Config } from '../../../gateway/config.js';
import { closeGracefully, startGateway } from '../../../gateway/server.js';
import { InProcessShardClient } from '../../../retriever/in-process-shard-client.js';
import { IndexStore } from '../../../shards/index-store.js';
import { loadDefaultBackend, tempDir } from '../../helpers/cluster.js';
import { writeKeys } from '../../helpers/keys.js';

describe('safe default for authentication', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let backend: OnnxEmbeddingBackend;
  let store: IndexStore;

  before(async () => {
    dir = await tempDir('safe-default');
    backend = await loadDefaultBackend();
    store = IndexStore.open({ dataDir: join(dir.path, 'shard'), dim: backend.dimensions, space: 'cosine', autoSaveMs: 0 });
  });
  after(async () => {
    store?.close();
    await backend?.close();
    await dir?.remove();
  });

  const start = (overrides: Partial<Config>) =>
    startGateway(loadConfig({}, { port: 0, logLevel: 'silent', ...overrides }), {
      embeddingBackend: backend,
      shardClients: [new InProcessShardClient(store, { label: 'shard-0' })],
      defaultMetrics: false,
    });

  it('serves without keys on loopback', async () => {
    const running = await start({ host: '127.0.0.1' });
    assert.equal(running.app.access.mode, 'open');
    await closeGracefully(running.app, 0);
  });

  it('refuses to listen beyond loopback without keys', async () => {
    await assert.rejects(start({ host: '0.0.0.0' }), (err: Error) => err.name === 'ConfigError' && /refusing to listen on 0\.0\.0\.0/.test(err.message) && /RAGWAY_AUTH=off/.test(err.message));
    // A keys file that does not exist yet is still "no keys".
    await assert.rejects(start({ host: '0.0.0.0', keysFile: join(dir.path, 'missing.json') }), /refusing to listen/);
  });

  it('listens beyond loopback with auth switched off on purpose, or with keys', async () => {
    const off = await start({ host: '0.0.0.0', auth: 'off' });
    assert.equal(off.app.access.mode, 'off');
    await closeGracefully(off.app, 0);
    const keysFile = join(dir.path, 'keys.json');
    await writeKeys(keysFile, [{ name: 'k', scopes: ['read'], namespaces: ['*'], limits: {} }]);
    const keyed = await start({ host: '0.0.0.0', keysFile });
    assert.equal(keyed.app.access.mode, 'keys');
    await closeGracefully(keyed.app, 0);
  });

  it('RAGWAY_AUTH=on without a keys file is a configuration error', async () => {
    await assert.rejects(start({ auth: 'on' }), /RAGWAY_AUTH=on needs a keys file/);
  });
});
