// The streaming tax: time to first token and tokens/s of 100 concurrent chat streams read
// directly from an OpenAI-compatible upstream vs through ragway (retrieval off, so only the
// proxying is measured). Upstream and gateway each run in their own process.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { ServiceProcess } from '../../cli/service-process.js';
import { percentile, postJson } from './load-generator.js';

export interface StreamStats {
  streams: number;
  errors: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  tokensPerSecondMean: number;
}

/** A path under the burst: its streams, and how far its rounds' median TTFTs spread. */
export interface BurstStats extends StreamStats {
  /** The fastest and the slowest round's median TTFT: every stream of a round waits on the same intake, so p99 is mostly the slowest round's. */
  roundP50RangeMs: [number, number];
}

/** Streams started in the same instant, round after round: the start-up cost under a burst. */
export interface BurstReport {
  streams: number;
  rounds: number;
  direct: BurstStats;
  ragway: BurstStats;
  /** A bare Node pass-through proxy (floor-proxy-process.ts, node:http): what any one Node hop costs here. */
  floor: BurstStats;
  /** The same pass-through on one bare Fastify route: what the framework costs by itself. */
  fastifyFloor: BurstStats;
  addedTtftP50Ms: number;
  addedTtftP99Ms: number;
  floorAddedTtftP50Ms: number;
  floorAddedTtftP99Ms: number;
  fastifyFloorAddedTtftP50Ms: number;
  fastifyFloorAddedTtftP99Ms: number;
}

export interface StreamingTaxReport {
  burst: BurstReport;
  concurrency: number;
  tokensPerStream: number;
  tokenIntervalMs: number;
  direct: StreamStats;
  ragway: StreamStats;
  addedTtftP50Ms: number;
  tokensPerSecondRatio: number;
}

const MODEL = 'bench-llm';

/** Starts one of the bench's helper processes and waits for the URL it prints. */
async function startListening(script: string, args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const entry = fileURLToPath(new URL(script, import.meta.url));
  const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    const match = /listening on (http:\/\/\S+)/.exec(line);
    if (match?.[1] !== undefined) return { child, url: match[1] };
  }
  throw new Error(`${script} exited before listening`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  // One that already exited (by itself or killed by a signal) would never emit 'exit' again.
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await once(child, 'exit');
}

/** One streamed chat completion; returns time to first content delta and the delta arrival span. */
async function oneStream(pool: Pool, path: string, body: string): Promise<{ ttftMs: number; tokens: number; spanMs: number }> {
  const started = performance.now();
  const response = await postJson(pool, path, body);
  if (response.statusCode !== 200) throw new Error(`${path} → ${response.statusCode}: ${await response.body.text()}`);
  let buffer = '';
  let first: number | undefined;
  let last = started;
  let tokens = 0;
  let done = false;
  for await (const chunk of response.body) {
    buffer += (chunk as Buffer).toString('utf8');
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!frame.startsWith('data: ')) continue;
      const data = frame.slice(6);
      if (data === '[DONE]') {
        done = true;
        continue;
      }
      const parsed = JSON.parse(data) as { choices?: { delta?: { content?: string } }[]; error?: unknown };
      if (parsed.error !== undefined) throw new Error(`stream error: ${data}`);
      if (parsed.choices?.[0]?.delta?.content) {
        const now = performance.now();
        first ??= now;
        last = now;
        tokens += 1;
      }
    }
  }
  if (!done || first === undefined) throw new Error('stream ended without [DONE] or without content');
  return { ttftMs: first - started, tokens, spanMs: last - first };
}

/**
 * `concurrency` streams open at all times. Workers start staggered over one stream's length,
 * so arrivals are spread as in real traffic rather than 100 requests landing in the same
 * millisecond each round (which makes TTFT measure queueing of the burst, run to run).
 */
async function measure(base: string, path: string, body: string, concurrency: number, rounds: number, spreadMs = 0): Promise<StreamStats> {
  const pool = new Pool(base, { connections: concurrency });
  const ttfts: number[] = [];
  const rates: number[] = [];
  let errors = 0;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async (_, worker) => {
        await new Promise((resolve) => setTimeout(resolve, (worker * spreadMs) / concurrency));
        for (let round = 0; round < rounds; round += 1) {
          try {
            const result = await oneStream(pool, path, body);
            ttfts.push(result.ttftMs);
            if (result.spanMs > 0) rates.push(((result.tokens - 1) * 1000) / result.spanMs);
          } catch {
            errors += 1;
          }
        }
      }),
    );
  } finally {
    await pool.close();
  }
  return stats(ttfts, rates, errors);
}

function stats(ttfts: number[], rates: number[], errors: number): StreamStats {
  ttfts.sort((a, b) => a - b);
  return {
    streams: ttfts.length,
    errors,
    ttftP50Ms: percentile(ttfts, 0.5),
    ttftP99Ms: percentile(ttfts, 0.99),
    tokensPerSecondMean: rates.reduce((sum, rate) => sum + rate, 0) / Math.max(1, rates.length),
  };
}

/**
 * `streams` requests fired in the same instant, `rounds` times, the paths taking turns round
 * by round (the order rotating) so all see the same machine. Client pools stay open across
 * rounds and one unmeasured round warms each path (connections, JIT): what is left is
 * per-request cost.
 */
async function measureBurst<K extends string>(targets: Record<K, { base: string; body: string }>, streams: number, rounds: number): Promise<Record<K, BurstStats>> {
  const paths = (Object.keys(targets) as K[]).map((name) => ({
    name,
    ...targets[name],
    pool: new Pool(targets[name].base, { connections: streams }),
    ttfts: [] as number[],
    rates: [] as number[],
    roundP50s: [] as number[],
    errors: 0,
  }));
  const round = async (path: (typeof paths)[number], record: boolean): Promise<void> => {
    const ttfts: number[] = [];
    await Promise.all(
      Array.from({ length: streams }, async () => {
        try {
          const result = await oneStream(path.pool, '/v1/chat/completions', path.body);
          if (!record) return;
          ttfts.push(result.ttftMs);
          if (result.spanMs > 0) path.rates.push(((result.tokens - 1) * 1000) / result.spanMs);
        } catch {
          if (record) path.errors += 1;
        }
      }),
    );
    if (ttfts.length === 0) return;
    path.ttfts.push(...ttfts);
    path.roundP50s.push(percentile(ttfts.sort((a, b) => a - b), 0.5));
  };
  try {
    for (const path of paths) await round(path, false);
    for (let r = 0; r < rounds; r += 1) {
      for (let i = 0; i < paths.length; i += 1) await round(paths[(r + i) % paths.length] as (typeof paths)[number], true);
    }
  } finally {
    await Promise.all(paths.map((path) => path.pool.close()));
  }
  return Object.fromEntries(
    paths.map((path) => [
      path.name,
      {
        ...stats(path.ttfts, path.rates, path.errors),
        // No round at all (every stream failed) has no range: NaN, not ±Infinity.
        roundP50RangeMs: path.roundP50s.length === 0 ? [Number.NaN, Number.NaN] : [Math.min(...path.roundP50s), Math.max(...path.roundP50s)],
      },
    ]),
  ) as Record<K, BurstStats>;
}

export async function benchStreamingTax(options: { quick: boolean; workDir: string; dim: number; log: (line: string) => void }): Promise<StreamingTaxReport> {
  const concurrency = 100;
  const tokensPerStream = options.quick ? 32 : 64;
  const tokenIntervalMs = 10;
  const rounds = options.quick ? 2 : 4;
  const upstream = await startListening('./scripted-upstream-process.js', [
    JSON.stringify({ tokens: Array.from({ length: tokensPerStream }, (_, i) => ` tok${i}`), delayMs: tokenIntervalMs, firstTokenDelayMs: 20 }),
  ]);
  let floor: { child: ChildProcess; url: string } | undefined;
  let fastifyFloor: { child: ChildProcess; url: string } | undefined;
  const shard = new ServiceProcess({
    label: 'tax-shard',
    host: '127.0.0.1',
    args: ['--data', join(options.workDir, 'tax-shard'), '--dim', String(options.dim)],
    restart: false,
  });
  const gateway = new ServiceProcess({
    label: 'tax-gateway',
    command: 'gateway',
    host: '127.0.0.1',
    args: [],
    env: { RAGWAY_LOG_LEVEL: 'warn', RAGWAY_LLM_URL: upstream.url, RAGWAY_LLM_MODEL: MODEL },
    restart: false,
  });
  try {
    const shardUrl = await shard.start();
    gateway.setArgs(['--shards', shardUrl]);
    const gatewayUrl = await gateway.start();
    const messages = [{ role: 'user', content: 'stream please' }];
    const directBody = JSON.stringify({ model: MODEL, messages, stream: true });
    const ragwayBody = JSON.stringify({ model: MODEL, messages, stream: true, rag: { enabled: false } });
    options.log(`streaming tax: ${concurrency} concurrent streams × ${rounds} rounds, ${tokensPerStream} tokens every ${tokenIntervalMs} ms`);
    // Warm both paths (connections, JIT) before measuring.
    await measure(upstream.url, '/v1/chat/completions', directBody, 10, 1);
    await measure(gatewayUrl, '/v1/chat/completions', ragwayBody, 10, 1);
    const burstStreams = 50;
    // A p99 over 4 rounds (200 streams) is the second-slowest stream: one scheduling hiccup
    // moves it by tens of ms. More rounds make it a statistic; each costs well under a second.
    const burstRounds = options.quick ? 8 : 16;
    options.log(`streaming tax, burst: ${burstStreams} streams started together × ${burstRounds} rounds`);
    floor = await startListening('./floor-proxy-process.js', [upstream.url, MODEL, 'node']);
    fastifyFloor = await startListening('./floor-proxy-process.js', [upstream.url, MODEL, 'fastify']);
    const burst = await measureBurst(
      {
        direct: { base: upstream.url, body: directBody },
        floor: { base: floor.url, body: ragwayBody },
        fastifyFloor: { base: fastifyFloor.url, body: ragwayBody },
        ragway: { base: gatewayUrl, body: ragwayBody },
      },
      burstStreams,
      burstRounds,
    );
    const spreadMs = 20 + tokensPerStream * tokenIntervalMs;
    const direct = await measure(upstream.url, '/v1/chat/completions', directBody, concurrency, rounds, spreadMs);
    const ragway = await measure(gatewayUrl, '/v1/chat/completions', ragwayBody, concurrency, rounds, spreadMs);
    return {
      burst: {
        streams: burstStreams,
        rounds: burstRounds,
        ...burst,
        addedTtftP50Ms: burst.ragway.ttftP50Ms - burst.direct.ttftP50Ms,
        addedTtftP99Ms: burst.ragway.ttftP99Ms - burst.direct.ttftP99Ms,
        floorAddedTtftP50Ms: burst.floor.ttftP50Ms - burst.direct.ttftP50Ms,
        floorAddedTtftP99Ms: burst.floor.ttftP99Ms - burst.direct.ttftP99Ms,
        fastifyFloorAddedTtftP50Ms: burst.fastifyFloor.ttftP50Ms - burst.direct.ttftP50Ms,
        fastifyFloorAddedTtftP99Ms: burst.fastifyFloor.ttftP99Ms - burst.direct.ttftP99Ms,
      },
      concurrency,
      tokensPerStream,
      tokenIntervalMs,
      direct,
      ragway,
      addedTtftP50Ms: ragway.ttftP50Ms - direct.ttftP50Ms,
      tokensPerSecondRatio: ragway.tokensPerSecondMean / direct.tokensPerSecondMean,
    };
  } finally {
    await gateway.stop();
    await shard.stop();
    if (floor !== undefined) await stopChild(floor.child);
    if (fastifyFloor !== undefined) await stopChild(fastifyFloor.child);
    await stopChild(upstream.child);
  }
}

export function renderStreamingTax(report: StreamingTaxReport): string {
  const row = (name: string, s: StreamStats): string =>
    `| ${name} | ${s.streams} | ${s.errors} | ${s.ttftP50Ms.toFixed(2)} | ${s.ttftP99Ms.toFixed(2)} | ${s.tokensPerSecondMean.toFixed(1)} |`;
  const burstRow = (name: string, s: BurstStats): string =>
    `| ${name} | ${s.streams} | ${s.errors} | ${s.ttftP50Ms.toFixed(2)} | ${s.ttftP99Ms.toFixed(2)} | ${s.roundP50RangeMs[0].toFixed(1)}–${s.roundP50RangeMs[1].toFixed(1)} | ${s.tokensPerSecondMean.toFixed(1)} |`;
  const burst = report.burst;
  return [
    '## Streaming tax',
    '',
    `${report.concurrency} concurrent chat streams (starts staggered over one stream's length), ${report.tokensPerStream} tokens each from a scripted upstream ` +
      `(first token after 20 ms, then one every ${report.tokenIntervalMs} ms); ragway with retrieval off.`,
    '',
    '| Path | streams | errors | TTFT p50 ms | TTFT p99 ms | tokens/s per stream |',
    '|---|---:|---:|---:|---:|---:|',
    row('direct to upstream', report.direct),
    row('through ragway', report.ragway),
    '',
    `Added p50 TTFT: **${report.addedTtftP50Ms.toFixed(2)} ms** (target ≤ 5 ms); ` +
      `tokens/s through ragway: **${(report.tokensPerSecondRatio * 100).toFixed(1)}%** of direct (target ≥ 90%).`,
    '',
    `Burst: ${burst.streams} streams started in the same instant, ${burst.rounds} rounds (the paths taking turns, one warm-up round each). ` +
      'The floors are bare pass-through proxies (undici out; no validation, access control, admission or metrics): node:http in, what any one Node hop costs on this machine; ' +
      "one bare Fastify route, what ragway's framework costs by itself. The streams of a round wait on the same intake, so a round is fast or slow as a whole: " +
      "p99 is mostly the slowest round's, and the round column shows how far rounds land apart.",
    '',
    '| Path | streams | errors | TTFT p50 ms | TTFT p99 ms | rounds\' p50 ms | tokens/s per stream |',
    '|---|---:|---:|---:|---:|---:|---:|',
    burstRow('direct to upstream', burst.direct),
    burstRow('through a bare Node proxy (floor)', burst.floor),
    burstRow('through a bare Fastify route (framework floor)', burst.fastifyFloor),
    burstRow('through ragway', burst.ragway),
    '',
    `Added TTFT under the burst: **${burst.addedTtftP50Ms.toFixed(2)} ms p50, ${burst.addedTtftP99Ms.toFixed(2)} ms p99** (target p99 ≤ 10 ms); ` +
      `the Node floor adds ${burst.floorAddedTtftP50Ms.toFixed(2)} ms p50, ${burst.floorAddedTtftP99Ms.toFixed(2)} ms p99; ` +
      `the Fastify floor ${burst.fastifyFloorAddedTtftP50Ms.toFixed(2)} ms p50, ${burst.fastifyFloorAddedTtftP99Ms.toFixed(2)} ms p99.`,
    '',
  ].join('\n');
}
