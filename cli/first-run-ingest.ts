// The first-run ingest of `ragway start`: on an empty data dir, the sample corpus (or
// --corpus) is ingested through the gateway's own document service while /readyz says 503
// with how far along it is. A stop (Ctrl-C, SIGTERM) ends it between or inside a batch
// through an AbortSignal and says how far it got; the next start resumes it.
//
// Two marker files in the data dir say where it stands:
//   .corpus-ingesting  {source, total, done}: started, not finished; `done` documents are
//                      acknowledged (rewritten after every batch)
//   .corpus-ingested   finished; never ingested again
// A resumed run skips the `done` documents it already sent when the source still has the
// same name and size (documents come in a stable, sorted order), else it starts over;
// re-sending a document replaces it, so either way no half corpus is ever marked done.
import { existsSync } from 'node:fs';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { packageRoot } from '../core/package-paths.js';
import type { HoldProgress } from '../gateway/readiness.js';
import { DEFAULT_NAMESPACE } from '../shards/protocol.js';
import { batchDocuments, openCorpus, openSampleCorpus, type CorpusDocument, type CorpusSource } from './corpus.js';
import { ProgressBar } from './progress.js';

export const DONE_MARKER = '.corpus-ingested';
export const PROGRESS_MARKER = '.corpus-ingesting';
const INGEST_BATCH = { maxDocuments: 32, maxBytes: 2 * 1024 * 1024 };

export type IngestOutcome = 'skipped' | 'completed' | 'stopped';

interface ProgressRecord {
  source: string;
  total: number;
  done: number;
  started_at: string;
}

export interface FirstRunIngestOptions {
  dataDir: string;
  /** --corpus; undefined means the sample corpus. */
  corpusPath?: string | undefined;
  log: (line: string) => void;
}

export class FirstRunIngest {
  readonly #options: FirstRunIngestOptions;
  readonly #label: string;
  #detail = 'checking whether the data dir needs its first-run ingest';
  #done = 0;
  #total: number | undefined;

  constructor(options: FirstRunIngestOptions) {
    this.#options = options;
    this.#label = options.corpusPath === undefined ? 'sample corpus' : `corpus ${options.corpusPath}`;
  }

  /** What /readyz reports while this holds readiness. */
  progress(): HoldProgress {
    if (this.#total === undefined) return { detail: this.#detail };
    return { detail: `ingesting ${this.#label}: ${this.#done}/${this.#total} documents`, done: this.#done, total: this.#total };
  }

  /** Ingests unless done before; 'stopped' when `signal` ended it early (progress is kept for the next start). */
  async run(app: FastifyInstance, signal: AbortSignal): Promise<IngestOutcome> {
    const { dataDir, log } = this.#options;
    if (existsSync(join(dataDir, DONE_MARKER))) return 'skipped';
    const previous = await readProgress(join(dataDir, PROGRESS_MARKER));
    if (previous === undefined) {
      const stats = await app.scatter.stats(signal);
      // Data that did not come from a first run (a data dir from before the markers, or
      // documents sent by hand) is left alone.
      if (stats.some((shard) => shard.count > 0)) return 'skipped';
    }
    const source = await this.#open();
    const resumeAt = previous !== undefined && previous.source === this.#label && previous.total === source.count ? previous.done : 0;
    if (previous !== undefined) {
      log(
        resumeAt > 0
          ? `the first-run ingest of the ${this.#label} did not finish last time; resuming at ${resumeAt}/${source.count} documents`
          : `the first-run ingest of the ${this.#label} did not finish last time; starting it over`,
      );
    } else {
      log(`empty data dir: ingesting ${this.#options.corpusPath ?? 'the sample corpus (READMEs of the installed packages)'}`);
    }
    this.#total = source.count;
    this.#done = resumeAt;
    const record: ProgressRecord = { source: this.#label, total: source.count, done: resumeAt, started_at: previous?.started_at ?? new Date().toISOString() };
    await writeProgress(dataDir, record);

    const bar = new ProgressBar(source.count, 'docs');
    if (resumeAt > 0) bar.advance(resumeAt, 'resumed');
    let chunks = 0;
    try {
      for await (const batch of batchDocuments(skip(source.documents(), resumeAt), INGEST_BATCH)) {
        if (signal.aborted) break;
        const result = await app.documents.ingest(DEFAULT_NAMESPACE, batch, signal);
        chunks += result.chunks_total;
        this.#done += batch.length;
        record.done = this.#done;
        await writeProgress(dataDir, record);
        bar.advance(batch.length, `${chunks} chunks`);
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
    if (signal.aborted) {
      log(
        `stopped the first-run ingest at ${this.#done}/${source.count} documents of the ${this.#label} ` +
          `(${chunks} chunks this run); the next start resumes it`,
      );
      return 'stopped';
    }
    bar.finish(`${chunks} chunks`);
    await writeFile(join(dataDir, DONE_MARKER), `${new Date().toISOString()} ${this.#done} documents from ${this.#label}\n`);
    await unlink(join(dataDir, PROGRESS_MARKER)).catch(() => undefined);
    log(`first-run ingest finished: ${this.#done} documents of the ${this.#label}`);
    return 'completed';
  }

  async #open(): Promise<CorpusSource> {
    const { corpusPath } = this.#options;
    return corpusPath !== undefined ? openCorpus(resolve(corpusPath)) : openSampleCorpus(join(packageRoot(), 'node_modules'));
  }
}

async function* skip(documents: AsyncIterable<CorpusDocument>, count: number): AsyncGenerator<CorpusDocument> {
  let seen = 0;
  for await (const document of documents) {
    seen += 1;
    if (seen > count) yield document;
  }
}

async function readProgress(path: string): Promise<ProgressRecord | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<ProgressRecord>;
    if (typeof parsed.source !== 'string' || !Number.isInteger(parsed.total) || !Number.isInteger(parsed.done)) throw new Error('malformed');
    return { source: parsed.source, total: parsed.total as number, done: parsed.done as number, started_at: String(parsed.started_at ?? '') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // Unreadable: a run did start, so it is not "done"; starting over is always safe.
    return { source: '', total: -1, done: 0, started_at: '' };
  }
}

/** Atomic, so a crash mid-write leaves the previous record rather than none. */
async function writeProgress(dataDir: string, record: ProgressRecord): Promise<void> {
  const path = join(dataDir, PROGRESS_MARKER);
  await writeFile(`${path}.tmp`, JSON.stringify(record));
  await rename(`${path}.tmp`, path);
}
