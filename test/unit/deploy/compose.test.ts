// compose.yaml is never run here (no Docker engine): checked as data, it must wire the gateway
// to every shard replica, give each replica its peers and its own volume, and point Prometheus
// at the gateway's metrics port.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { packageRoot } from '../../../core/package-paths.js';
import { parseShardSpec } from '../../../gateway/config.js';

interface Service {
  image?: string;
  command: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  read_only?: boolean;
  healthcheck?: { test: string[] };
}

const DEPLOY = join(packageRoot(), 'deploy');
const compose = parse(readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};

function flag(argv: string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  return at === -1 ? undefined : argv[at + 1];
}

describe('compose.yaml', () => {
  const gateway = compose.services['gateway']!;
  const spec = parseShardSpec(gateway.environment!['RAGWAY_SHARDS']!);

  it('runs 2 shards × 2 replicas behind the gateway', () => {
    assert.equal(spec.length, 2);
    assert.ok(spec.every((replicas) => replicas.length === 2));
    assert.deepEqual(gateway.command, ['gateway']);
    assert.equal(gateway.environment!['RAGWAY_AUTH'], 'on');
  });

  it('gives every replica its peers, its port and a volume of its own', () => {
    const volumes = new Set<string>();
    for (const replicas of spec) {
      for (const url of replicas) {
        const { hostname, port } = new URL(url);
        const service = compose.services[hostname];
        assert.ok(service, `no service ${hostname} for ${url}`);
        assert.equal(service.command[0], 'shard');
        assert.equal(flag(service.command, '--port'), port);
        assert.equal(flag(service.command, '--host'), '0.0.0.0');
        assert.deepEqual(flag(service.command, '--peers')?.split(','), replicas.filter((peer) => peer !== url));
        const volume = service.volumes?.[0]?.split(':')[0];
        assert.ok(volume !== undefined && volume in compose.volumes, `${hostname} has no named volume`);
        volumes.add(volume);
        assert.equal(service.read_only, true);
        assert.match(service.healthcheck!.test.join(' '), new RegExp(`:${port}/readyz`));
      }
    }
    assert.equal(volumes.size, 4, 'each replica keeps its own index');
  });

  it('scrapes the gateway the way it listens', () => {
    const port = gateway.environment!['RAGWAY_PORT']!;
    assert.match(gateway.healthcheck!.test.join(' '), new RegExp(`:${port}/readyz`));
    const prometheus = parse(readFileSync(join(DEPLOY, 'prometheus.yml'), 'utf8')) as {
      scrape_configs: Array<{ metrics_path: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const job = prometheus.scrape_configs[0]!;
    assert.equal(job.metrics_path, '/metrics');
    assert.deepEqual(job.static_configs[0]!.targets, [`gateway:${port}`]);
  });
});
