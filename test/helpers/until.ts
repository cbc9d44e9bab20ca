// Waiting for something a background process will do (a refresh, a probe, a catch-up), with a
// generous limit so a loaded machine only makes a test slower, never failing it.
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `condition` every `pollMs` until it holds; fails naming `what` after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string, pollMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}
