// What a build wrote, and whether a model folder still matches the committed hashes.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEFAULT_MODEL_ID as MODEL_ID, packageRoot } from '../../core/package-paths.js';

export const EXPECTED_HASHES_FILE = 'glove-sif-100d.sha256.json';
export const MANIFEST_FILE = 'ragway-build.json';

export interface BuildManifest {
  model_id: string;
  source: string;
  /** Rows of the embedding table: [PAD], [UNK] and the words. */
  vocab_size: number;
  dimensions: number;
  /** Model-folder-relative path → sha256 (hex), for every file except this manifest. */
  files: Record<string, string>;
  parameters: {
    words: number;
    sif_a: number;
    zipf_exponent: number;
    pca_sentence_length: number;
    principal_components_removed: number;
    onnx_ir_version: number;
    onnx_opset: number;
  };
}

/** Pretty JSON with a final newline: the form every JSON file of the model is written in. */
export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function moduleDir(): string {
  return dirname(fileURLToPath(import.meta.url));
}

/** Where the committed hashes live in the source tree (tsc does not copy it to dist/). */
export function expectedHashesPath(): string {
  const besideModule = join(moduleDir(), EXPECTED_HASHES_FILE);
  return existsSync(besideModule) ? besideModule : join(packageRoot(), 'embedder', 'model', EXPECTED_HASHES_FILE);
}

export async function loadExpectedHashes(): Promise<Record<string, string>> {
  const path = expectedHashesPath();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the expected model hashes at ${path}`, { cause: err });
  }
  return JSON.parse(text) as Record<string, string>;
}

async function fileSha256(path: string): Promise<string | undefined> {
  try {
    return sha256(await readFile(path));
  } catch {
    return undefined;
  }
}

/** Checks a model folder against the committed hashes; `mismatches` says what differs. */
export async function verifyModelDir(dir: string): Promise<{ ok: boolean; mismatches: string[] }> {
  const expected = await loadExpectedHashes();
  const mismatches: string[] = [];
  for (const [name, want] of Object.entries(expected)) {
    const got = await fileSha256(join(dir, name));
    if (got === undefined) mismatches.push(`${name}: missing`);
    else if (got !== want) mismatches.push(`${name}: sha256 ${got} ≠ expected ${want}`);
  }
  try {
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as Partial<BuildManifest>;
    if (manifest.model_id !== MODEL_ID) mismatches.push(`${MANIFEST_FILE}: model_id is ${String(manifest.model_id)}`);
    const listed = JSON.stringify(Object.entries(manifest.files ?? {}).sort());
    if (listed !== JSON.stringify(Object.entries(expected).sort())) mismatches.push(`${MANIFEST_FILE}: files differ from ${EXPECTED_HASHES_FILE}`);
  } catch {
    mismatches.push(`${MANIFEST_FILE}: missing or unreadable`);
  }
  return { ok: mismatches.length === 0, mismatches };
}
