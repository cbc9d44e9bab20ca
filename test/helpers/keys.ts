// API keys for tests: written to a keys file with the same code `ragway keys` uses.
import { addKey, readKeysFile, writeKeysFile, type NewKey } from '../../gateway/access/keys-file.js';

/** Adds keys to the file at `path` (created if missing) and returns them by name. */
export async function writeKeys(path: string, specs: NewKey[]): Promise<Record<string, string>> {
  const file = await readKeysFile(path);
  const keys: Record<string, string> = {};
  for (const spec of specs) keys[spec.name] = addKey(file, spec).key;
  await writeKeysFile(path, file);
  return keys;
}

export const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });
