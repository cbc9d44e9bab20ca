// Bytes under a path (files, recursively): for reporting snapshot and log sizes.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export async function du(path: string): Promise<number> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) return 0;
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const entry of await readdir(path)) total += await du(join(path, entry));
  return total;
}
