// compose.yaml is never run here (no Docker engine): checked as data, it must wire the gateway
// to every shard replica, give each replica its peers and its own volume, and point Prometheus
// at the gateway's metrics port.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
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

  it('gives every replica its peers, its port, its shard index and a volume of its own', () => {
    const volumes = new Set<string>();
    for (const [shard, replicas] of spec.entries()) {
      for (const url of replicas) {
        const { hostname, port } = new URL(url);
        const service = compose.services[hostname];
        assert.ok(service, `no service ${hostname} for ${url}`);
        assert.equal(service.command[0], 'shard');
        assert.equal(flag(service.command, '--port'), port);
        assert.equal(flag(service.command, '--host'), '0.0.0.0');
        assert.deepEqual(flag(service.command, '--peers')?.split(','), replicas.filter((peer) => peer !== url));
        assert.equal(flag(service.command, '--shard-index'), String(shard), `${hostname} reports the shard it holds`);
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

  it('provisions Grafana with Prometheus and the ragway dashboard', () => {
    const grafana = compose.services['grafana']!;
    const mounts = new Map((grafana.volumes ?? []).map((volume) => {
      const [source, target] = volume.split(':');
      return [target!, join(DEPLOY, source!)];
    }));
    const provisioning = mounts.get('/etc/grafana/provisioning')!;
    const datasource = parse(readFileSync(join(provisioning, 'datasources', 'prometheus.yml'), 'utf8')) as {
      datasources: Array<{ type: string; url: string; isDefault: boolean }>;
    };
    assert.deepEqual(
      datasource.datasources.map(({ type, url, isDefault }) => ({ type, url, isDefault })),
      [{ type: 'prometheus', url: 'http://prometheus:9090', isDefault: true }],
    );
    assert.ok('prometheus' in compose.services);
    const provider = parse(readFileSync(join(provisioning, 'dashboards', 'ragway.yml'), 'utf8')) as { providers: Array<{ options: { path: string } }> };
    const folder = provider.providers[0]!.options.path;
    const dashboard = [...mounts].find(([target]) => target.startsWith(`${folder}/`));
    assert.ok(dashboard, `nothing is mounted under ${folder}`);
    assert.ok(existsSync(dashboard[1]) && dashboard[1].endsWith(join('grafana', 'ragway-dashboard.json')));
    assert.equal(grafana.environment!['GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH'], dashboard[0]);
    assert.ok(grafana.ports?.every((port) => port.startsWith('127.0.0.1:')), 'Grafana is published on loopback only');
  });
});
