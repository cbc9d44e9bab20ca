// Which shard owns a document. Every chunk of a document lives on one shard, so replacing or
// deleting a document is a single-shard operation and getDocument asks one shard only.
//
// FNV-1a 64 spreads the id; jump consistent hash (Lamping & Veach, 2014) maps it to a bucket
// so that growing from n to n+1 shards moves only ~1/(n+1) of the documents — a modulo would
// move almost all of them. Both are fixed algorithms: the mapping must never change between
// releases, or documents written by an old gateway become invisible to getDocument/delete.

const FNV_OFFSET_HI = 0xcbf29ce4;
const FNV_OFFSET_LO = 0x84222325;
// The 64-bit FNV prime is 2^40 + 0x1b3: multiplying by it is a shift plus a small product,
// which two 32-bit halves do exactly without BigInt in the per-byte loop.
const FNV_PRIME_LOW_PART = 0x1b3;
const TWO_POW_32 = 4294967296;

const JUMP_MULTIPLIER = 2862933555777941757n;
const UINT64_MASK = (1n << 64n) - 1n;

/** FNV-1a 64 of the UTF-8 bytes of `text`, as an unsigned 64-bit BigInt. */
export function fnv1a64(text: string): bigint {
  const bytes = Buffer.from(text, 'utf8');
  let hi = FNV_OFFSET_HI;
  let lo = FNV_OFFSET_LO;
  for (const byte of bytes) {
    lo = (lo ^ byte) >>> 0;
    // (hi·2^32 + lo) · (2^40 + 0x1b3) mod 2^64
    const loProduct = lo * FNV_PRIME_LOW_PART; // < 2^41, exact in a double
    const carry = Math.floor(loProduct / TWO_POW_32);
    hi = (Math.imul(hi, FNV_PRIME_LOW_PART) + carry + (lo << 8)) >>> 0;
    lo = loProduct >>> 0;
  }
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** Jump consistent hash: a bucket in [0, buckets) for a 64-bit key. */
export function jumpConsistentHash(key: bigint, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1) {
    throw new RangeError(`bucket count must be a positive integer, got ${buckets}`);
  }
  let state = key & UINT64_MASK;
  let bucket = -1;
  let next = 0;
  while (next < buckets) {
    bucket = next;
    state = (state * JUMP_MULTIPLIER + 1n) & UINT64_MASK;
    next = Math.floor((bucket + 1) * (2147483648 / (Number(state >> 33n) + 1)));
  }
  return bucket;
}

/** The shard in [0, shardCount) that owns `documentId`; stable across processes and releases. */
export function shardForDocument(documentId: string, shardCount: number): number {
  if (shardCount === 1) return 0;
  return jumpConsistentHash(fnv1a64(documentId), shardCount);
}
