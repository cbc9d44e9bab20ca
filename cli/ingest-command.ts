// `ragway ingest <path>`: sends a folder of .md/.txt files or a .jsonl file to a running
// gateway in batches, with a progress bar. Documents are idempotent by id (the file's path
// relative to the root), so re-running after a failure is safe.
import { request } from 'undici';
import { integerFlag, parseFlags, UsageError } from './args.js';
import { batchDocuments, openCorpus } from './corpus.js';
import { ProgressBar } from './progress.js';

const DEFAULT_URL = 'http://127.0.0.1:8080';
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
const RETRIES = 5;

export async function runIngest(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(
    argv,
    { url: { type: 'string' }, namespace: { type: 'string' }, batch: { type: 'string' } },
    true,
  );
  const [path] = positionals;
  if (path === undefined || positionals.length > 1) throw new UsageError('usage: ragway ingest <folder | file.jsonl | file.md> [--url URL]');
  const base = (values.url ?? DEFAULT_URL).replace(/\/+$/, '');
  const batchSize = integerFlag('batch', values.batch, 1, 1_000) ?? 32;

  const source = await openCorpus(path);
  const progress = new ProgressBar(source.count, 'docs');
  let chunks = 0;
  for await (const batch of batchDocuments(source.documents(), { maxDocuments: batchSize, maxBytes: MAX_BATCH_BYTES })) {
    const body = JSON.stringify({
      ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
      documents: batch,
    });
    const result = (await postWithRetry(`${base}/v1/documents`, body)) as { chunks_total: number };
    chunks += result.chunks_total;
    progress.advance(batch.length, `${chunks} chunks`);
  }
  progress.finish(`${chunks} chunks`);
}

/** Retries only what a retry can fix: 429/503 (honouring Retry-After) and connection errors. */
async function postWithRetry(url: string, body: string): Promise<unknown> {
  for (let attempt = 0; ; attempt += 1) {
    let status: number;
    let text: string;
    let retryAfter: string | string[] | undefined;
    try {
      const response = await request(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      status = response.statusCode;
      retryAfter = response.headers['retry-after'];
      text = await response.body.text();
    } catch (err) {
      if (attempt >= RETRIES) throw new Error(`cannot reach ${url}: ${(err as Error).message}`);
      await sleep(500 * 2 ** attempt);
      continue;
    }
    if (status === 200) return JSON.parse(text) as unknown;
    if ((status === 429 || status === 503) && attempt < RETRIES) {
      const seconds = Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
      await sleep(Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 500 * 2 ** attempt);
      continue;
    }
    throw new Error(`${url} answered ${status}: ${text.slice(0, 500)}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
