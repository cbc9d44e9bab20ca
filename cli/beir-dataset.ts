// Reads a BEIR-layout dataset: corpus.jsonl ({_id, title?, text}), queries.jsonl ({_id,
// text}) and qrels/<split>.tsv (query-id, corpus-id, score; a header line). Streaming
// reads, so a large corpus never becomes one string.
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Judgements } from '../retriever/eval-metrics.js';
import { UsageError } from './args.js';

export interface BeirDocument {
  id: string;
  /** Title and text joined (as BEIR's evaluation embeds them). */
  text: string;
}

export interface BeirQuery {
  id: string;
  text: string;
}

async function* lines(path: string): AsyncGenerator<string> {
  const reader = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of reader) if (line.trim() !== '') yield line;
}

export function checkDataset(dir: string, split: string): void {
  for (const path of [join(dir, 'corpus.jsonl'), join(dir, 'queries.jsonl'), join(dir, 'qrels', `${split}.tsv`)]) {
    if (!existsSync(path)) throw new UsageError(`${path} is missing: a BEIR dataset has corpus.jsonl, queries.jsonl and qrels/<split>.tsv`);
  }
}

export async function* readCorpus(dir: string): AsyncGenerator<BeirDocument> {
  for await (const line of lines(join(dir, 'corpus.jsonl'))) {
    const row = JSON.parse(line) as { _id: string; title?: string; text?: string };
    const text = [row.title ?? '', row.text ?? ''].filter((part) => part.trim() !== '').join('\n\n');
    if (text !== '') yield { id: String(row._id), text };
  }
}

export async function readQueries(dir: string): Promise<Map<string, string>> {
  const queries = new Map<string, string>();
  for await (const line of lines(join(dir, 'queries.jsonl'))) {
    const row = JSON.parse(line) as { _id: string; text: string };
    queries.set(String(row._id), row.text);
  }
  return queries;
}

/** query id → document id → grade, from qrels/<split>.tsv. */
export async function readQrels(dir: string, split: string): Promise<Map<string, Map<string, number>>> {
  const qrels = new Map<string, Map<string, number>>();
  let first = true;
  for await (const line of lines(join(dir, 'qrels', `${split}.tsv`))) {
    const [queryId, docId, score] = line.split('\t');
    if (first) {
      first = false;
      if (Number.isNaN(Number(score))) continue; // the header
    }
    if (queryId === undefined || docId === undefined || score === undefined) continue;
    let judged = qrels.get(queryId);
    if (judged === undefined) {
      judged = new Map();
      qrels.set(queryId, judged);
    }
    judged.set(docId, Number(score));
  }
  return qrels;
}

export type Qrels = ReadonlyMap<string, Judgements>;
