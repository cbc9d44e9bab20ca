// Temp directories for a test file: one root per call, removed after the file's tests,
// and a fresh numbered folder inside it for each caller that asks.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

/** Returns a function that names a new, not yet created folder under a per-file temp root. */
export function tempDirs(prefix: string): () => string {
  const root = mkdtempSync(join(tmpdir(), `ragway-${prefix}-`));
  after(() => rmSync(root, { recursive: true, force: true }));
  let counter = 0;
  return () => {
    counter += 1;
    return join(root, `${prefix}-${counter}`);
  };
}
