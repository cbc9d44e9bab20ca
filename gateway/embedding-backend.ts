// Which embedding backend the configuration asks for — the local ONNX model (CPU or CUDA) or a
// remote server — loaded the same way by the gateway plugin and by `ragway start` (which needs
// the width before it spawns shards).
import type { EmbeddingBackend } from '../embedder/backend.js';
import { OnnxEmbeddingBackend } from '../embedder/backends/onnx.js';
import { RemoteEmbeddingBackend } from '../embedder/backends/remote.js';
import { parseUrlList } from '../core/url-list.js';
import { ConfigError, resolveModelDir, type Config } from './config.js';

export async function loadEmbeddingBackend(config: Config, signal?: AbortSignal): Promise<EmbeddingBackend> {
  if (config.embedUrl === '') {
    return OnnxEmbeddingBackend.load({
      model: resolveModelDir(config),
      intraOpNumThreads: config.embedThreads,
      allowRemoteModels: config.embedAllowDownload,
      device: config.embedDevice,
    });
  }
  if (config.embedApiFormat === 'openai' && config.embedModel === '') {
    throw new ConfigError('RAGWAY_EMBED_URL is set: RAGWAY_EMBED_MODEL must name the model to ask it for');
  }
  return RemoteEmbeddingBackend.load(
    {
      urls: parseUrlList(config.embedUrl, 'RAGWAY_EMBED_URL'),
      format: config.embedApiFormat,
      model: config.embedModel === '' ? 'tei' : config.embedModel,
      ...(config.embedApiKey !== '' ? { apiKey: config.embedApiKey } : {}),
      maxBatchInputs: config.embedRemoteMaxBatchInputs,
      maxConcurrency: config.embedRemoteConcurrency,
      timeoutMs: config.embedRemoteTimeoutMs,
      maxAttempts: config.embedRemoteMaxAttempts,
    },
    signal,
  );
}
