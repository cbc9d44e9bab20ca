// The shard spec's two forms: a URL list, or a DNS name the gateway keeps resolving. Every
// mistake an operator can make in the DNS form is a ConfigError at start that names it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig, parseDnsServers, parseShardSource, parseShardSpec } from '../../../gateway/config.js';

describe('parseShardSource', () => {
  it('keeps URL lists as they were', () => {
    assert.deepEqual(parseShardSource('http://a:1,http://b:1;http://c:2'), { kind: 'static', shards: [['http://a:1', 'http://b:1'], ['http://c:2']] });
    assert.deepEqual(parseShardSource(''), { kind: 'static', shards: [] });
  });

  it('reads an SRV spec: the name, the shard count, http by default', () => {
    const spec = 'dns+srv://_shard._tcp.ragway-shard.ragway.svc.cluster.local?shards=2';
    assert.deepEqual(parseShardSource(`  ${spec} `), {
      kind: 'dns',
      record: 'srv',
      name: '_shard._tcp.ragway-shard.ragway.svc.cluster.local',
      port: 0,
      shards: 2,
      scheme: 'http',
      spec,
    });
  });

  it('reads an A/AAAA spec with its port, a trailing dot and https', () => {
    const source = parseShardSource('dns://ragway-shard.ragway.svc.cluster.local.:7001?shards=3&scheme=https');
    assert.equal(source.kind, 'dns');
    if (source.kind !== 'dns') return;
    assert.deepEqual([source.record, source.name, source.port, source.shards, source.scheme], ['a', 'ragway-shard.ragway.svc.cluster.local', 7001, 3, 'https']);
  });

  const mistakes: [string, RegExp][] = [
    ['dns+srv://_shard._tcp.x', /needs \?shards=N/],
    ['dns+srv://_shard._tcp.x?shards=0', /shards must be an integer from 1/],
    ['dns+srv://_shard._tcp.x?shards=two', /shards must be an integer/],
    ['dns+srv://_shard._tcp.x?shards=2.5', /shards must be an integer/],
    ['dns+srv://_shard._tcp.x?shards=2&refresh=1', /unknown parameter "refresh"/],
    ['dns+srv://_shard._tcp.x:7001?shards=2', /SRV records carry the port/],
    ['dns://x?shards=2', /needs a port/],
    ['dns://x:7001/v1?shards=2', /no path/],
    ['dns://user:pw@x:7001?shards=2', /no credentials/],
    ['dns://x:7001?shards=2&scheme=ftp', /scheme must be http or https/],
  ];
  for (const [spec, message] of mistakes) {
    it(`rejects ${spec}`, () => {
      assert.throws(() => parseShardSource(spec), (err: unknown) => err instanceof ConfigError && message.test(err.message));
    });
  }

  it('a DNS spec is not a URL list', () => {
    assert.throws(() => parseShardSpec('dns://x:7001?shards=2'), /is a DNS shard spec/);
  });
});

describe('parseDnsServers', () => {
  it('takes IPv4 and IPv6 addresses with optional ports; empty means the system resolvers', () => {
    assert.deepEqual(parseDnsServers(''), []);
    assert.deepEqual(parseDnsServers('10.96.0.10, 127.0.0.1:5353,[::1]:53,::1'), ['10.96.0.10', '127.0.0.1:5353', '[::1]:53', '::1']);
  });
  it('rejects names and junk', () => {
    assert.throws(() => parseDnsServers('dns.google'), ConfigError);
    assert.throws(() => parseDnsServers('127.0.0.1:port'), ConfigError);
  });
});

describe('discovery settings', () => {
  it('have defaults and bounds', () => {
    const config = loadConfig({});
    assert.equal(config.shardDnsRefreshMs, 5_000);
    assert.equal(config.dnsServers, '');
    assert.throws(() => loadConfig({ RAGWAY_SHARD_DNS_REFRESH_MS: '5' }), /RAGWAY_SHARD_DNS_REFRESH_MS must be between/);
  });
});
