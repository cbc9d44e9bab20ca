// Settings that point at more than a value: the model folder, the LLM upstreams file, the shard
// spec and the cluster credential file. Part of config.ts (the only reader of the environment:
// `loadUpstreams` reads the variables an upstreams file names).
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { defaultModelDir } from '../core/package-paths.js';
import { parseUrlList, UrlListError } from '../core/url-list.js';
import type { TracingSettings } from '../core/tracing.js';
import type { DnsShardSource } from '../retriever/discovery/dns-endpoints.js';
import type { Config } from './config.js';
import { ConfigError } from './config-specs.js';

const HUB_ID = /^[\w.-]+\/[\w.-]+$/;

/**
 * The model to load: the bundled model's folder, a local folder (relative paths resolved
 * against the working directory), or a hub id ("org/name") left as it is.
 */
export function resolveModelDir(config: Config): string {
  if (config.embedModel === '') return defaultModelDir();
  const local = resolve(config.embedModel);
  if (existsSync(local)) return local;
  return HUB_ID.test(config.embedModel) ? config.embedModel : local;
}

export interface UpstreamSpec {
  /** The model id clients use. */
  id: string;
  /** The model name sent upstream. */
  model: string;
  /** Base URLs, tried in order before the first token. */
  urls: string[];
  apiKey?: string;
}

/**
 * The LLM upstreams: RAGWAY_LLM_URL/MODEL/API_KEY, then the models of
 * RAGWAY_LLM_UPSTREAMS_FILE. Keys named by `api_key_env` are read from `env` here, so this
 * file stays the only reader of the environment.
 */
export function loadUpstreams(config: Config, env: NodeJS.ProcessEnv = process.env): UpstreamSpec[] {
  const upstreams: UpstreamSpec[] = [];
  if (config.llmUrl !== '') {
    if (config.llmModel === '') throw new ConfigError('RAGWAY_LLM_URL is set but RAGWAY_LLM_MODEL is empty: name the upstream model');
    upstreams.push({
      id: config.llmModel,
      model: config.llmModel,
      urls: splitUrls(config.llmUrl, 'RAGWAY_LLM_URL'),
      ...(config.llmApiKey !== '' ? { apiKey: config.llmApiKey } : {}),
    });
  }
  if (config.llmUpstreamsFile !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(config.llmUpstreamsFile, 'utf8'));
    } catch (err) {
      throw new ConfigError(`RAGWAY_LLM_UPSTREAMS_FILE ${config.llmUpstreamsFile}: ${(err as Error).message}`);
    }
    if (!Array.isArray(parsed)) throw new ConfigError('RAGWAY_LLM_UPSTREAMS_FILE must hold a JSON array');
    parsed.forEach((entry: unknown, index) => {
      const where = `RAGWAY_LLM_UPSTREAMS_FILE[${index}]`;
      const { id, model, urls, api_key_env: keyEnv } = (entry ?? {}) as Record<string, unknown>;
      if (typeof id !== 'string' || id === '') throw new ConfigError(`${where}.id must be a non-empty string`);
      if (model !== undefined && typeof model !== 'string') throw new ConfigError(`${where}.model must be a string`);
      if (!Array.isArray(urls) || urls.length === 0 || !urls.every((url) => typeof url === 'string')) {
        throw new ConfigError(`${where}.urls must be a non-empty array of URLs`);
      }
      let apiKey: string | undefined;
      if (keyEnv !== undefined) {
        if (typeof keyEnv !== 'string') throw new ConfigError(`${where}.api_key_env must name an environment variable`);
        apiKey = env[keyEnv];
        if (apiKey === undefined || apiKey === '') throw new ConfigError(`${where}.api_key_env names ${keyEnv}, which is not set`);
      }
      upstreams.push({ id, model: model ?? id, urls: splitUrls((urls as string[]).join(','), `${where}.urls`), ...(apiKey ? { apiKey } : {}) });
    });
  }
  const ids = new Set<string>();
  for (const upstream of upstreams) {
    if (ids.has(upstream.id)) throw new ConfigError(`LLM model id "${upstream.id}" is configured twice`);
    ids.add(upstream.id);
  }
  return upstreams;
}

/** A URL list from the config, its errors reported as ConfigErrors. */
function splitUrls(list: string, name: string): string[] {
  try {
    return parseUrlList(list, name);
  } catch (err) {
    throw err instanceof UrlListError ? new ConfigError(err.message) : err;
  }
}

/** Shard SPEC → shards → replica URLs: shards separated by `;`, replicas of one shard by `,`. */
export function parseShardSpec(spec: string): string[][] {
  if (isDnsSpec(spec)) throw new ConfigError(`${spec.trim()} is a DNS shard spec, not a list of shard URLs`);
  return spec
    .split(';')
    .filter((shard) => shard.trim().replaceAll(',', '') !== '')
    .map((shard) => splitUrls(shard, 'shard URL'));
}

/** The cluster credential: RAGWAY_CLUSTER_TOKEN, else the first line of RAGWAY_CLUSTER_TOKEN_FILE; undefined when neither is set. */
export function loadClusterToken(config: Pick<Config, 'clusterToken' | 'clusterTokenFile'>): string | undefined {
  if (config.clusterToken !== '') return config.clusterToken;
  if (config.clusterTokenFile === '') return undefined;
  let text: string;
  try {
    text = readFileSync(config.clusterTokenFile, 'utf8');
  } catch (err) {
    throw new ConfigError(`RAGWAY_CLUSTER_TOKEN_FILE ${config.clusterTokenFile}: ${(err as Error).message}`);
  }
  const token = text.split('\n')[0]?.trim() ?? '';
  if (token.length < 16) throw new ConfigError(`RAGWAY_CLUSTER_TOKEN_FILE ${config.clusterTokenFile} holds no credential of at least 16 characters`);
  return token;
}

const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4318';

/**
 * The tracing settings of one process (`component` names it when OTEL_SERVICE_NAME does not),
 * or undefined when tracing is off. The resource says which process a span came from:
 * service name, pid, and whatever OTEL_RESOURCE_ATTRIBUTES adds.
 */
export function tracingSettings(
  config: Pick<Config, 'tracing' | 'otlpEndpoint' | 'otlpTracesEndpoint' | 'serviceName' | 'resourceAttributes' | 'traceSampleRatio'>,
  component: 'gateway' | 'shard',
): TracingSettings | undefined {
  if (config.tracing === 'off') return undefined;
  const url = config.otlpTracesEndpoint !== '' ? config.otlpTracesEndpoint : `${(config.otlpEndpoint || DEFAULT_OTLP_ENDPOINT).replace(/\/+$/, '')}/v1/traces`;
  if (!URL.canParse(url)) throw new ConfigError(`the OTLP traces endpoint is not a URL: "${url}"`);
  return {
    serviceName: config.serviceName === '' ? `ragway-${component}` : config.serviceName,
    url,
    sampleRatio: config.traceSampleRatio,
    resourceAttributes: { ...parseResourceAttributes(config.resourceAttributes), 'ragway.component': component, 'process.pid': process.pid },
  };
}

/** OTEL_RESOURCE_ATTRIBUTES: `k=v,k2=v2`, values percent-encoded (the OpenTelemetry spec's format). */
function parseResourceAttributes(text: string): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (const pair of text.split(',')) {
    if (pair.trim() === '') continue;
    const at = pair.indexOf('=');
    if (at <= 0) throw new ConfigError(`OTEL_RESOURCE_ATTRIBUTES: "${pair}" is not key=value`);
    try {
      attributes[pair.slice(0, at).trim()] = decodeURIComponent(pair.slice(at + 1).trim());
    } catch {
      throw new ConfigError(`OTEL_RESOURCE_ATTRIBUTES: the value of "${pair}" is not valid percent-encoding`);
    }
  }
  return attributes;
}

/** Where the shards are: a fixed list of URLs, or a DNS name re-resolved while the gateway runs. */
export type ShardSource = { kind: 'static'; shards: string[][] } | DnsShardSource;

const DNS_SCHEMES: Record<string, DnsShardSource['record']> = { 'dns+srv:': 'srv', 'dns:': 'a' };
/** The shard URLs' scheme is http unless `scheme=https` says otherwise. */
const DNS_PARAMS = new Set(['shards', 'scheme']);
const MAX_SHARDS = 1_024;

function isDnsSpec(spec: string): boolean {
  return /^\s*dns(\+srv)?:\/\//i.test(spec);
}

/**
 * RAGWAY_SHARDS / --shards: a URL list (parseShardSpec), or a DNS name —
 * `dns+srv://_shard._tcp.ragway-shard.ragway.svc.cluster.local?shards=2` (SRV records: host
 * and port of each replica) or `dns://ragway-shard.ragway.svc.cluster.local:7001?shards=2`
 * (A/AAAA records, every address on that port). `shards` is required: the shard count is
 * part of the data layout (document routing), never inferred from what DNS returns.
 */
export function parseShardSource(spec: string): ShardSource {
  if (!isDnsSpec(spec)) return { kind: 'static', shards: parseShardSpec(spec) };
  const text = spec.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`shard spec ${text} is not a valid DNS URL`);
  }
  const record = DNS_SCHEMES[url.protocol.toLowerCase()] as DnsShardSource['record'];
  const name = url.hostname.replace(/\.$/, '');
  if (name === '') throw new ConfigError(`shard spec ${text} names no host to look up`);
  if (url.pathname !== '' && url.pathname !== '/') throw new ConfigError(`shard spec ${text}: a DNS spec has no path`);
  if (url.username !== '' || url.password !== '') throw new ConfigError(`shard spec ${text}: a DNS spec carries no credentials`);
  for (const key of url.searchParams.keys()) {
    if (!DNS_PARAMS.has(key)) throw new ConfigError(`shard spec ${text}: unknown parameter "${key}" (known: ${[...DNS_PARAMS].join(', ')})`);
  }
  const shardsText = url.searchParams.get('shards');
  if (shardsText === null) throw new ConfigError(`shard spec ${text} needs ?shards=N: how many shards the data is split into`);
  const shards = /^\d+$/.test(shardsText) ? Number(shardsText) : NaN;
  if (!(shards >= 1 && shards <= MAX_SHARDS)) throw new ConfigError(`shard spec ${text}: shards must be an integer from 1 to ${MAX_SHARDS}, got "${shardsText}"`);
  const scheme = url.searchParams.get('scheme') ?? 'http';
  if (scheme !== 'http' && scheme !== 'https') throw new ConfigError(`shard spec ${text}: scheme must be http or https, got "${scheme}"`);
  let port = 0;
  if (record === 'srv') {
    if (url.port !== '') throw new ConfigError(`shard spec ${text}: SRV records carry the port; drop :${url.port}`);
  } else {
    if (url.port === '') throw new ConfigError(`shard spec ${text} needs a port (dns://NAME:PORT?shards=N): A/AAAA records carry none`);
    port = Number(url.port);
  }
  return { kind: 'dns', record, name, port, shards, scheme, spec: text };
}

/** RAGWAY_DNS_SERVERS → resolver addresses ("ip" or "ip:port", "[ipv6]:port"). */
export function parseDnsServers(list: string): string[] {
  const servers = list.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  for (const server of servers) {
    const match = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(server) ?? /^([\d.]+)(?::\d{1,5})?$/.exec(server);
    const host = match?.[1] ?? server;
    if (isIP(host) === 0) throw new ConfigError(`RAGWAY_DNS_SERVERS: "${server}" is not an IP address (with an optional :port)`);
  }
  return servers;
}
