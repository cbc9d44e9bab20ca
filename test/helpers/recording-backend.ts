// An EmbeddingBackend for batcher tests: it records each batch it is given, can be paused
// to let a queue build up, and returns vectors derived from the text so results can be
// checked for order. Batching logic is what is under test, not a model; the real model is
// exercised by the integration tests.
import type { EmbeddingBackend, EncodedInput } from '../../embedder/backend.js';

export class RecordingBackend implements EmbeddingBackend {
  readonly modelId = 'recording-test-backend';
  readonly dimensions = 4;
  readonly maxInputTokens: number;
  readonly batches: string[][] = [];
  #gate: Promise<void> = Promise.resolve();
  #open: () => void = () => {};
  #failNext: Error | undefined;

  constructor(options: { maxInputTokens?: number } = {}) {
    this.maxInputTokens = options.maxInputTokens ?? 512;
  }

  encode(text: string): EncodedInput {
    const words = text.split(/\s+/).filter((word) => word !== '');
    return { text, tokenCount: words.length };
  }

  /** Batches wait until release() is called. */
  pause(): void {
    this.#gate = new Promise((resolve) => {
      this.#open = resolve;
    });
  }

  release(): void {
    this.#open();
  }

  failNextBatch(err: Error): void {
    this.#failNext = err;
  }

  async embed(inputs: readonly EncodedInput[]): Promise<Float32Array[]> {
    this.batches.push(inputs.map((input) => input.text));
    await this.#gate;
    const failure = this.#failNext;
    if (failure !== undefined) {
      this.#failNext = undefined;
      throw failure;
    }
    return inputs.map((input) => RecordingBackend.vectorFor(input.text));
  }

  static vectorFor(text: string): Float32Array {
    return Float32Array.from([text.length, input0(text), 1, 0]);
  }

  async close(): Promise<void> {}
}

function input0(text: string): number {
  return text.charCodeAt(0) || 0;
}
