// What the answer-path integration tests each need before they build a gateway: a temporary
// directory, the real default embedding model, real shard processes and a scripted
// OpenAI-compatible upstream (a real HTTP server). `close()` takes it all down in reverse.
import type { OnnxEmbeddingBackend } from '../../embedder/backends/onnx.js';
import { startScriptedUpstream, type ScriptedUpstream, type UpstreamScript } from '../fixtures/scripted-upstream.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from './cluster.js';

export interface LlmStack {
  dir: Awaited<ReturnType<typeof tempDir>>;
  backend: OnnxEmbeddingBackend;
  shards: TestShards;
  upstream: ScriptedUpstream;
  close(): Promise<void>;
}

export async function startLlmStack(prefix: string, options: { shards?: number; script?: Partial<UpstreamScript> } = {}): Promise<LlmStack> {
  const dir = await tempDir(prefix);
  const started: (() => Promise<void>)[] = [() => dir.remove()];
  // Idempotent: each part is taken off the list as it is stopped, newest first.
  const close = async (): Promise<void> => {
    for (let stop = started.pop(); stop !== undefined; stop = started.pop()) await stop();
  };
  try {
    const backend = await loadDefaultBackend();
    started.push(() => backend.close());
    const shards = await startShards(options.shards ?? 1, dir.path, backend.dimensions);
    started.push(() => shards.stop());
    const upstream = await startScriptedUpstream(options.script);
    started.push(() => upstream.close());
    return { dir, backend, shards, upstream, close };
  } catch (err) {
    await close();
    throw err;
  }
}
