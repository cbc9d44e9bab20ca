// What a replica hands a peer that is catching up: the change feed (logged writes as
// protocol Changes) and the export (every document, live or tombstoned, as NDJSON lines).
import {
  EXPORT_FORMAT,
  encodeVector,
  type Change,
  type DeleteRequest,
  type ExportDocument,
  type ExportEnd,
  type ExportHeader,
  type Space,
  type UpsertRequest,
} from '../protocol.js';
import type { WalRecord } from '../wal-format.js';
import type { Catalog } from './catalog.js';
import type { VectorIndex } from './vector-index.js';
import type { VersionFloors } from './versions.js';

export function toChange(record: WalRecord): Change {
  return record.op === 'upsert'
    ? { seq: record.seq, op: 'upsert', upsert: record.request as UpsertRequest }
    : { seq: record.seq, op: 'delete', delete: record.request as DeleteRequest };
}

export interface ExportSource {
  catalog: Catalog;
  vectors: VectorIndex;
  versions: VersionFloors;
  highWater: number;
  epoch: number;
  dim: number;
  space: Space;
}

/**
 * The export (GET /v1/export) as NDJSON lines, produced lazily: between lines the store
 * keeps serving writes, and each document is read when its line is made (protocol.ts
 * describes why that is enough). Documents created after the header come through the
 * change feed after high_water.
 */
export function* exportLines(source: ExportSource): Generator<string> {
  const { catalog, versions } = source;
  const header: ExportHeader = {
    type: 'header',
    format: EXPORT_FORMAT,
    high_water: source.highWater,
    epoch: source.epoch,
    dim: source.dim,
    space: source.space,
  };
  yield JSON.stringify(header);
  const keys: [string, string][] = [];
  for (const [name, namespace] of catalog.namespaces) {
    for (const documentId of namespace.documents.keys()) keys.push([name, documentId]);
  }
  keys.push(...versions.tombstoned((namespace, documentId) => catalog.documentChunks(namespace, documentId) !== undefined));
  let documents = 0;
  let chunks = 0;
  for (const [namespace, documentId] of keys) {
    const line = exportDocument(source, namespace, documentId);
    if (line === undefined) continue;
    documents += 1;
    chunks += line.chunks.length;
    yield JSON.stringify(line);
  }
  const end: ExportEnd = { type: 'end', documents, chunks };
  yield JSON.stringify(end);
}

/** One document's export line (live or tombstoned); undefined when the store never heard of it. */
export function exportDocument(source: ExportSource, namespace: string, documentId: string): ExportDocument | undefined {
  const records = source.catalog.documentChunks(namespace, documentId);
  const floor = source.versions.floorOf(namespace, documentId);
  if ((records === undefined || records.size === 0) && floor === 0) return undefined;
  const chunks = [...(records?.values() ?? [])].map((record) => ({
    id: record.id,
    version: record.version,
    text: record.text,
    metadata: record.metadata,
    vector: encodeVector(source.vectors.vectorOf(record.label)),
  }));
  return {
    type: 'document',
    namespace,
    document_id: documentId,
    version: floor,
    ...(chunks.length === 0 ? { tombstone: true } : {}),
    chunks,
  };
}
