// The Grafana dashboard must not drift from what the gateway exports: every PromQL expression is
// parsed with Prometheus's own grammar (@prometheus-io/lezer-promql), and every metric it
// selects must be one a real gateway's GET /metrics lists, every label it matches or groups by
// one that metric has. The JSON must also have the shape Grafana imports.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SyntaxNode } from '@lezer/common';
import { parser } from '@prometheus-io/lezer-promql';
import type { FastifyInstance } from 'fastify';
import { packageRoot } from '../../../core/package-paths.js';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import { InProcessShardClient } from '../../../retriever/in-process-shard-client.js';
import type { IndexStore } from '../../../shards/index-store.js';
import { loadDefaultBackend } from '../../helpers/cluster.js';
import { openStore } from '../../helpers/index-store.js';

interface Target {
  refId: string;
  expr: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown; definition?: string }> };
}

const dashboard = JSON.parse(readFileSync(join(packageRoot(), 'deploy', 'grafana', 'ragway-dashboard.json'), 'utf8')) as Dashboard;
const PANEL_TYPES = new Set(['row', 'timeseries', 'stat', 'state-timeline', 'table', 'gauge', 'bargauge', 'heatmap']);
/** Added by Prometheus to every series it scrapes, not by the gateway. */
const TARGET_LABELS = new Set(['instance', 'job']);
const HISTOGRAM_SUFFIXES = ['_bucket', '_count', '_sum'];

const panels = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
const targets = panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, ...target })));

/** Grafana's macros are not PromQL: give them a value Prometheus would see. */
function promql(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m');
}

interface Selection {
  metric: string;
  labels: string[];
}

/** The selectors of an expression (metric + matched labels) and the labels it groups by; throws on a syntax error. */
function analyse(expr: string): { selections: Selection[]; grouping: string[] } {
  const text = promql(expr);
  const tree = parser.parse(text);
  const selections: Selection[] = [];
  const grouping: string[] = [];
  const slice = (node: SyntaxNode): string => text.slice(node.from, node.to);
  tree.iterate({
    enter: (ref) => {
      if (ref.type.isError) throw new Error(`syntax error at ${ref.from} in: ${text}`);
      if (ref.name === 'VectorSelector') {
        const metric = ref.node.getChild('Identifier');
        assert.ok(metric, `a selector without a metric name in: ${text}`);
        const labels = (ref.node.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? []).map((matcher) => slice(matcher.getChild('LabelName')!));
        selections.push({ metric: slice(metric), labels });
      }
      if (ref.name === 'GroupingLabels') for (const label of ref.node.getChildren('LabelName')) grouping.push(slice(label));
    },
  });
  return { selections, grouping };
}

describe('Grafana dashboard', () => {
  let backend: OnnxEmbeddingBackend;
  let store: IndexStore;
  let app: FastifyInstance;
  /** Metric name as exported (histograms by their base name) → its type and label names. */
  const exported = new Map<string, { type: string; labels: Set<string> }>();
  let scraped = '';

  before(async () => {
    backend = await loadDefaultBackend();
    store = openStore({ dim: backend.dimensions });
    // A real gateway, default (process) metrics on as in production, with a reranker configured
    // (never called here) so that its metrics exist as in a deployment that uses one; one write
    // and one answer so that every stage has run.
    app = await buildApp(loadConfig({}, { logLevel: 'silent', auth: 'off', rerankUrl: 'http://127.0.0.1:9/rerank' }), {
      embeddingBackend: backend,
      shardClients: [new InProcessShardClient(store, { label: 'shard-0' })],
      defaultMetrics: true,
    });
    const ingest = await app.inject({ method: 'POST', url: '/v1/documents', payload: { documents: [{ id: 'd', text: 'Cache entries expire after their TTL.' }] } });
    assert.equal(ingest.statusCode, 200, ingest.body);
    assert.equal((await app.inject({ method: 'POST', url: '/v1/query', payload: { query: 'when do cache entries expire' } })).statusCode, 200);
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    scraped = text;
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      const metric = app.metrics.registry.getSingleMetric(name!) as { labelNames?: readonly string[] } | undefined;
      exported.set(name!, { type: type!, labels: new Set(metric?.labelNames ?? []) });
    }
  });

  after(async () => {
    await app?.close();
    store?.close();
    await backend?.close();
  });

  /** The exported metric a selected name belongs to (histogram series by their suffix), with the labels its series carry. */
  function lookup(name: string): { labels: Set<string> } | undefined {
    const direct = exported.get(name);
    if (direct !== undefined) return direct;
    for (const suffix of HISTOGRAM_SUFFIXES) {
      if (!name.endsWith(suffix)) continue;
      const base = exported.get(name.slice(0, -suffix.length));
      if (base?.type === 'histogram') return { labels: new Set([...base.labels, ...(suffix === '_bucket' ? ['le'] : [])]) };
    }
    return undefined;
  }

  it('has the shape Grafana imports', () => {
    assert.equal(typeof dashboard.uid, 'string');
    assert.match(dashboard.title, /ragway/);
    assert.ok(Number.isInteger(dashboard.schemaVersion) && dashboard.schemaVersion >= 30);
    const ids = new Set<number>();
    for (const panel of panels) {
      assert.ok(PANEL_TYPES.has(panel.type), `${panel.title}: unknown panel type ${panel.type}`);
      assert.ok(!ids.has(panel.id), `panel id ${panel.id} is used twice`);
      ids.add(panel.id);
      const { x, y, w, h } = panel.gridPos;
      assert.ok([x, y, w, h].every(Number.isInteger) && x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24, `${panel.title}: gridPos ${JSON.stringify(panel.gridPos)}`);
      if (panel.type === 'row') continue;
      assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, `${panel.title} uses the dashboard's data source variable`);
      assert.ok((panel.targets ?? []).length > 0, `${panel.title} has no query`);
      const refIds = (panel.targets ?? []).map((target) => target.refId);
      assert.equal(new Set(refIds).size, refIds.length, `${panel.title}: refIds repeat`);
    }
    const variables = dashboard.templating.list.map((variable) => variable.name);
    assert.deepEqual(variables, ['datasource', 'instance']);
    // Panels never overlap (Grafana would shuffle them).
    const cells = new Set<string>();
    for (const { gridPos: { x, y, w, h }, title } of panels) {
      for (let row = y; row < y + h; row += 1) {
        for (let column = x; column < x + w; column += 1) {
          assert.ok(!cells.has(`${row},${column}`), `${title} overlaps another panel at ${row},${column}`);
          cells.add(`${row},${column}`);
        }
      }
    }
  });

  it('covers what an operator looks for: stages, TTFT, cache hit rate, hedges, coverage, per-replica health', () => {
    const used = new Set(targets.flatMap((target) => analyse(target.expr).selections.map((selection) => selection.metric)));
    for (const metric of [
      'ragway_stage_duration_seconds_bucket',
      'ragway_time_to_first_token_seconds_bucket',
      'ragway_cache_lookups_total',
      'ragway_shard_hedges_total',
      'ragway_scatter_searches_total',
      'ragway_shard_replicas',
      'ragway_replica_up',
      'ragway_replica_request_duration_seconds_bucket',
    ]) {
      assert.ok(used.has(metric), `no panel shows ${metric}`);
    }
  });

  it('selects only metrics the gateway exports, and only labels they have', () => {
    assert.ok(exported.size > 30, `only ${exported.size} metrics scraped`);
    assert.ok(targets.length > 30);
    for (const target of targets) {
      const { selections, grouping } = analyse(target.expr);
      assert.ok(selections.length > 0, `${target.panel}: no metric in ${target.expr}`);
      const available = new Set<string>(TARGET_LABELS);
      for (const { metric, labels } of selections) {
        const found = lookup(metric);
        assert.ok(found, `${target.panel}: ${metric} is not exported by the gateway`);
        for (const label of found.labels) available.add(label);
        for (const label of labels) assert.ok(TARGET_LABELS.has(label) || found.labels.has(label), `${target.panel}: ${metric} has no label "${label}"`);
      }
      for (const label of grouping) assert.ok(available.has(label), `${target.panel}: grouping by "${label}", which none of its metrics has`);
    }
    for (const variable of dashboard.templating.list) {
      const match = /^label_values\((\w+), *(\w+)\)$/.exec(variable.definition ?? '');
      if (variable.type !== 'query') continue;
      assert.ok(match, `variable ${variable.name}: ${variable.definition}`);
      assert.ok(lookup(match[1]!), `variable ${variable.name}: ${match[1]} is not exported`);
    }
  });

  it('the stage, time-to-first-token and coverage series have samples after an answer', () => {
    for (const stage of ['embed', 'search', 'generate']) {
      assert.match(scraped, new RegExp(`ragway_stage_duration_seconds_count\\{stage="${stage}"\\} [1-9]`), stage);
    }
    assert.match(scraped, /ragway_time_to_first_token_seconds_count [1-9]/);
    assert.match(scraped, /ragway_scatter_searches_total\{coverage="complete"\} [1-9]/);
  });

  it('the check can fail: a misspelt metric, a missing label and broken PromQL are caught', () => {
    assert.equal(lookup('ragway_shard_request_duration_second_bucket'), undefined);
    assert.ok(!lookup('ragway_shard_request_duration_seconds_bucket')!.labels.has('replica'));
    assert.throws(() => analyse('sum(rate(ragway_cache_lookups_total[$__rate_interval])'), /syntax error/);
  });
});
