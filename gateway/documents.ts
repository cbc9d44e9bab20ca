// Ingestion and document lookups with no HTTP in it: chunk → embed through the same
// batcher as queries → route every chunk of a document to the one shard that owns it.
// Re-ingesting a document replaces all of its old chunks (the shard drops the ones the new
// version does not carry), so a shorter new version leaves no orphans.
import { createHash } from 'node:crypto';
import type { EmbeddingBatcher } from '../embedder/batcher.js';
import type { Scatter, ScopeOptions } from '../retriever/scatter.js';
import { encodeVector, type Chunk } from '../shards/protocol.js';
import { chunkDocument, type TextChunk } from './chunker.js';
import { createError, throwIfAborted } from '../core/errors.js';
import { roundMs } from './timing.js';

export interface DocumentInput {
  id?: string | undefined;
  text: string;
  metadata?: Record<string, unknown> | undefined;
}

export interface IngestOutput {
  documents: { id: string; chunks: number }[];
  chunks_total: number;
  timings: { chunk_ms: number; embed_ms: number; upsert_ms: number; total_ms: number };
}

export interface StoredDocument {
  id: string;
  namespace: string;
  /** The chunks joined back together (overlaps included); the chunks carry the exact text. */
  text: string;
  chunks: { id: string; text: string; metadata: Record<string, unknown> }[];
}

export interface ChunkingOptions {
  sizeTokens: number;
  overlapTokens: number;
  /** Told the new epochs of the shards each write changed (so caches drop what it staled). */
  onWrite?: (epochs: readonly (number | undefined)[]) => void;
}

/** A stable id for a document sent without one: the same text always gets the same id. */
export function contentId(text: string): string {
  return `doc-${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
}

/**
 * A chunk's metadata: the document's, plus where in the document the chunk sits. The added
 * keys are filterable like any other (`{"heading_path": "Options"}` matches by membership).
 */
export function chunkMetadata(document: Record<string, unknown>, piece: TextChunk): Record<string, unknown> {
  const metadata: Record<string, unknown> = { ...document };
  if (piece.headingPath.length > 0) metadata['heading_path'] = piece.headingPath;
  if (piece.split !== undefined) metadata['split_block'] = piece.split;
  if (piece.cutLine === true) metadata['split_line'] = true;
  return metadata;
}

export class DocumentService {
  readonly #batcher: EmbeddingBatcher;
  readonly #scatter: Scatter;
  readonly #chunking: ChunkingOptions;

  constructor(batcher: EmbeddingBatcher, scatter: Scatter, chunking: ChunkingOptions) {
    this.#batcher = batcher;
    this.#scatter = scatter;
    this.#chunking = chunking;
  }

  /** `scope` carries the calling key's namespaces to the shards (they refuse any other). */
  async ingest(namespace: string, documents: readonly DocumentInput[], signal?: AbortSignal, scope: ScopeOptions = {}): Promise<IngestOutput> {
    const started = performance.now();
    const countTokens = (text: string): number => this.#batcher.backend.encode(text).tokenCount;
    const seen = new Map<string, number>();
    const planned = documents.map((document, index) => {
      const id = document.id ?? contentId(document.text);
      const earlier = seen.get(id);
      if (earlier !== undefined) {
        throw createError('RAGWAY_ERR_INVALID_REQUEST', `documents[${index}] repeats the id "${id}" of documents[${earlier}]`, {
          param: `documents[${index}].id`,
        });
      }
      seen.set(id, index);
      const pieces = chunkDocument(document.text, { ...this.#chunking, countTokens });
      if (pieces.length === 0) {
        throw createError('RAGWAY_ERR_INVALID_REQUEST', `documents[${index}].text has no words to index`, {
          param: `documents[${index}].text`,
        });
      }
      return { id, pieces, metadata: document.metadata ?? {} };
    });
    const chunked = performance.now();

    // The heading path rides along into the embedding; the stored text is the document's own.
    const allTexts = planned.flatMap((document) => document.pieces.map((piece) => piece.embedText));
    const { vectors } = await this.#batcher.embed(allTexts, { signal, param: 'documents' });
    const embedded = performance.now();
    throwIfAborted(signal);

    const chunks: Chunk[] = [];
    let next = 0;
    for (const document of planned) {
      document.pieces.forEach((piece, position) => {
        chunks.push({
          id: `${document.id}#${position}`,
          document_id: document.id,
          namespace,
          text: piece.text,
          metadata: chunkMetadata(document.metadata, piece),
          vector: encodeVector(vectors[next] as Float32Array),
        });
        next += 1;
      });
    }
    const written = await this.#scatter.upsertChunks(chunks, { replaceDocuments: true, namespaces: scope.namespaces }, signal);
    this.#chunking.onWrite?.(written.epochs);
    const finished = performance.now();

    return {
      documents: planned.map((document) => ({ id: document.id, chunks: document.pieces.length })),
      chunks_total: chunks.length,
      timings: {
        chunk_ms: roundMs(chunked - started),
        embed_ms: roundMs(embedded - chunked),
        upsert_ms: roundMs(finished - embedded),
        total_ms: roundMs(finished - started),
      },
    };
  }

  async get(namespace: string, id: string, signal?: AbortSignal, scope: ScopeOptions = {}): Promise<StoredDocument | undefined> {
    const document = await this.#scatter.getDocument(namespace, id, signal, { namespaces: scope.namespaces });
    if (document === undefined) return undefined;
    return {
      id,
      namespace,
      text: document.chunks.map((chunk) => chunk.text).join('\n'),
      chunks: document.chunks,
    };
  }

  /** Resolves the number of chunks removed (0 when the document did not exist). */
  async delete(namespace: string, id: string, signal?: AbortSignal, scope: ScopeOptions = {}): Promise<number> {
    const result = await this.#scatter.deleteDocuments(namespace, [id], signal, { namespaces: scope.namespaces });
    this.#chunking.onWrite?.(result.epochs);
    return result.chunksDeleted;
  }
}
