// Comments may point a reader at docs/architecture.md, so every section they cite must exist
// there; and they may not cite documents that are not in the repository.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { packageRoot } from '../../../core/package-paths.js';

const ROOT = packageRoot();
const SOURCE_DIRS = ['core', 'gateway', 'embedder', 'retriever', 'shards', 'cli', 'loadtest', 'test', 'scripts'];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(path));
    else if (/\.(ts|js|mjs)$/.test(entry.name)) out.push(path);
  }
  return out;
}

const files = SOURCE_DIRS.flatMap((dir) => sources(join(ROOT, dir)));
const doc = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8');
const sections = new Set<string>();
for (const match of doc.matchAll(/^#{2,3} (\d+(?:\.\d+)?)\.? /gm)) sections.add(match[1] as string);
// Numbered list items under "## 6. Conventions" are sections 6.1, 6.2, …
const conventions = doc.slice(doc.indexOf('## 6. '));
for (const match of conventions.matchAll(/^(\d+)\. /gm)) sections.add(`6.${match[1]}`);

describe('references to the architecture document', () => {
  it('finds sources to check', () => assert.ok(files.length > 50));

  it('no comment cites a document outside the repository', () => {
    const ownPath = relative(ROOT, new URL(import.meta.url).pathname).replace(/^dist\//, '').replace(/\.js$/, '.ts');
    const offenders = files
      .filter((file) => !relative(ROOT, file).startsWith(ownPath))
      .flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .map((line, i) => ({ line, at: `${relative(ROOT, file)}:${i + 1}` }))
          .filter(({ line }) => /ARCHITECTURE(\.md)? ?§|FACTS\.md/.test(line)),
      )
      .map(({ at }) => at);
    assert.deepEqual(offenders, []);
  });

  it('every cited section of docs/architecture.md exists', () => {
    assert.ok(sections.has('5.4') && sections.has('6.9'), `sections parsed: ${[...sections].join(' ')}`);
    const missing: string[] = [];
    for (const file of files) {
      for (const match of readFileSync(file, 'utf8').matchAll(/docs\/architecture\.md §(\d+(?:\.\d+)?)/g)) {
        if (!sections.has(match[1] as string)) missing.push(`${relative(ROOT, file)}: §${match[1]}`);
      }
    }
    assert.deepEqual(missing, []);
  });
});
