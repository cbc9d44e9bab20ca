// What every EmbeddingBackend promises the micro-batcher, as one suite run against each
// implementation (the local ONNX model, a remote server in each API shape).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EmbeddingBackend } from '../../../embedder/backend.js';
import { isRagwayError } from '../../../core/errors.js';

const CAT = 'The cat rested on the carpet';
const KITTEN = 'The kitten slept on the rug';
const STOCKS = 'The stock market fell sharply';

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] ?? 0) * (b[i] ?? 0);
  return sum;
}

export function embeddingBackendContract(name: string, load: () => Promise<EmbeddingBackend>, options: { dimensions: number }): void {
  describe(`EmbeddingBackend contract: ${name}`, () => {
    let backend: EmbeddingBackend;
    const embed = (texts: string[], signal?: AbortSignal): Promise<Float32Array[]> =>
      backend.embed(texts.map((text) => backend.encode(text)), signal);

    before(async () => {
      backend = await load();
    });
    after(async () => {
      await backend?.close();
    });

    it('reports its id, width and input limit', () => {
      assert.ok(backend.modelId.length > 0);
      assert.equal(backend.dimensions, options.dimensions);
      assert.ok(backend.maxInputTokens > 0);
      assert.ok(backend.encode(CAT).tokenCount >= 1);
    });

    it('returns one unit vector per input that puts related sentences close', async () => {
      const [cat, kitten, stocks] = await embed([CAT, KITTEN, STOCKS]);
      for (const vector of [cat!, kitten!, stocks!]) {
        assert.equal(vector.length, backend.dimensions);
        assert.ok(Math.abs(Math.sqrt(dot(vector, vector)) - 1) < 1e-4);
      }
      assert.ok(dot(cat!, kitten!) > dot(cat!, stocks!) + 0.2);
    });

    it('embeds a batch exactly like one input at a time, in input order', async () => {
      const texts = Array.from({ length: 70 }, (_, i) => `${i % 2 === 0 ? CAT : STOCKS} number ${i} of the batch`);
      const batch = await embed(texts);
      assert.equal(batch.length, texts.length);
      for (const i of [0, 1, 33, 69]) {
        const [single] = await embed([texts[i]!]);
        assert.ok(dot(batch[i]!, single!) > 0.9999, `input ${i} moved in the batch`);
      }
    });

    it('returns nothing for no input and refuses an aborted signal', async () => {
      assert.deepEqual(await backend.embed([]), []);
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(embed([CAT], controller.signal));
    });

    it('refuses an input over its limit instead of cutting it', async () => {
      const long = Array.from({ length: backend.maxInputTokens + 10 }, () => 'cat').join(' ');
      await assert.rejects(embed([long]), (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_INPUT_TOO_LONG');
    });
  });
}
