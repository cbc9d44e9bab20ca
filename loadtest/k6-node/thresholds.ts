// k6 threshold expressions evaluated over the stand-ins' samples, so a run in Node says
// pass or fail the way `k6 run` would: `metric{tag:value,…}` selects samples, and the
// aggregations the scripts use (count, rate, avg, min, max, med, p(N)) compare against a
// number. With no samples count is 0 and a percentile 0, as in k6 — which is why
// `count>0` on ragway_ok_requests is what fails a run in which nothing succeeded.
import type { Sample } from './stand-ins.js';

export interface ThresholdResult {
  metric: string;
  expression: string;
  value: number;
  passed: boolean;
  samples: number;
}

const EXPRESSION = /^\s*(count|rate|avg|min|max|med|value|p\((\d+(?:\.\d+)?)\))\s*(<=|>=|==|===|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/;

/** Splits `name{a:b,c:d}` into the metric name and its tag filter. */
export function parseSelector(selector: string): { metric: string; tags: Record<string, string> } {
  const open = selector.indexOf('{');
  if (open < 0) return { metric: selector.trim(), tags: {} };
  const tags: Record<string, string> = {};
  for (const pair of selector.slice(open + 1, selector.lastIndexOf('}')).split(',')) {
    const colon = pair.indexOf(':');
    if (colon > 0) tags[pair.slice(0, colon).trim()] = pair.slice(colon + 1).trim();
  }
  return { metric: selector.slice(0, open).trim(), tags };
}

/** k6's percentile: linear interpolation between the closest ranks. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return (sorted[low] as number) + ((sorted[high] as number) - (sorted[low] as number)) * (rank - low);
}

export function aggregate(values: readonly number[], aggregation: string): number {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = values.reduce((total, v) => total + v, 0);
  if (aggregation === 'count') return sum;
  if (aggregation === 'rate') return values.length === 0 ? 0 : values.filter((v) => v !== 0).length / values.length;
  if (values.length === 0) return 0;
  if (aggregation === 'avg') return sum / values.length;
  if (aggregation === 'min') return sorted[0] as number;
  if (aggregation === 'max' || aggregation === 'value') return sorted[sorted.length - 1] as number;
  if (aggregation === 'med') return percentile(sorted, 50);
  const p = /^p\((.+)\)$/.exec(aggregation);
  if (p) return percentile(sorted, Number(p[1]));
  throw new Error(`unknown aggregation ${aggregation}`);
}

export function selectSamples(samples: readonly Sample[], selector: string): number[] {
  const { metric, tags } = parseSelector(selector);
  return samples.filter((s) => s.metric === metric && Object.entries(tags).every(([k, v]) => s.tags[k] === v)).map((s) => s.value);
}

function compare(value: number, operator: string, bound: number): boolean {
  switch (operator) {
    case '<': return value < bound;
    case '<=': return value <= bound;
    case '>': return value > bound;
    case '>=': return value >= bound;
    case '!=': return value !== bound;
    default: return value === bound;
  }
}

export function evaluateThresholds(thresholds: Record<string, unknown>, samples: readonly Sample[]): ThresholdResult[] {
  const results: ThresholdResult[] = [];
  for (const [selector, list] of Object.entries(thresholds)) {
    const values = selectSamples(samples, selector);
    for (const entry of Array.isArray(list) ? list : [list]) {
      const expression = typeof entry === 'string' ? entry : String((entry as { threshold: unknown }).threshold);
      const match = EXPRESSION.exec(expression);
      if (!match) throw new Error(`${selector}: cannot evaluate threshold "${expression}"`);
      const value = aggregate(values, match[1] as string);
      results.push({ metric: selector, expression, value, passed: compare(value, match[3] as string, Number(match[4])), samples: values.length });
    }
  }
  return results;
}
