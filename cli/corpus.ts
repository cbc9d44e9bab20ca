// Where documents come from for `ragway ingest` and the sample corpus of `ragway start`:
// a folder of .md/.txt files (id = path relative to the root, metadata.source = that path),
// a .jsonl file ({id?, text, metadata?} per line), or a single text file.
import { createReadStream } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, extname, join, relative, sep } from 'node:path';
import { createInterface } from 'node:readline';

export interface CorpusDocument {
  id?: string;
  text: string;
  metadata: Record<string, unknown>;
}

export interface CorpusSource {
  /** Documents that will be produced (files or non-empty lines), known before reading them. */
  count: number;
  documents(): AsyncGenerator<CorpusDocument>;
}

const TEXT_EXTENSIONS = new Set(['.md', '.markdown', '.mdx', '.txt', '.rst']);
/** Bigger files are generated artefacts (bundles, data dumps), not prose worth indexing. */
const MAX_FILE_BYTES = 1024 * 1024;

function toPosix(path: string): string {
  return path.split(sep).join('/');
}

async function listTextFiles(root: string, skip: (dir: string, name: string) => boolean): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('.') && !skip(dir, entry.name)) await walk(path);
      } else if (entry.isFile() && TEXT_EXTENSIONS.has(extname(entry.name).toLowerCase())) {
        found.push(path);
      }
    }
  };
  await walk(root);
  return found;
}

function fileSource(root: string, files: string[], extraMetadata: (relativePath: string) => Record<string, unknown> = () => ({})): CorpusSource {
  return {
    count: files.length,
    async *documents() {
      for (const file of files) {
        const info = await stat(file);
        if (info.size === 0 || info.size > MAX_FILE_BYTES) continue;
        const text = await readFile(file, 'utf8');
        if (text.trim() === '') continue;
        const relativePath = toPosix(relative(root, file)) || basename(file);
        yield { id: relativePath, text, metadata: { source: relativePath, ...extraMetadata(relativePath) } };
      }
    },
  };
}

async function countNonEmptyLines(path: string): Promise<number> {
  let count = 0;
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) if (line.trim() !== '') count += 1;
  return count;
}

function jsonlSource(path: string, count: number): CorpusSource {
  return {
    count,
    async *documents() {
      const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
      let lineNumber = 0;
      for await (const line of lines) {
        lineNumber += 1;
        if (line.trim() === '') continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch (err) {
          throw new Error(`${path}:${lineNumber}: not valid JSON (${(err as Error).message})`);
        }
        const record = parsed as { id?: unknown; text?: unknown; metadata?: unknown };
        if (typeof record !== 'object' || record === null || typeof record.text !== 'string') {
          throw new Error(`${path}:${lineNumber}: expected an object with a string "text"`);
        }
        if (record.id !== undefined && typeof record.id !== 'string') {
          throw new Error(`${path}:${lineNumber}: "id" must be a string`);
        }
        const metadata =
          typeof record.metadata === 'object' && record.metadata !== null ? (record.metadata as Record<string, unknown>) : {};
        const document: CorpusDocument = { text: record.text, metadata: { source: `${basename(path)}:${lineNumber}`, ...metadata } };
        if (record.id !== undefined) document.id = record.id;
        yield document;
      }
    },
  };
}

/** A folder, a .jsonl file or one text file. */
export async function openCorpus(path: string): Promise<CorpusSource> {
  const info = await stat(path);
  if (info.isDirectory()) {
    return fileSource(path, await listTextFiles(path, (_dir, name) => name === 'node_modules'));
  }
  if (extname(path).toLowerCase() === '.jsonl') return jsonlSource(path, await countNonEmptyLines(path));
  return fileSource(join(path, '..'), [path]);
}

/**
 * The sample corpus: the README and docs Markdown of every installed package, so a fresh
 * install has a real multi-thousand-chunk corpus to ask about ("how do I set a TTL in
 * lru-cache?"). Document ids look like "lru-cache/README.md".
 */
export async function openSampleCorpus(nodeModulesDir: string): Promise<CorpusSource> {
  const packageDirs: string[] = [];
  for (const entry of await readdir(nodeModulesDir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const path = join(nodeModulesDir, entry.name);
    if (entry.name.startsWith('@')) {
      for (const scoped of await readdir(path, { withFileTypes: true })) {
        if (scoped.isDirectory()) packageDirs.push(join(path, scoped.name));
      }
    } else {
      packageDirs.push(path);
    }
  }
  packageDirs.sort();
  const files: string[] = [];
  for (const dir of packageDirs) {
    const entries = await readdir(dir, { withFileTypes: true });
    for (const entry of entries) {
      if (entry.isFile() && /^readme(\.[a-z]+)?$/i.test(entry.name) && TEXT_EXTENSIONS.has(extname(entry.name).toLowerCase())) {
        files.push(join(dir, entry.name));
      }
    }
    if (entries.some((entry) => entry.isDirectory() && entry.name === 'docs')) {
      files.push(...(await listTextFiles(join(dir, 'docs'), (_d, name) => name === 'node_modules')));
    }
  }
  return fileSource(nodeModulesDir, files, (relativePath) => {
    const parts = relativePath.split('/');
    const name = parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1] ?? ''}` : (parts[0] ?? '');
    return { package: name };
  });
}

/** Groups documents into request-sized batches: at most `maxDocuments` and about `maxBytes` of text. */
export async function* batchDocuments(
  documents: AsyncIterable<CorpusDocument>,
  limits: { maxDocuments: number; maxBytes: number },
): AsyncGenerator<CorpusDocument[]> {
  let batch: CorpusDocument[] = [];
  let bytes = 0;
  for await (const document of documents) {
    const size = Buffer.byteLength(document.text);
    if (batch.length > 0 && (batch.length >= limits.maxDocuments || bytes + size > limits.maxBytes)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(document);
    bytes += size;
  }
  if (batch.length > 0) yield batch;
}
