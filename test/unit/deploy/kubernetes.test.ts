// The Kubernetes manifests are never applied here (no cluster), so they are checked as data:
// every object validates against the Kubernetes OpenAPI schemas (kubernetes-models), the
// example overlay is rendered by a real kustomize (`kubectl kustomize`), and what the rendered
// objects say — probes, ports, the disruption budget, the ordinal → shard/replica mapping —
// must agree with what the gateway and `ragway shard` expect.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { packageRoot } from '../../../core/package-paths.js';
import { parseShardSource } from '../../../gateway/config.js';

const KUBERNETES = join(packageRoot(), 'deploy', 'kubernetes');

type Manifest = { apiVersion: string; kind: string; metadata: { name: string }; [field: string]: unknown };
// Loosely typed views of the objects the checks read; the schemas already checked their shape.
type Container = {
  name: string;
  command?: string[];
  args?: string[];
  ports: Array<{ name: string; containerPort: number }>;
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: { readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean };
  envFrom?: Array<{ configMapRef: { name: string } }>;
  env?: Array<{ name: string; value?: string; valueFrom?: { configMapKeyRef: { name: string; key: string } } }>;
};
type PodSpec = { securityContext: { runAsNonRoot: boolean }; containers: Container[] };
type Workload = Manifest & {
  spec: {
    replicas: number;
    serviceName?: string;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: unknown[];
  };
};

function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);
}

/** Validates one object with the kubernetes-models class for its apiVersion and kind. */
async function validate(manifest: Manifest): Promise<void> {
  const module = (await import(`kubernetes-models/${manifest.apiVersion}/${manifest.kind}`)) as Record<
    string,
    new (data: unknown) => { validate(): void }
  >;
  const Model = module[manifest.kind];
  assert.ok(Model, `no schema for ${manifest.apiVersion} ${manifest.kind}`);
  new Model(manifest).validate();
}

/** The files of a kustomization that hold whole objects (patches are partial by design). */
function resourceFiles(dir: string): string[] {
  const kustomization = parseManifests(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'))[0] as unknown as {
    patches?: Array<{ path: string }>;
  };
  const patches = new Set((kustomization.patches ?? []).map((patch) => patch.path));
  return readdirSync(dir).filter((name) => name.endsWith('.yaml') && name !== 'kustomization.yaml' && !patches.has(name));
}

function kustomizeAvailable(): boolean {
  return spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

function render(t: TestContext): Manifest[] | undefined {
  if (!kustomizeAvailable()) {
    t.skip('kubectl (with its built-in kustomize) is not installed: the overlay was not rendered');
    return undefined;
  }
  const text = execFileSync('kubectl', ['kustomize', join(KUBERNETES, 'overlays', 'example')], { encoding: 'utf8', timeout: 30_000 });
  return parseManifests(text);
}

function find<T extends Manifest>(manifests: Manifest[], kind: string, name: string): T {
  const found = manifests.find((manifest) => manifest.kind === kind && manifest.metadata.name === name);
  assert.ok(found, `${kind} ${name} is missing`);
  return found as T;
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** Runs the shard pods' start script for one ordinal, with `node` replaced by a recorder of its argv. */
function shardArgv(script: string, ordinal: number, topology: Record<string, string>): string[] {
  const bin = mkdtempSync(join(tmpdir(), 'ragway-k8s-'));
  try {
    const recorder = join(bin, 'node');
    writeFileSync(recorder, '#!/bin/sh\nfor arg in "$@"; do printf "%s\\n" "$arg"; done\n');
    chmodSync(recorder, 0o755);
    const out = execFileSync('/bin/sh', ['-c', script], {
      encoding: 'utf8',
      env: { PATH: `${bin}:/usr/bin:/bin`, HOSTNAME: `ragway-shard-${ordinal}`, ...topology },
    });
    return out.trimEnd().split('\n');
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
}

function flag(argv: string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  return at === -1 ? undefined : argv[at + 1];
}

describe('Kubernetes manifests', () => {
  for (const folder of ['base', join('overlays', 'example')]) {
    it(`every object in ${folder}/ validates against the Kubernetes schemas`, async () => {
      const dir = join(KUBERNETES, folder);
      const files = resourceFiles(dir);
      assert.ok(files.length > 0);
      for (const file of files) {
        for (const manifest of parseManifests(readFileSync(join(dir, file), 'utf8'))) {
          await assert.doesNotReject(validate(manifest), `${folder}/${file}: ${manifest.kind} ${manifest.metadata?.name}`);
        }
      }
    });
  }

  it('the schema check rejects a malformed object (it can fail)', async () => {
    const broken = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { ports: [{ port: 'eighty' }] } };
    await assert.rejects(validate(broken as unknown as Manifest));
  });

  it('the rendered overlay validates and says what the gateway and shards expect', async (t) => {
    const manifests = render(t);
    if (manifests === undefined) return;
    for (const manifest of manifests) await validate(manifest);
    assert.ok(manifests.every((manifest) => (manifest.metadata as { namespace?: string }).namespace === 'ragway' || manifest.kind === 'Namespace'));

    const config = find<Manifest & { data: Record<string, string> }>(manifests, 'ConfigMap', 'ragway-config').data;
    const topology = find<Manifest & { data: Record<string, string> }>(manifests, 'ConfigMap', 'ragway-topology').data;
    const shardCount = Number(topology['SHARDS']);
    const replicaCount = Number(topology['REPLICAS']);

    // Gateway: probes on the port it listens on, non-root, read-only root, bounded resources.
    const gateway = find<Workload>(manifests, 'Deployment', 'ragway-gateway');
    const gatewayPod = gateway.spec.template.spec;
    const gatewayContainer = gatewayPod.containers[0]!;
    const http = gatewayContainer.ports.find((port) => port.name === 'http');
    assert.equal(http?.containerPort, Number(config['RAGWAY_PORT']));
    assert.equal(config['RAGWAY_HOST'], '0.0.0.0');
    assert.deepEqual(gatewayContainer.args, ['gateway']);
    assert.equal(gatewayContainer.livenessProbe.httpGet.path, '/healthz');
    assert.equal(gatewayContainer.readinessProbe.httpGet.path, '/readyz');
    assert.equal(gatewayContainer.readinessProbe.httpGet.port, 'http');
    assert.deepEqual(gatewayContainer.envFrom, [{ configMapRef: { name: 'ragway-config' } }]);
    assert.equal(config['RAGWAY_AUTH'], 'on', 'a gateway reachable beyond loopback requires API keys');

    const gatewayService = find<Manifest & { spec: { selector: Record<string, string>; ports: Array<{ targetPort: string }> } }>(
      manifests,
      'Service',
      'ragway-gateway',
    );
    assert.ok(selects(gatewayService.spec.selector, gateway.spec.template.metadata.labels));
    assert.equal(gatewayService.spec.ports[0]?.targetPort, 'http');
    const hpa = find<Manifest & { spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number } }>(
      manifests,
      'HorizontalPodAutoscaler',
      'ragway-gateway',
    );
    assert.deepEqual([hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name], ['Deployment', 'ragway-gateway']);
    assert.ok(hpa.spec.minReplicas >= 2);

    // Shards: one StatefulSet of SHARDS × REPLICAS pods behind a headless Service, a volume each.
    const shards = find<Workload>(manifests, 'StatefulSet', 'ragway-shard');
    const headless = find<Manifest & { spec: { clusterIP: string; selector: Record<string, string>; ports: Array<{ port: number }> } }>(
      manifests,
      'Service',
      'ragway-shard',
    );
    assert.equal(shards.spec.serviceName, headless.metadata.name);
    assert.equal(headless.spec.clusterIP, 'None');
    assert.ok(selects(headless.spec.selector, shards.spec.template.metadata.labels));
    assert.equal(shards.spec.replicas, shardCount * replicaCount);
    assert.equal(shards.spec.volumeClaimTemplates?.length, 1);
    const shardContainer = shards.spec.template.spec.containers[0]!;
    const shardPort = shardContainer.ports.find((port) => port.name === 'shard')!.containerPort;
    assert.equal(headless.spec.ports[0]?.port, shardPort);
    assert.equal(shardContainer.readinessProbe.httpGet.path, '/readyz');
    assert.equal(shardContainer.livenessProbe.httpGet.path, '/healthz');

    for (const pod of [gatewayPod, shards.spec.template.spec]) {
      const container = pod.containers[0]!;
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(container.securityContext.readOnlyRootFilesystem, true);
      assert.equal(container.securityContext.allowPrivilegeEscalation, false);
      assert.ok(container.resources.requests['cpu'] && container.resources.limits['memory']);
    }

    // A drain takes at most one shard pod at a time, so no shard loses every replica.
    const pdb = find<Manifest & { spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } } }>(
      manifests,
      'PodDisruptionBudget',
      'ragway-shard',
    );
    assert.ok(selects(pdb.spec.selector.matchLabels, shards.spec.template.metadata.labels));
    assert.ok(pdb.spec.maxUnavailable < replicaCount, 'the shard PDB must keep a replica of every shard up');

    // The gateway finds the shards through the headless Service's SRV records, in its own
    // namespace, with the shard count from the topology (kubelet expands $(VAR) from the vars
    // defined before it; done here the same way).
    const env = gatewayContainer.env ?? [];
    const names = env.map((entry) => entry.name);
    assert.ok(!('RAGWAY_SHARDS' in config), 'RAGWAY_SHARDS lives in the Deployment, beside the variables it expands');
    const namespace = (gateway.metadata as { namespace?: string }).namespace!;
    const expand = (value: string, upTo: number): string =>
      value.replace(/\$\((\w+)\)/g, (whole, name: string) => {
        const at = names.indexOf(name);
        assert.ok(at !== -1 && at < upTo, `$(${name}) must be defined before it is used`);
        const entry = env[at]!;
        if (entry.valueFrom?.configMapKeyRef !== undefined) {
          assert.equal(entry.valueFrom.configMapKeyRef.name, 'ragway-topology');
          return topology[entry.valueFrom.configMapKeyRef.key]!;
        }
        const field = (entry.valueFrom as { fieldRef?: { fieldPath: string } } | undefined)?.fieldRef?.fieldPath;
        assert.equal(field, 'metadata.namespace', `${name} comes from the topology or the pod's namespace`);
        return namespace;
      });
    const shardsAt = names.indexOf('RAGWAY_SHARDS');
    const source = parseShardSource(expand(env[shardsAt]!.value!, shardsAt));
    assert.equal(source.kind, 'dns');
    if (source.kind !== 'dns') return;
    const port = (headless.spec.ports[0] as { name?: string; protocol?: string }).name;
    assert.equal(source.record, 'srv');
    assert.equal(source.name, `_${port}._tcp.${headless.metadata.name}.${namespace}.svc.cluster.local`);
    assert.equal(source.shards, shardCount);
    // SRV targets are the pods' own names: <pod>.<service>.<namespace>.svc.cluster.local.
    const podUrl = (ordinal: number): string => `http://${shards.metadata.name}-${ordinal}.${headless.metadata.name}:${shardPort}`;

    // The ordinal mapping: each pod reports shard (o mod SHARDS) and has the other pods of that
    // shard, ordinals shard + r*SHARDS, as --peers.
    const script = shardContainer.command![2]!;
    assert.deepEqual(shardContainer.command!.slice(0, 2), ['/bin/sh', '-c']);
    for (let ordinal = 0; ordinal < shardCount * replicaCount; ordinal += 1) {
      const argv = shardArgv(script, ordinal, topology);
      assert.deepEqual(argv.slice(0, 2), ['dist/cli/ragway.js', 'shard']);
      assert.equal(flag(argv, '--port'), String(shardPort));
      assert.equal(flag(argv, '--host'), '0.0.0.0');
      const shard = ordinal % shardCount;
      assert.equal(flag(argv, '--shard-index'), String(shard), `pod ${ordinal} reports its shard`);
      const peers = Array.from({ length: replicaCount }, (_, replica) => podUrl(shard + replica * shardCount)).filter((url) => url !== podUrl(ordinal));
      assert.deepEqual(flag(argv, '--peers')?.split(','), peers, `pod ${ordinal} (shard ${shard})`);
    }
  });
});
