import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EmbeddingBatcher } from '../../../embedder/batcher.js';
import { isRagwayError } from '../../../core/errors.js';
import { RecordingBackend } from '../../helpers/recording-backend.js';

const words = (n: number): string => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');

describe('EmbeddingBatcher', () => {
  it('returns one vector per input, in order, with prompt tokens counted', async () => {
    const backend = new RecordingBackend();
    const batcher = new EmbeddingBatcher(backend, { maxWaitMs: 0 });
    const result = await batcher.embed(['a b', 'ccc', 'dd e f']);
    assert.deepEqual(result.vectors, ['a b', 'ccc', 'dd e f'].map((text) => RecordingBackend.vectorFor(text)));
    assert.equal(result.promptTokens, 6);
  });

  it('packs concurrent callers into one model call while the model is busy', async () => {
    const backend = new RecordingBackend();
    const batcher = new EmbeddingBatcher(backend, { maxWaitMs: 0, maxBatchInputs: 64 });
    backend.pause();
    const first = batcher.embed(['first']);
    await new Promise((resolve) => setImmediate(resolve));
    const rest = Array.from({ length: 20 }, (_, i) => batcher.embed([`q${i}`]));
    backend.release();
    await Promise.all([first, ...rest]);
    assert.deepEqual(backend.batches.map((batch) => batch.length), [1, 20]);
  });

  it('flushes a partial batch after maxWaitMs', async () => {
    const backend = new RecordingBackend();
    const batcher = new EmbeddingBatcher(backend, { maxWaitMs: 20, maxBatchInputs: 64 });
    const started = performance.now();
    await Promise.all([batcher.embed(['a']), batcher.embed(['b'])]);
    assert.deepEqual(backend.batches, [['a', 'b']]);
    assert.ok(performance.now() - started >= 15, 'the batch waited for company');
  });

  it('flushes at once when maxBatchInputs is reached, without waiting', async () => {
    const backend = new RecordingBackend();
    const batcher = new EmbeddingBatcher(backend, { maxWaitMs: 10_000, maxBatchInputs: 4 });
    await Promise.all([batcher.embed(['a', 'b']), batcher.embed(['c', 'd'])]);
    assert.deepEqual(backend.batches, [['a', 'b', 'c', 'd']]);
  });

  it('splits an oversized client batch across model calls, never truncating it', async () => {
    const backend = new RecordingBackend();
    const batcher = new EmbeddingBatcher(backend, { maxWaitMs: 0, maxBatchInputs: 8, maxQueuedInputs: 16 });
    const texts = Array.from({ length: 50 }, (_, i) => `t${i}`);
    const result = await batcher.embed(texts);
    assert.equal(result.vectors.length, 50);
    assert.deepEqual(result.vectors, texts.map((text) => RecordingBackend.vectorFor(text)));
    assert.ok(backend.batches.every((batch) => batch.length <= 8));
    assert.equal(backend.batches.flat().length, 50);
  });

  it('caps padded tokens per batch and groups inputs of similar length', async () => {
    const backend = new RecordingBackend();
    const batcher = new EmbeddingBatcher(backend, { maxWaitMs: 0, maxBatchInputs: 64, maxBatchTokens: 40 });
    backend.pause();
    const blocker = batcher.embed(['x']);
    await new Promise((resolve) => setImmediate(resolve));
    const texts = [words(10), words(1), words(10), words(1), words(1), words(10), words(1)];
    const pending = texts.map((text) => batcher.embed([text]));
    backend.release();
    await Promise.all([blocker, ...pending]);
    for (const batch of backend.batches.slice(1)) {
      const longest = Math.max(...batch.map((text) => text.split(' ').length));
      assert.ok(batch.length * longest <= 40, `batch of ${batch.length} × ${longest} tokens exceeds the budget`);
    }
    // The short inputs travel together instead of each being padded to 10 tokens.
    assert.ok(backend.batches.slice(1).some((batch) => batch.length === 4 && batch.every((text) => text === 'w0')));
  });

  it('refuses with 429 RAGWAY_ERR_OVERLOADED when the queue is full, then recovers', async () => {
    const backend = new RecordingBackend();
    const batcher = new EmbeddingBatcher(backend, { maxWaitMs: 0, maxBatchInputs: 2, maxQueuedInputs: 4 });
    backend.pause();
    const running = batcher.embed(['a', 'b']);
    await new Promise((resolve) => setImmediate(resolve));
    const queued = batcher.embed(['c', 'd', 'e', 'f']);
    await assert.rejects(batcher.embed(['g']), (err: unknown) => {
      assert.ok(isRagwayError(err));
      assert.equal(err.code, 'RAGWAY_ERR_OVERLOADED');
      assert.equal(err.statusCode, 429);
      assert.equal(err.retryAfterSeconds, 1);
      return true;
    });
    backend.release();
    await Promise.all([running, queued]);
    assert.equal((await batcher.embed(['h'])).vectors.length, 1);
  });

  it('drops inputs whose caller aborted before compute, and counts them', async () => {
    const backend = new RecordingBackend();
    const dropped: number[] = [];
    const batcher = new EmbeddingBatcher(backend, { maxWaitMs: 0 }, { onDropped: (n) => dropped.push(n) });
    backend.pause();
    const blocker = batcher.embed(['blocker']);
    await new Promise((resolve) => setImmediate(resolve));
    const controller = new AbortController();
    const abandoned = batcher.embed(['gone-1', 'gone-2'], { signal: controller.signal });
    const kept = batcher.embed(['kept']);
    controller.abort();
    await assert.rejects(abandoned, (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_CLIENT_CLOSED');
    backend.release();
    await Promise.all([blocker, kept]);
    assert.deepEqual(backend.batches, [['blocker'], ['kept']]);
    assert.deepEqual(dropped, [2]);
    assert.equal(batcher.stats().dropped, 2);
    assert.equal(batcher.stats().queued, 0);
  });

  it('rejects an already-aborted signal without queueing', async () => {
    const backend = new RecordingBackend();
    const batcher = new EmbeddingBatcher(backend);
    await assert.rejects(batcher.embed(['a'], { signal: AbortSignal.abort() }));
    assert.equal(backend.batches.length, 0);
  });

  it('rejects inputs longer than the model accepts, naming the input', async () => {
    const batcher = new EmbeddingBatcher(new RecordingBackend({ maxInputTokens: 5 }));
    await assert.rejects(batcher.embed(['ok', words(6)], { param: 'input' }), (err: unknown) => {
      assert.ok(isRagwayError(err));
      assert.equal(err.code, 'RAGWAY_ERR_INPUT_TOO_LONG');
      assert.equal(err.param, 'input[1]');
      return true;
    });
  });

  it('fails every caller of a batch whose model call fails, and keeps serving', async () => {
    const backend = new RecordingBackend();
    const batcher = new EmbeddingBatcher(backend, { maxWaitMs: 5 });
    backend.failNextBatch(new Error('session exploded'));
    const results = await Promise.allSettled([batcher.embed(['a']), batcher.embed(['b'])]);
    assert.ok(results.every((r) => r.status === 'rejected' && isRagwayError(r.reason) && r.reason.code === 'RAGWAY_ERR_INTERNAL'));
    assert.equal((await batcher.embed(['c'])).vectors.length, 1);
  });

  it('close() fails queued callers with NOT_READY and refuses new ones', async () => {
    const backend = new RecordingBackend();
    const batcher = new EmbeddingBatcher(backend, { maxWaitMs: 1_000 });
    const queued = batcher.embed(['a']);
    batcher.close();
    await assert.rejects(queued, (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_NOT_READY');
    await assert.rejects(batcher.embed(['b']), (err: unknown) => isRagwayError(err) && err.code === 'RAGWAY_ERR_NOT_READY');
  });
});
