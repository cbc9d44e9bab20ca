/** Milliseconds rounded to microseconds: enough precision for timings, short in JSON. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
