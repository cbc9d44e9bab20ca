// Arrows only point down (docs/architecture.md, "Layout"): the layers under the gateway never
// import it, and core/ — the leaf every layer shares — imports nothing of the project's but
// itself. Read from the TypeScript sources, so a new upward import fails here at once.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { packageRoot } from '../../../core/package-paths.js';

const ROOT = packageRoot();
const SPECIFIER = /(?:^|\s)(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Every project-relative import of `layer`'s files, as [importing file, imported top-level folder]. */
function importsOf(layer: string): Array<{ file: string; target: string }> {
  return sourceFiles(join(ROOT, layer)).flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    return [...text.matchAll(SPECIFIER)]
      .map((match) => match[1] ?? match[2] ?? '')
      .filter((specifier) => specifier.startsWith('.'))
      .map((specifier) => ({
        file: relative(ROOT, file),
        target: relative(ROOT, resolve(dirname(file), specifier)).split(/[\\/]/)[0] ?? '',
      }));
  });
}

describe('import direction', () => {
  it('finds the imports it checks (the scanner sees relative imports)', () => {
    assert.ok(importsOf('retriever').some(({ target }) => target === 'core'));
  });

  for (const layer of ['retriever', 'shards', 'embedder']) {
    it(`${layer}/ never imports the gateway or the CLI`, () => {
      const upward = importsOf(layer).filter(({ target }) => target === 'gateway' || target === 'cli');
      assert.deepEqual(upward, []);
    });
  }

  it('core/ imports nothing of the project outside core/', () => {
    const outward = importsOf('core').filter(({ target }) => target !== 'core');
    assert.deepEqual(outward, []);
  });
});
