// The only reader of process.env. Every setting has a default, a unit in its name, and a
// doc line; the README's config table is generated from this list (`ragway config --markdown`)
// and a test checks the two agree. Parsed once at start; a bad value stops the process
// with a message naming the variable.
import { boolean, ConfigError, integer, number, oneOf, parseValue, secret, string, type SettingSpec } from './config-specs.js';

export { ConfigError } from './config-specs.js';
export {
  loadClusterToken,
  loadUpstreams,
  parseDnsServers,
  parseShardSource,
  parseShardSpec,
  resolveModelDir,
  tracingSettings,
  type ShardSource,
  type UpstreamSpec,
} from './config-sources.js';

export const SETTINGS = {
  host: string('RAGWAY_HOST', '127.0.0.1', 'Address the gateway listens on (0.0.0.0 to accept remote clients).'),
  port: integer('RAGWAY_PORT', 8080, 'Gateway port; 0 picks a free one.', 0, 65_535),
  dataDir: string('RAGWAY_DATA_DIR', './data', '`ragway start`: where each shard keeps its index (`<dir>/shard-<n>`).'),
  shards: string(
    'RAGWAY_SHARDS',
    '',
    '`ragway gateway`: shard URLs; shards separated by `;`, replicas of one shard by `,`. Or a DNS name re-resolved while running: `dns+srv://_shard._tcp.NAME?shards=N` (SRV) or `dns://NAME:PORT?shards=N` (A/AAAA); see Discovery in docs/architecture.md.',
  ),
  shardDnsRefreshMs: integer(
    'RAGWAY_SHARD_DNS_REFRESH_MS',
    5_000,
    'With a DNS shard spec: how often the name is resolved again (replicas that appear or go are followed within about this long).',
    100,
    3_600_000,
  ),
  shardDnsTimeoutMs: integer('RAGWAY_SHARD_DNS_TIMEOUT_MS', 2_000, 'With a DNS shard spec: limit on one DNS query (tried twice) and on asking a new address which shard it holds.', 10, 60_000),
  dnsServers: string('RAGWAY_DNS_SERVERS', '', 'DNS servers for shard discovery (`ip` or `ip:port`, comma-separated); empty uses the system resolvers.'),
  shardCount: integer('RAGWAY_SHARD_COUNT', 2, '`ragway start`: shard processes to spawn.', 1, 64),
  shardM: integer('RAGWAY_SHARD_M', 16, 'hnswlib M (graph degree) for new shard indexes.', 2, 128),
  shardEfConstruction: integer('RAGWAY_SHARD_EF_CONSTRUCTION', 200, 'hnswlib efConstruction for new shard indexes.', 1, 10_000),
  shardEfSearch: integer('RAGWAY_SHARD_EF_SEARCH', 64, 'hnswlib ef at query time (raised to k when k is larger).', 1, 10_000),
  shardTimeoutMs: integer('RAGWAY_SHARD_TIMEOUT_MS', 5_000, 'Longest the gateway waits for one shard call.', 1, 600_000),
  shardConnections: integer('RAGWAY_SHARD_CONNECTIONS', 16, 'Keep-alive connections per shard (undici Pool size).', 1, 1_024),
  deadlineMs: integer(
    'RAGWAY_DEADLINE_MS',
    5_000,
    'Time budget of a search (and of the retrieval part of an answer); per request: `deadline_ms` or header `x-ragway-deadline-ms`.',
    1,
    600_000,
  ),
  hedge: boolean('RAGWAY_HEDGE', true, 'Send a slow shard call to a second replica and take the first answer.'),
  hedgePercentile: number('RAGWAY_HEDGE_PERCENTILE', 0.95, "Hedge a shard call once it is slower than this percentile of that shard's recent calls.", 0.5, 0.999),
  hedgeMaxExtraFraction: number('RAGWAY_HEDGE_MAX_EXTRA', 0.1, 'Most extra shard calls hedging may add, as a fraction of all shard calls.', 0, 1),
  hedgeMinDelayMs: integer('RAGWAY_HEDGE_MIN_DELAY_MS', 2, 'Never hedge sooner than this.', 0, 60_000),
  replicaEjectFailures: integer('RAGWAY_REPLICA_EJECT_FAILURES', 3, 'Consecutive transient failures that take a replica out of rotation.', 1, 1_000),
  replicaProbeBackoffMs: integer('RAGWAY_REPLICA_PROBE_BACKOFF_MS', 500, 'First wait before probing an ejected replica; doubles per failed probe up to `RAGWAY_REPLICA_PROBE_MAX_BACKOFF_MS`.', 10, 600_000),
  replicaProbeMaxBackoffMs: integer(
    'RAGWAY_REPLICA_PROBE_MAX_BACKOFF_MS',
    1_000,
    'Cap on the probe backoff: a restarted replica is read from again within about this long after it is ready.',
    10,
    600_000,
  ),
  shutdownGraceMs: integer(
    'RAGWAY_SHUTDOWN_GRACE_MS',
    10_000,
    'On SIGTERM: how long in-flight requests and streams may finish before connections are closed.',
    0,
    600_000,
  ),
  replicas: integer('RAGWAY_REPLICAS', 1, '`ragway start`: replicas per shard (each a process; they catch up from each other).', 1, 16),
  antiEntropyIntervalMs: integer(
    'RAGWAY_ANTI_ENTROPY_INTERVAL_MS',
    10_000,
    '`ragway start` with replicas: how often each replica compares digests with a peer and pulls what it misses (`ragway shard --anti-entropy-interval-ms`); 0 turns it off.',
    0,
    86_400_000,
  ),
  embedModel: string(
    'RAGWAY_EMBED_MODEL',
    '',
    'Embedding model: a local Hugging Face ONNX model folder, or a hub id such as `Xenova/bge-small-en-v1.5` (from the local HF cache unless downloads are allowed). Empty means the bundled `glove-sif-100d`, built at install.',
  ),
  embedAllowDownload: boolean(
    'RAGWAY_EMBED_ALLOW_DOWNLOAD',
    false,
    'Let a hub id in `RAGWAY_EMBED_MODEL` be downloaded at start; off by default so nothing is fetched at run time.',
  ),
  embedDevice: oneOf(
    'RAGWAY_EMBED_DEVICE',
    ['cpu', 'cuda'],
    'cpu',
    'Where the local model runs: `cuda` uses onnxruntime-node\'s CUDA execution provider (its CUDA binaries must be installed, see the README) and fails at start otherwise — never a silent fall-back to CPU.',
  ),
  embedUrl: string(
    'RAGWAY_EMBED_URL',
    '',
    'A remote embedding server instead of the local model: OpenAI-compatible `/v1` base URLs (vLLM, Ollama, OpenAI, another ragway) or TEI roots, comma-separated for failover. `RAGWAY_EMBED_MODEL` is then the model name sent.',
  ),
  embedApiFormat: oneOf('RAGWAY_EMBED_API_FORMAT', ['openai', 'tei'], 'openai', 'The remote embedding API: `openai` (`POST /embeddings`) or `tei` (`POST /embed`).'),
  embedApiKey: secret('RAGWAY_EMBED_API_KEY', 'Bearer key for `RAGWAY_EMBED_URL` (never logged).'),
  embedRemoteMaxBatchInputs: integer(
    'RAGWAY_EMBED_REMOTE_MAX_BATCH_INPUTS',
    32,
    'Most inputs per request to the remote embedding server (TEI defaults to 32); larger batches are split, never truncated.',
    1,
    4_096,
  ),
  embedRemoteConcurrency: integer('RAGWAY_EMBED_REMOTE_CONCURRENCY', 4, 'Requests in flight to the remote embedding server at once.', 1, 1_024),
  embedRemoteTimeoutMs: integer('RAGWAY_EMBED_REMOTE_TIMEOUT_MS', 30_000, 'Limit on one remote embedding request.', 1, 600_000),
  embedRemoteMaxAttempts: integer(
    'RAGWAY_EMBED_REMOTE_MAX_ATTEMPTS',
    4,
    'Attempts per request over all endpoints (429/503 back off first; connect errors and 5xx move to the next endpoint).',
    1,
    100,
  ),
  embedThreads: integer('RAGWAY_EMBED_THREADS', 1, 'onnxruntime intra-op threads (1 is fastest on 2 cores).', 1, 256),
  embedMaxBatchInputs: integer('RAGWAY_EMBED_MAX_BATCH_INPUTS', 128, 'Most inputs per embedding model call.', 1, 4_096),
  embedMaxBatchTokens: integer(
    'RAGWAY_EMBED_MAX_BATCH_TOKENS',
    16_384,
    'Most padded tokens (inputs × longest input) per embedding model call.',
    1,
    10_000_000,
  ),
  embedMaxWaitMs: integer(
    'RAGWAY_EMBED_MAX_WAIT_MS',
    0,
    'Longest an input waits for a fuller batch while the model is idle; 0 runs at once (batches still form from what arrives while the model is busy).',
    0,
    10_000,
  ),
  embedMaxQueuedInputs: integer(
    'RAGWAY_EMBED_MAX_QUEUED_INPUTS',
    8_192,
    'Inputs allowed to wait for the model; beyond it requests get 429 at once.',
    1,
    10_000_000,
  ),
  searchDefaultK: integer('RAGWAY_SEARCH_DEFAULT_K', 10, 'Results per search when the request gives no `k`.', 1, 10_000),
  searchMaxK: integer('RAGWAY_SEARCH_MAX_K', 100, 'Largest `k` a request may ask for.', 1, 10_000),
  searchMode: oneOf(
    'RAGWAY_SEARCH_MODE',
    ['vector', 'lexical', 'hybrid'],
    'hybrid',
    'Retrieval when a request gives no `mode`: `vector` (ANN), `lexical` (BM25) or `hybrid` (both, fused).',
  ),
  searchHybridFusion: oneOf(
    'RAGWAY_SEARCH_HYBRID_FUSION',
    ['weighted', 'rrf'],
    'weighted',
    'How hybrid search fuses its two lists when a request gives no `fusion`: `weighted` (alpha × vector + (1 − alpha) × BM25, min-max normalized) or `rrf` (reciprocal rank fusion).',
  ),
  searchHybridAlpha: number(
    'RAGWAY_SEARCH_HYBRID_ALPHA',
    0.1,
    'Vector weight of weighted hybrid fusion when a request gives no `alpha` (0.1 was best on BEIR SciFact train with the embedded model).',
    0,
    1,
  ),
  searchRrfK: integer('RAGWAY_SEARCH_RRF_K', 60, 'Reciprocal rank fusion constant k for hybrid search when a request gives no `rrf_k`.', 0, 100_000),
  searchHybridCandidates: integer(
    'RAGWAY_SEARCH_HYBRID_CANDIDATES',
    100,
    'Candidates each list contributes to hybrid fusion and MMR (at least the `k` asked for).',
    1,
    10_000,
  ),
  maxBodyBytes: integer('RAGWAY_MAX_BODY_BYTES', 10 * 1024 * 1024, 'Largest request body of `/v1/documents` and `/v1/embeddings`; bigger ones get 413.', 1_024, 1 << 30),
  maxQueryBodyBytes: integer(
    'RAGWAY_MAX_QUERY_BODY_BYTES',
    1024 * 1024,
    'Largest request body of `/v1/search`, `/v1/query` and `/v1/chat/completions`; bigger ones get 413.',
    1_024,
    1 << 30,
  ),
  maxJsonDepth: integer('RAGWAY_MAX_JSON_DEPTH', 32, 'Deepest nesting of arrays and objects in a request body (metadata and filters included); deeper ones get 400.', 4, 64),
  maxMetadataBytes: integer('RAGWAY_MAX_METADATA_BYTES', 64 * 1024, "Largest `metadata` of one document, as JSON (it is copied into every chunk); bigger ones get 400.", 16, 16 * 1024 * 1024),
  maxFilterBytes: integer('RAGWAY_MAX_FILTER_BYTES', 64 * 1024, 'Largest metadata `filter` of one request, as JSON; bigger ones get 400.', 16, 16 * 1024 * 1024),
  headersTimeoutMs: integer(
    'RAGWAY_HEADERS_TIMEOUT_MS',
    10_000,
    'Longest a client may take to send its request headers (a new connection that sends nothing is closed after it too); then 408.',
    100,
    600_000,
  ),
  requestTimeoutMs: integer(
    'RAGWAY_REQUEST_TIMEOUT_MS',
    60_000,
    'Longest a client may take to send a whole request, body included (responses and streams are not limited by it); then 408.',
    100,
    3_600_000,
  ),
  keepAliveTimeoutMs: integer(
    'RAGWAY_KEEP_ALIVE_TIMEOUT_MS',
    5_000,
    "How long an idle keep-alive connection is kept; behind a load balancer, set it above the balancer's idle timeout.",
    100,
    3_600_000,
  ),
  maxConnections: integer('RAGWAY_MAX_CONNECTIONS', 2_048, 'Most client connections open at once; more are closed as they arrive.', 1, 1_000_000),
  corsOrigins: string(
    'RAGWAY_CORS_ORIGINS',
    '',
    'Origins (`https://app.example.com`, comma-separated, or `*`) whose browser pages may call the API; empty: none, and requests carrying another `Origin` get 403.',
  ),
  allowedHosts: string(
    'RAGWAY_ALLOWED_HOSTS',
    '',
    'Host names (comma-separated) accepted in the `Host` header besides localhost, 127.0.0.1 and [::1] while the gateway listens on loopback (DNS-rebinding defence).',
  ),
  maxDocumentsPerRequest: integer('RAGWAY_MAX_DOCUMENTS_PER_REQUEST', 1_000, 'Most documents in one `POST /v1/documents`.', 1, 100_000),
  chunkSizeTokens: integer('RAGWAY_CHUNK_SIZE_TOKENS', 160, 'Target chunk size at ingestion, in model tokens.', 16, 8_192),
  chunkOverlapTokens: integer('RAGWAY_CHUNK_OVERLAP_TOKENS', 32, 'Tokens of the previous chunk repeated at the start of the next.', 0, 4_096),
  rerankUrl: string(
    'RAGWAY_RERANK_URL',
    '',
    'Remote reranker base URL (TEI, Infinity, vLLM, Cohere, Jina); `/rerank` or `/v1/rerank` is appended by `RAGWAY_RERANK_FORMAT` unless the URL ends with `/rerank`. Empty: no remote reranker.',
  ),
  rerankFormat: oneOf(
    'RAGWAY_RERANK_FORMAT',
    ['tei', 'cohere'],
    'tei',
    'API shape of `RAGWAY_RERANK_URL`: `tei` (`{query, texts}` → `[{index, score}]`) or `cohere` (the Cohere/Jina `/v1/rerank` form, `{model, query, documents, top_n}` → `{results}`).',
  ),
  rerankModel: string('RAGWAY_RERANK_MODEL', '', 'Reranker model name: sent in the `cohere` form, reported in responses; requests may name another only in the `cohere` form.'),
  rerankApiKey: secret('RAGWAY_RERANK_API_KEY', 'Bearer key for `RAGWAY_RERANK_URL` (never logged).'),
  rerankTimeoutMs: integer(
    'RAGWAY_RERANK_TIMEOUT_MS',
    2_000,
    'Longest wait for the reranker; past it results come back in retrieval order, labelled `rerank.applied: false`.',
    1,
    600_000,
  ),
  rerankModelDir: string(
    'RAGWAY_RERANK_MODEL_DIR',
    '',
    'Local cross-encoder reranker: a Hugging Face model folder with a sequence-classification ONNX export (loaded from disk, never downloaded). Empty: none.',
  ),
  rerankTopN: integer('RAGWAY_RERANK_TOP_N', 20, 'Candidates passed to the reranker when a request gives no `rerank.top_n`.', 1, 1_000),
  llmUrl: string(
    'RAGWAY_LLM_URL',
    '',
    'OpenAI-compatible LLM upstream base URL (vLLM, TGI, llama.cpp, Ollama `/v1`, OpenAI); several, comma-separated, are tried in order before the first token.',
  ),
  llmModel: string('RAGWAY_LLM_MODEL', '', 'Model name sent to `RAGWAY_LLM_URL`; also the id clients use for it.'),
  llmApiKey: secret('RAGWAY_LLM_API_KEY', 'Bearer key for `RAGWAY_LLM_URL` (never logged).'),
  llmUpstreamsFile: string(
    'RAGWAY_LLM_UPSTREAMS_FILE',
    '',
    'JSON file listing more models: `[{"id", "model"?, "urls": [...], "api_key_env"?}]` (keys come from the named variables).',
  ),
  llmConnectTimeoutMs: integer('RAGWAY_LLM_CONNECT_TIMEOUT_MS', 5_000, 'Longest wait for a TCP connection to an upstream.', 1, 600_000),
  llmFirstTokenTimeoutMs: integer(
    'RAGWAY_LLM_FIRST_TOKEN_TIMEOUT_MS',
    60_000,
    'Longest wait from request to first token; past it the next upstream is tried.',
    1,
    3_600_000,
  ),
  llmConnections: integer(
    'RAGWAY_LLM_CONNECTIONS',
    1_024,
    'Most connections to one upstream; each streaming answer holds one for its whole length.',
    1,
    65_536,
  ),
  llmIdleTimeoutMs: integer('RAGWAY_LLM_IDLE_TIMEOUT_MS', 30_000, 'Longest gap between two chunks of an upstream stream.', 1, 3_600_000),
  defaultModel: string('RAGWAY_DEFAULT_MODEL', '', 'Model for `/v1/query` when the request names none; empty means the first LLM upstream, else `ragway-extractive`.'),
  answerK: integer('RAGWAY_ANSWER_K', 5, 'Sources retrieved for an answer when the request gives no `k`.', 1, 100),
  contextBudgetTokens: integer(
    'RAGWAY_CONTEXT_BUDGET_TOKENS',
    3_000,
    'Tokens of sources put in a prompt; whole chunks beyond it are left out (and counted).',
    1,
    1_000_000,
  ),
  systemTemplateFile: string(
    'RAGWAY_SYSTEM_TEMPLATE_FILE',
    '',
    'File with the system prompt template (`{sources}` is replaced by the numbered sources); empty uses the built-in one.',
  ),
  ssePingMs: integer('RAGWAY_SSE_PING_MS', 10_000, 'Idle time after which an event stream gets a `: ping` comment; 0 disables.', 0, 600_000),
  sseStallTimeoutMs: integer(
    'RAGWAY_SSE_STALL_TIMEOUT_MS',
    30_000,
    'Longest an event stream waits for a client that stopped reading; then the stream is closed and its generation stopped.',
    100,
    3_600_000,
  ),
  cacheEmbeddingsBytes: integer('RAGWAY_CACHE_EMBEDDINGS_BYTES', 32 * 1024 * 1024, 'Memory for cached query embeddings; 0 turns the layer off.', 0, 1 << 40),
  cacheEmbeddingsTtlMs: integer('RAGWAY_CACHE_EMBEDDINGS_TTL_MS', 3_600_000, 'How long a query embedding stays cached.', 1, 31_536_000_000),
  cacheRetrievalBytes: integer('RAGWAY_CACHE_RETRIEVAL_BYTES', 64 * 1024 * 1024, 'Memory for cached search results; 0 turns the layer off.', 0, 1 << 40),
  cacheRetrievalTtlMs: integer(
    'RAGWAY_CACHE_RETRIEVAL_TTL_MS',
    600_000,
    'Longest a search result stays cached (it is dropped sooner when a shard it came from is written).',
    1,
    31_536_000_000,
  ),
  cacheAnswersBytes: integer('RAGWAY_CACHE_ANSWERS_BYTES', 64 * 1024 * 1024, 'Memory for cached answers; 0 turns the layer off.', 0, 1 << 40),
  cacheAnswersTtlMs: integer(
    'RAGWAY_CACHE_ANSWERS_TTL_MS',
    600_000,
    'Longest an answer stays cached (it is dropped sooner when a shard its sources came from is written).',
    1,
    31_536_000_000,
  ),
  cacheRerankBytes: integer('RAGWAY_CACHE_RERANK_BYTES', 16 * 1024 * 1024, 'Memory for cached reranker scores; 0 turns the layer off.', 0, 1 << 40),
  cacheRerankTtlMs: integer('RAGWAY_CACHE_RERANK_TTL_MS', 600_000, 'How long reranker scores stay cached (keyed by the texts scored, so no write makes them stale).', 1, 31_536_000_000),
  cacheMaxTtlMs: integer(
    'RAGWAY_CACHE_MAX_TTL_MS',
    3_600_000,
    'Longest time to live a client may ask for (`cache.ttl_ms`, `x-ragway-cache-ttl-ms`); longer requests are capped to it.',
    1,
    31_536_000_000,
  ),
  cacheAnswers: oneOf(
    'RAGWAY_CACHE_ANSWERS',
    ['deterministic', 'always', 'off'],
    'deterministic',
    'Which answers are cached and shared: `deterministic` (ragway-extractive, or temperature 0), `always`, or `off`.',
  ),
  cacheEpochPollMs: integer(
    'RAGWAY_CACHE_EPOCH_POLL_MS',
    500,
    'How often the gateway asks shards for their write epochs, bounding staleness after writes made through another gateway.',
    10,
    3_600_000,
  ),
  semanticCache: boolean('RAGWAY_SEMANTIC_CACHE', false, 'Serve an answer cached for a near-identical earlier question (similarity threshold plus a meaning guard).'),
  semanticCacheThreshold: number(
    'RAGWAY_SEMANTIC_CACHE_THRESHOLD',
    0.92,
    'Cosine similarity an earlier question needs to share its answer (0.92: no false hits on the labelled set for glove-sif-100d; re-measure for another model).',
    0,
    1,
  ),
  semanticCacheEntries: integer('RAGWAY_SEMANTIC_CACHE_ENTRIES', 10_000, 'Earlier questions remembered by the semantic cache.', 1, 10_000_000),
  auth: oneOf(
    'RAGWAY_AUTH',
    ['auto', 'on', 'off'],
    'auto',
    'API keys: `auto` requires them once a keys file exists and refuses to listen beyond loopback without one; `on` requires them always; `off` serves everyone (say so deliberately).',
  ),
  keysFile: string('RAGWAY_KEYS_FILE', '', 'The API keys file (`ragway keys`); empty means `<RAGWAY_DATA_DIR>/keys.json` for `ragway start` and `ragway gateway`.'),
  keysPollMs: integer('RAGWAY_KEYS_POLL_MS', 250, 'How often the keys file is checked for changes (a revoked key stops working within this).', 10, 60_000),
  metricsRequireAdmin: boolean('RAGWAY_METRICS_REQUIRE_ADMIN', false, 'With API keys on, `/metrics` needs a key with the `admin` scope (off: open, for scrapers).'),
  clusterToken: secret('RAGWAY_CLUSTER_TOKEN', 'The cluster credential shards require from the gateway (never logged); `ragway start` makes one per data dir.'),
  clusterTokenFile: string('RAGWAY_CLUSTER_TOKEN_FILE', '', 'File holding the cluster credential (used when `RAGWAY_CLUSTER_TOKEN` is empty).'),
  redisUrl: secret('RAGWAY_REDIS_URL', 'Redis for rate limits shared by every gateway replica (`redis://host:6379`); empty keeps them in memory.'),
  admission: boolean('RAGWAY_ADMISSION', true, 'Admission control: per route class concurrency limits with a short queue; beyond it 503 with Retry-After.'),
  admitSearchConcurrency: integer('RAGWAY_ADMIT_SEARCH_CONCURRENCY', 256, 'Searches (`/v1/search`, `/v1/embeddings`, document reads) running at once; with `RAGWAY_ADMIT_ADAPTIVE`, the ceiling of the adaptive limit.', 1, 1_000_000),
  admitAdaptive: boolean(
    'RAGWAY_ADMIT_ADAPTIVE',
    true,
    'The search limit adapts to latency (AIMD): it shrinks while admitted searches (cache hits aside) take more than `RAGWAY_ADMIT_LATENCY_TOLERANCE` times the fastest seen lately, and grows back while they do not.',
  ),
  admitSearchMinConcurrency: integer('RAGWAY_ADMIT_SEARCH_MIN_CONCURRENCY', 4, 'Floor of the adaptive search limit (where it starts).', 1, 1_000_000),
  admitLatencyTolerance: number('RAGWAY_ADMIT_LATENCY_TOLERANCE', 2, 'How many times the fastest recent search latency the adaptive limit tolerates before it shrinks.', 1.05, 100),
  admitGenerationConcurrency: integer('RAGWAY_ADMIT_GENERATION_CONCURRENCY', 256, 'Answers (`/v1/query`, `/v1/chat/completions`, streams included) running at once.', 1, 1_000_000),
  admitIngestConcurrency: integer('RAGWAY_ADMIT_INGEST_CONCURRENCY', 16, 'Document writes and deletes running at once.', 1, 1_000_000),
  admitQueueLength: integer('RAGWAY_ADMIT_QUEUE_LENGTH', 256, 'Requests per route class allowed to wait for a slot; beyond it they get 503 at once.', 0, 1_000_000),
  admitQueueTimeoutMs: integer('RAGWAY_ADMIT_QUEUE_TIMEOUT_MS', 1_000, 'Longest a request waits for a slot before it gets 503.', 1, 600_000),
  tracing: oneOf('RAGWAY_TRACING', ['off', 'otlp'], 'off', 'OpenTelemetry tracing: `otlp` exports spans of the gateway and the shards over OTLP/HTTP (JSON); `ragway start` passes it to its shards.'),
  otlpEndpoint: string('OTEL_EXPORTER_OTLP_ENDPOINT', '', 'With tracing on: the collector\'s OTLP/HTTP base URL; spans go to `<url>/v1/traces` (empty: `http://localhost:4318`).'),
  otlpTracesEndpoint: string('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', '', 'With tracing on: the full URL spans are POSTed to (wins over `OTEL_EXPORTER_OTLP_ENDPOINT`).'),
  serviceName: string('OTEL_SERVICE_NAME', '', '`service.name` of the spans (empty: `ragway-gateway`, `ragway-shard`); `ragway start` names its shards `<name>-shard`.'),
  resourceAttributes: string('OTEL_RESOURCE_ATTRIBUTES', '', 'More resource attributes of the spans, `key=value` pairs separated by `,`.'),
  traceSampleRatio: number('RAGWAY_TRACING_SAMPLE_RATIO', 1, 'Fraction of new traces recorded; a caller\'s `traceparent` sampled flag is always followed.', 0, 1),
  logLevel: oneOf('RAGWAY_LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info', 'Log level (JSON logs on stdout).'),
} as const;

type Settings = typeof SETTINGS;
export type Config = { -readonly [K in keyof Settings]: Settings[K] extends SettingSpec<infer V> ? V : never };

/**
 * Reads settings from `env` (process.env by default); `overrides` (from CLI flags) win over
 * the environment, and `defaults` replace built-in defaults for one command (e.g. a quieter
 * log for the interactive `ragway start`). Empty environment values count as unset.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<Config> = {},
  defaults: Partial<Config> = {},
): Config {
  const config: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SETTINGS) as [keyof Config, SettingSpec<unknown>][]) {
    const raw = env[spec.env];
    config[key] = raw === undefined || raw === '' ? (defaults[key] ?? spec.defaultValue) : parseValue(spec, raw);
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const spec = (SETTINGS as Record<string, SettingSpec<unknown>>)[key];
    if (spec === undefined) throw new ConfigError(`unknown setting ${key}`);
    config[key] = typeof value === 'string' && spec.kind !== 'string' ? parseValue(spec, value) : value;
  }
  const result = config as Config;
  if (result.searchDefaultK > result.searchMaxK) {
    throw new ConfigError(`RAGWAY_SEARCH_DEFAULT_K (${result.searchDefaultK}) exceeds RAGWAY_SEARCH_MAX_K (${result.searchMaxK})`);
  }
  if (result.headersTimeoutMs > result.requestTimeoutMs) {
    throw new ConfigError(`RAGWAY_HEADERS_TIMEOUT_MS (${result.headersTimeoutMs}) exceeds RAGWAY_REQUEST_TIMEOUT_MS (${result.requestTimeoutMs})`);
  }
  if (result.rerankUrl !== '' && !URL.canParse(result.rerankUrl)) throw new ConfigError(`RAGWAY_RERANK_URL is not a URL: "${result.rerankUrl}"`);
  if (result.rerankUrl !== '' && result.rerankModelDir !== '') {
    throw new ConfigError('set RAGWAY_RERANK_URL or RAGWAY_RERANK_MODEL_DIR, not both: there is one reranker');
  }
  if (result.chunkOverlapTokens >= result.chunkSizeTokens) {
    throw new ConfigError('RAGWAY_CHUNK_OVERLAP_TOKENS must be smaller than RAGWAY_CHUNK_SIZE_TOKENS');
  }
  return result;
}


/** Settings for logging: secrets replaced so configs can be printed at start. */
export function redactedConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SETTINGS) as [keyof Config, SettingSpec<unknown>][]) {
    out[key] = spec.secret === true && config[key] !== '' ? '[redacted]' : config[key];
  }
  return out;
}

export function renderConfigTable(): string {
  const rows = Object.values(SETTINGS).map((spec: SettingSpec<unknown>) => {
    const shown = spec.defaultValue === '' ? '(empty)' : `\`${String(spec.defaultValue)}\``;
    return `| \`${spec.env}\` | ${shown} | ${spec.doc} |`;
  });
  return ['| Variable | Default | Meaning |', '|---|---|---|', ...rows].join('\n');
}
