// Which shard a data dir holds. A replica started with --shard-index records it in
// `<dataDir>/SHARD` the first time, and refuses to start later with another index: with DNS
// discovery the gateway places a replica by the index it reports, so a pod whose ordinal maps
// to another shard than before (SHARDS changed in the topology without a re-ingest, a volume
// attached to the wrong pod) would otherwise serve one shard's data as another's — searches
// quietly missing documents, writes landing on the wrong shard. Without --shard-index nothing
// is checked or written (`ragway start` and fixed URL lists place replicas by their URL).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SHARD_FILE = 'SHARD';

export class ShardIdentityError extends Error {
  override readonly name = 'ShardIdentityError';
}

/** Checks `shardIndex` against what the data dir recorded, recording it when nothing was. */
export function checkShardIdentity(dataDir: string, shardIndex: number | undefined): void {
  if (shardIndex === undefined) return;
  const file = join(dataDir, SHARD_FILE);
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8').trim();
    const recorded = /^\d+$/.test(text) ? Number(text) : undefined;
    if (recorded === undefined) throw new ShardIdentityError(`${file} does not hold a shard index ("${text.slice(0, 40)}"); fix or remove it`);
    if (recorded !== shardIndex) {
      throw new ShardIdentityError(
        `data dir ${dataDir} holds shard ${recorded}, but this replica was started as shard ${shardIndex} (--shard-index); ` +
          `start it with --shard-index ${recorded}, or give it an empty data dir (changing the number of shards needs a re-ingest)`,
      );
    }
    return;
  }
  mkdirSync(dataDir, { recursive: true });
  // Written whole or not at all: a crash never leaves a half-written index to misread.
  writeFileSync(`${file}.tmp`, `${shardIndex}\n`);
  renameSync(`${file}.tmp`, file);
}
