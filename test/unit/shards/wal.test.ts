import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDirs } from '../../helpers/temp-dirs.js';
import { encodeRecord, WriteAheadLog, type WalOptions, type WalRecord } from '../../../shards/wal.js';

const freshDir = tempDirs('wal');

function record(seq: number, size = 40): WalRecord {
  return { seq, op: seq % 5 === 0 ? 'delete' : 'upsert', request: { n: seq, pad: 'x'.repeat(size) } };
}

function reopen(options: WalOptions, afterSeq = 0): { wal: WriteAheadLog; records: WalRecord[]; warnings: string[] } {
  const records: WalRecord[] = [];
  const warnings: string[] = [];
  const wal = WriteAheadLog.open(options, { afterSeq, onRecord: (r) => records.push(r), onWarning: (w) => warnings.push(w) });
  return { wal, records, warnings };
}

function segmentFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.wal'))
    .sort();
}

describe('WriteAheadLog', () => {
  it('replays every acknowledged record in order after a reopen', async () => {
    const options = { dir: freshDir() };
    const { wal } = reopen(options);
    await Promise.all(Array.from({ length: 100 }, (_, i) => wal.append(record(i + 1))));
    assert.equal(wal.durableSeq, 100);
    // No close(): what an acknowledgement promised must be there after a crash too.
    const { wal: again, records } = reopen(options);
    assert.deepEqual(records, Array.from({ length: 100 }, (_, i) => record(i + 1)));
    assert.equal(again.lastSeq, 100);
    assert.equal(again.floor, 0);
    const { records: afterSnapshot } = reopen(options, 60);
    assert.deepEqual(
      afterSnapshot.map((r) => r.seq),
      Array.from({ length: 40 }, (_, i) => 61 + i),
      'records a snapshot holds are not replayed',
    );
    await again.close();
    await wal.close();
  });

  it('refuses an append whose seq does not increase', async () => {
    const { wal } = reopen({ dir: freshDir() });
    await wal.append(record(5));
    await assert.rejects(wal.append(record(5)), /does not follow 5/);
    await assert.rejects(wal.append(record(3)), /does not follow 5/);
    await wal.append(record(9)); // gaps are fine
    await wal.close();
  });

  describe('torn tail', () => {
    async function writtenLog(count: number): Promise<{ options: WalOptions; path: string; size: number }> {
      const options = { dir: freshDir() };
      const { wal } = reopen(options);
      for (let i = 1; i <= count; i++) void wal.append(record(i));
      await wal.sync();
      await wal.close();
      const [name] = segmentFiles(options.dir) as [string];
      const path = join(options.dir, name);
      return { options, path, size: statSync(path).size };
    }

    it('cuts half a record off the end and keeps everything before it', async () => {
      const { options, path, size } = await writtenLog(20);
      appendFileSync(path, encodeRecord(record(21)).subarray(0, 17));
      const { wal, records, warnings } = reopen(options);
      assert.equal(records.length, 20);
      assert.equal(wal.lastSeq, 20);
      assert.equal(statSync(path).size, size, 'the torn bytes are truncated');
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] as string, /cut 17 bytes/);
      // Appends go on after the cut, in a new segment, and replay together.
      await wal.append(record(21));
      await wal.close();
      assert.equal(reopen(options).records.length, 21);
    });

    it('cuts garbage, a lying length and a bad checksum', async () => {
      const { options, path, size } = await writtenLog(10);
      appendFileSync(path, Buffer.from([0xde, 0xad, 0xbe]));
      assert.equal(reopen(options).records.length, 10);
      assert.equal(statSync(path).size, size);

      const huge = Buffer.alloc(8);
      huge.writeUInt32LE(0x7fffffff, 0);
      appendFileSync(path, huge);
      assert.equal(reopen(options).records.length, 10);
      assert.equal(statSync(path).size, size);

      const corrupt = encodeRecord(record(11));
      corrupt[corrupt.byteLength - 2] = (corrupt[corrupt.byteLength - 2] as number) ^ 0xff;
      appendFileSync(path, corrupt);
      const { records, warnings } = reopen(options);
      assert.equal(records.length, 10);
      assert.equal(warnings.length, 1);
      assert.equal(statSync(path).size, size);
    });

    it('drops a segment that holds nothing readable', async () => {
      const options = { dir: freshDir() };
      const { wal } = reopen(options);
      await wal.append(record(1));
      await wal.close();
      writeFileSync(join(options.dir, '00000000000000000002.wal'), Buffer.from([1, 2]));
      const { records } = reopen(options);
      assert.equal(records.length, 1);
      assert.deepEqual(segmentFiles(options.dir), ['00000000000000000001.wal']);
    });

    it('refuses to open when an older segment is corrupt', async () => {
      const options = { dir: freshDir(), segmentBytes: 256 };
      const { wal } = reopen(options);
      for (let i = 1; i <= 10; i++) await wal.append(record(i, 100));
      await wal.close();
      const [first] = segmentFiles(options.dir) as [string];
      const bytes = readFileSync(join(options.dir, first));
      bytes[20] = (bytes[20] as number) ^ 0xff;
      writeFileSync(join(options.dir, first), bytes);
      assert.throws(() => reopen(options), /newer segments follow/);
    });
  });

  describe('group commit', () => {
    /** `clients` writers, each appending `perClient` records one after the other. */
    async function load(groupCommit: boolean, clients: number, perClient: number): Promise<WriteAheadLog> {
      const { wal } = reopen({ dir: freshDir(), groupCommit });
      let seq = 0;
      await Promise.all(
        Array.from({ length: clients }, async () => {
          for (let i = 0; i < perClient; i++) await wal.append(record(++seq));
        }),
      );
      return wal;
    }

    it('shares fsyncs among concurrent appends', async () => {
      const grouped = await load(true, 32, 10);
      const stats = grouped.stats();
      assert.equal(stats.appends, 320);
      assert.ok(stats.fsyncs <= 320 / 8, `expected far fewer fsyncs than appends, got ${stats.fsyncs}`);
      const { records } = reopen({ dir: grouped.dir });
      assert.deepEqual(
        records.map((r) => r.seq),
        Array.from({ length: 320 }, (_, i) => i + 1),
      );
      await grouped.close();
    });

    it('fsyncs every record alone without it', async () => {
      const single = await load(false, 8, 5);
      assert.deepEqual({ appends: single.stats().appends, fsyncs: single.stats().fsyncs }, { appends: 40, fsyncs: 40 });
      await single.close();
    });

    it('batches appends made in one synchronous run into one write', async () => {
      const { wal } = reopen({ dir: freshDir() });
      const acks = Array.from({ length: 50 }, (_, i) => wal.append(record(i + 1)));
      await Promise.all(acks);
      assert.equal(wal.stats().fsyncs, 1);
      await wal.close();
    });
  });

  describe('retention and the feed', () => {
    async function segmented(count: number): Promise<{ wal: WriteAheadLog; options: WalOptions }> {
      // ~170-byte records, 4 to a segment.
      const options = { dir: freshDir(), segmentBytes: 600 };
      const { wal } = reopen(options);
      for (let i = 1; i <= count; i++) await wal.append(record(i, 100));
      return { wal, options };
    }

    it('reads pages after a seq, within limit and size', async () => {
      const { wal } = await segmented(30);
      assert.ok(wal.stats().segments >= 7);
      const page = await wal.readSince(7, 5);
      assert.equal(page.snapshotRequired, false);
      assert.deepEqual(
        page.records.map((r) => r.seq),
        [8, 9, 10, 11, 12],
      );
      assert.deepEqual(page.records[0], record(8, 100));
      assert.deepEqual(
        (await wal.readSince(27, 100)).records.map((r) => r.seq),
        [28, 29, 30],
      );
      assert.deepEqual((await wal.readSince(30, 100)).records, []);
      assert.equal((await wal.readSince(0, 1000, 1)).records.length, 1, 'at least one record whatever the size cap');
      await wal.close();
    });

    it('truncates whole segments and then asks for a snapshot', async () => {
      const { wal, options } = await segmented(30);
      const before = wal.stats().segments;
      wal.truncateBefore(14);
      assert.ok(wal.stats().segments < before);
      assert.ok(wal.floor > 0 && wal.floor < 14, `floor ${wal.floor}`);
      assert.deepEqual(await wal.readSince(wal.floor - 1, 10), { snapshotRequired: true, records: [] });
      assert.equal((await wal.readSince(wal.floor, 1)).records[0]?.seq, wal.floor + 1);
      const floor = wal.floor;
      await wal.close();
      const { wal: again, records } = reopen(options);
      assert.equal(again.floor, floor, 'the floor follows from the oldest segment after a reopen');
      assert.equal(records[0]?.seq, floor + 1);
      await again.close();
    });

    it('never skips records when a segment is truncated during a read', async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const { wal } = await segmented(30);
        const reading = wal.readSince(0, 1000);
        wal.truncateBefore(14);
        const result = await reading;
        if (!result.snapshotRequired) {
          assert.deepEqual(
            result.records.map((r) => r.seq),
            Array.from({ length: 30 }, (_, i) => i + 1),
          );
        }
        await wal.close();
      }
    });

    it('keeps what the snapshot lacks and the newest records for peers', async () => {
      const { wal } = await segmented(40);
      wal.applyRetention(10, 0, Number.MAX_SAFE_INTEGER);
      assert.ok(wal.floor <= 10, 'records after the snapshot stay');
      wal.applyRetention(40, 20, Number.MAX_SAFE_INTEGER);
      assert.ok(wal.floor <= 20 && wal.floor >= 12, `the newest 20 stay for peers (floor ${wal.floor})`);
      wal.applyRetention(40, 20, 700);
      assert.ok(wal.floor > 20, `the byte cap wins over the record count (floor ${wal.floor})`);
      wal.applyRetention(40, 0, 0);
      assert.equal(wal.floor, 40, 'everything may go once the snapshot holds it');
      assert.equal(wal.stats().segments, 0);
      await wal.append(record(41));
      assert.deepEqual(
        (await wal.readSince(40, 10)).records.map((r) => r.seq),
        [41],
      );
      await wal.close();
    });

    it('skips forward and remembers it', async () => {
      const options = { dir: freshDir() };
      const { wal } = reopen(options);
      await wal.append(record(1));
      wal.skipTo(500);
      assert.equal(wal.lastSeq, 500);
      assert.equal((await wal.readSince(3, 10)).snapshotRequired, true);
      await assert.rejects(wal.append(record(2)), /does not follow 500/);
      await wal.close();
      const { wal: again } = reopen(options);
      assert.equal(again.lastSeq, 500);
      assert.equal(again.floor, 500);
      assert.ok(existsSync(join(options.dir, 'FLOOR')));
      await again.close();
    });

    it('does not claim records lost between the last record and a newer snapshot', () => {
      const options = { dir: freshDir() };
      reopen(options, 0);
      const { wal: afterCrash } = reopen(options, 25);
      assert.equal(afterCrash.floor, 25);
      assert.equal(afterCrash.lastSeq, 25);
    });
  });
});
