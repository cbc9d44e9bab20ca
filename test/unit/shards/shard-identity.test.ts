// A data dir remembers the shard it holds (`--shard-index`), so a replica can never serve one
// shard's data as another's after a topology change.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkShardIdentity, SHARD_FILE, ShardIdentityError } from '../../../shards/shard-identity.js';
import { tempDirs } from '../../helpers/temp-dirs.js';

const freshDir = tempDirs('shard-identity');

describe('shard identity of a data dir', () => {
  it('is recorded on first start, then must match', () => {
    const dir = freshDir();
    checkShardIdentity(dir, 1);
    assert.equal(readFileSync(join(dir, SHARD_FILE), 'utf8'), '1\n');
    assert.doesNotThrow(() => checkShardIdentity(dir, 1));
    assert.throws(
      () => checkShardIdentity(dir, 0),
      (err: unknown) => err instanceof ShardIdentityError && /holds shard 1, but this replica was started as shard 0/.test(err.message),
    );
  });

  it('is neither checked nor written without --shard-index', () => {
    const dir = freshDir();
    checkShardIdentity(dir, undefined);
    assert.equal(existsSync(join(dir, SHARD_FILE)), false);
    checkShardIdentity(dir, 2);
    assert.doesNotThrow(() => checkShardIdentity(dir, undefined));
  });

  it('refuses a file it cannot read as an index', () => {
    const dir = freshDir();
    checkShardIdentity(dir, 0);
    writeFileSync(join(dir, SHARD_FILE), 'zero\n');
    assert.throws(() => checkShardIdentity(dir, 0), /does not hold a shard index/);
  });
});
