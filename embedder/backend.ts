// What the micro-batcher needs from an embedding model. The local ONNX backend implements
// it now; a remote OpenAI-compatible /v1/embeddings backend fits the same shape (its
// `encode` estimates tokens and leaves `ids` undefined).

export interface EncodedInput {
  readonly text: string;
  /** Tokens the model will see for this text (no padding); drives batch budgets and usage. */
  readonly tokenCount: number;
  /** Token ids when the backend tokenizes locally, so a batch never tokenizes twice. */
  readonly ids?: readonly number[];
}

export interface EmbeddingBackend {
  readonly modelId: string;
  readonly dimensions: number;
  /** Longest input (in tokens) the model accepts; longer inputs are rejected, never cut silently. */
  readonly maxInputTokens: number;
  encode(text: string): EncodedInput;
  /** Embeds one batch; resolves one L2-normalized vector per input, in order. */
  embed(inputs: readonly EncodedInput[], signal?: AbortSignal): Promise<Float32Array[]>;
  close(): Promise<void>;
}
