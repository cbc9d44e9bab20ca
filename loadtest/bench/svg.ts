// Small, dependency-free SVG charts for the benchmark report: line charts (optionally with
// a log x axis, for recall-vs-QPS and latency CDFs) and horizontal bar charts.

export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

const WIDTH = 720;
const HEIGHT = 420;
const MARGIN = { left: 70, right: 170, top: 40, bottom: 55 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf'];

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceTicks(min: number, max: number, count: number): number[] {
  if (!(max > min)) return [min];
  const step = 10 ** Math.floor(Math.log10((max - min) / count));
  const multiple = [1, 2, 5, 10].find((m) => (max - min) / (step * m) <= count) ?? 10;
  const size = step * multiple;
  const ticks: number[] = [];
  for (let tick = Math.ceil(min / size) * size; tick <= max + size * 1e-9; tick += size) ticks.push(Number(tick.toPrecision(12)));
  return ticks;
}

function format(value: number): string {
  if (Math.abs(value) >= 1000) return `${Math.round(value / 100) / 10}k`;
  return Number(value.toPrecision(3)).toString();
}

export function lineChart(options: { title: string; xLabel: string; yLabel: string; series: Series[]; logX?: boolean; yMin?: number; yMax?: number }): string {
  const all = options.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (all.length === 0) return '';
  const tx = (x: number): number => (options.logX ? Math.log10(Math.max(x, 1e-9)) : x);
  const xs = all.map((p) => tx(p.x));
  const ys = all.map((p) => p.y);
  let xMin = Math.min(...xs);
  let xMax = Math.max(...xs);
  if (xMin === xMax) {
    xMin -= 1;
    xMax += 1;
  }
  const yMin = options.yMin ?? Math.min(...ys);
  const yMax = options.yMax ?? Math.max(...ys);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const px = (x: number): number => MARGIN.left + ((tx(x) - xMin) / (xMax - xMin)) * plotW;
  const py = (y: number): number => MARGIN.top + plotH - ((y - yMin) / (yMax - yMin || 1)) * plotH;
  const parts: string[] = [];
  parts.push(`<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escape(options.title)}</text>`);
  const xTicks = options.logX
    ? niceTicks(Math.floor(xMin), Math.ceil(xMax), 6).filter((t) => Number.isInteger(t)).map((t) => 10 ** t)
    : niceTicks(xMin, xMax, 6);
  for (const tick of xTicks) {
    const x = px(tick);
    if (x < MARGIN.left - 1 || x > MARGIN.left + plotW + 1) continue;
    parts.push(`<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${MARGIN.top + plotH}" stroke="#eee"/>`);
    parts.push(`<text x="${x}" y="${MARGIN.top + plotH + 18}" text-anchor="middle" font-size="11">${format(tick)}</text>`);
  }
  for (const tick of niceTicks(yMin, yMax, 6)) {
    const y = py(tick);
    parts.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotW}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${MARGIN.left - 8}" y="${y + 4}" text-anchor="end" font-size="11">${format(tick)}</text>`);
  }
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
  parts.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle" font-size="12">${escape(options.xLabel)}${options.logX ? ' (log)' : ''}</text>`);
  parts.push(`<text transform="translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escape(options.yLabel)}</text>`);
  options.series.forEach((series, i) => {
    const color = COLORS[i % COLORS.length] as string;
    const points = series.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (points.length > 0) {
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ')}"/>`);
      for (const p of points.length <= 40 ? points : []) parts.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${color}"/>`);
    }
    const ly = MARGIN.top + 14 + i * 18;
    parts.push(`<line x1="${WIDTH - MARGIN.right + 12}" y1="${ly - 4}" x2="${WIDTH - MARGIN.right + 30}" y2="${ly - 4}" stroke="${color}" stroke-width="3"/>`);
    parts.push(`<text x="${WIDTH - MARGIN.right + 35}" y="${ly}" font-size="11">${escape(series.name)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>\n`;
}

export function barChart(options: { title: string; unit: string; bars: { label: string; value: number }[] }): string {
  const rowH = 28;
  const labelW = 260;
  const plotW = WIDTH - labelW - 90;
  const height = 50 + options.bars.length * rowH + 20;
  const max = Math.max(...options.bars.map((b) => b.value), 1e-9);
  const parts = [`<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escape(options.title)}</text>`];
  options.bars.forEach((bar, i) => {
    const y = 40 + i * rowH;
    const w = Math.max(1, (bar.value / max) * plotW);
    parts.push(`<text x="${labelW - 8}" y="${y + 17}" text-anchor="end" font-size="12">${escape(bar.label)}</text>`);
    parts.push(`<rect x="${labelW}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${COLORS[i % COLORS.length]}"/>`);
    parts.push(`<text x="${labelW + w + 6}" y="${y + 17}" font-size="12">${escape(`${format(bar.value)} ${options.unit}`)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>\n`;
}

/** Points of an empirical CDF from sorted samples (at most ~200 points). */
export function cdfPoints(sorted: readonly number[]): { x: number; y: number }[] {
  if (sorted.length === 0) return [];
  const step = Math.max(1, Math.floor(sorted.length / 200));
  const points: { x: number; y: number }[] = [];
  for (let i = 0; i < sorted.length; i += step) points.push({ x: sorted[i] as number, y: (i + 1) / sorted.length });
  points.push({ x: sorted[sorted.length - 1] as number, y: 1 });
  return points;
}
