// A closed-loop load generator: `concurrency` workers each send a request, wait for the
// answer, and send the next, for `durationMs`. Latencies are kept whole (a few hundred
// thousand numbers at most) so percentiles are exact, not bucketed.
import type { Dispatcher, Pool } from 'undici';

/** POSTs a JSON body (an object, or text already serialized) through a pool. */
export function postJson(pool: Pool, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Dispatcher.ResponseData> {
  return pool.request({ method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  requestsPerSecond: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** First error message seen, to tell "slow" from "broken" in a report. */
  firstError?: string;
  /** Every latency, sorted (for CDF charts); not written to report.json. */
  latencies?: number[];
}

export function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index] as number;
}

export async function closedLoop(options: {
  concurrency: number;
  durationMs: number;
  /** Resolves when one request completed; rejects (or returns false) when it failed. */
  send: (worker: number, iteration: number) => Promise<boolean | void>;
  warmupMs?: number;
}): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let recording = (options.warmupMs ?? 0) === 0;
  const warmupEnds = performance.now() + (options.warmupMs ?? 0);
  const deadline = warmupEnds + options.durationMs;
  let measuredFrom = recording ? performance.now() : warmupEnds;

  const worker = async (id: number): Promise<void> => {
    for (let iteration = 0; performance.now() < deadline; iteration += 1) {
      const started = performance.now();
      if (!recording && started >= warmupEnds) {
        recording = true;
        measuredFrom = started;
      }
      let ok = true;
      try {
        ok = (await options.send(id, iteration)) !== false;
      } catch (err) {
        ok = false;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
      if (!recording || started < warmupEnds) continue;
      if (ok) latencies.push(performance.now() - started);
      else errors += 1;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, id) => worker(id)));
  const seconds = (performance.now() - measuredFrom) / 1000;
  latencies.sort((a, b) => a - b);
  const result: LoadResult = {
    requests: latencies.length,
    errors,
    seconds,
    requestsPerSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 0.5),
    p90Ms: percentile(latencies, 0.9),
    p99Ms: percentile(latencies, 0.99),
    maxMs: latencies.at(-1) ?? Number.NaN,
  };
  if (firstError !== undefined) result.firstError = firstError;
  // Non-enumerable: charts can read it, JSON.stringify of the report leaves it out.
  Object.defineProperty(result, 'latencies', { value: latencies, enumerable: false });
  return result;
}
