import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, SETTINGS, loadConfig, parseShardSpec, renderConfigTable, resolveModelDir } from '../../../gateway/config.js';
import { defaultModelDir, packageRoot } from '../../../core/package-paths.js';

describe('loadConfig', () => {
  it('uses defaults for an empty environment', () => {
    const config = loadConfig({});
    assert.equal(config.port, 8080);
    assert.equal(config.searchMaxK, 100);
    assert.equal(config.embedThreads, 1);
  });

  it('reads and validates variables, naming the bad one', () => {
    assert.equal(loadConfig({ RAGWAY_PORT: '9000' }).port, 9000);
    assert.throws(() => loadConfig({ RAGWAY_PORT: 'eighty' }), (err: unknown) => err instanceof ConfigError && /RAGWAY_PORT/.test(err.message));
    assert.throws(() => loadConfig({ RAGWAY_SEARCH_MAX_K: '0' }), /RAGWAY_SEARCH_MAX_K must be between/);
    assert.throws(() => loadConfig({ RAGWAY_LOG_LEVEL: 'loud' }), /RAGWAY_LOG_LEVEL must be one of/);
    assert.throws(() => loadConfig({ RAGWAY_SEARCH_DEFAULT_K: '50', RAGWAY_SEARCH_MAX_K: '20' }), /exceeds/);
  });

  it('parses booleans strictly', () => {
    assert.equal(loadConfig({ RAGWAY_EMBED_ALLOW_DOWNLOAD: 'true' }).embedAllowDownload, true);
    assert.equal(loadConfig({}).embedAllowDownload, false);
    assert.throws(() => loadConfig({ RAGWAY_EMBED_ALLOW_DOWNLOAD: 'yes please' }), /RAGWAY_EMBED_ALLOW_DOWNLOAD/);
  });

  it('resolves the embedding model: bundled, local folder, or hub id', () => {
    assert.equal(resolveModelDir(loadConfig({})), defaultModelDir());
    assert.equal(resolveModelDir(loadConfig({ RAGWAY_EMBED_MODEL: packageRoot() })), packageRoot());
    assert.equal(resolveModelDir(loadConfig({ RAGWAY_EMBED_MODEL: 'Xenova/bge-small-en-v1.5' })), 'Xenova/bge-small-en-v1.5');
  });

  it('lets CLI overrides win over the environment', () => {
    assert.equal(loadConfig({ RAGWAY_PORT: '9000' }, { port: 9100 }).port, 9100);
  });
});

describe('parseShardSpec', () => {
  it('splits shards by ; and replicas by ,', () => {
    assert.deepEqual(parseShardSpec('http://a:1,http://b:1;http://c:2'), [['http://a:1', 'http://b:1'], ['http://c:2']]);
    assert.deepEqual(parseShardSpec(''), []);
  });
  it('rejects what is not an http URL', () => {
    assert.throws(() => parseShardSpec('localhost:7001'), ConfigError);
    assert.throws(() => parseShardSpec('ftp://a:1'), /http or https/);
  });
});

describe('README config table', () => {
  it('documents every setting with its default', () => {
    const readme = readFileSync(join(packageRoot(), 'README.md'), 'utf8');
    for (const line of renderConfigTable().split('\n').slice(2)) assert.ok(readme.includes(line), `README lacks: ${line}`);
    assert.equal(renderConfigTable().split('\n').length, Object.keys(SETTINGS).length + 2);
  });
});
