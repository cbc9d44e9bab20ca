// `ragway shard`: one shard replica process. Prints "ragway shard listening on <url>" on
// stdout once it serves (ragway start and the tests read the port from that line); with
// --peers it then catches up from the other replicas, answering /readyz 503 until it has.
// SIGTERM/SIGINT: stop accepting, let in-flight requests finish (--grace-ms), drain the
// write-ahead log, snapshot, exit.
import { onShutdownSignal } from '../core/shutdown-signal.js';
import { parseUrlList, UrlListError } from '../core/url-list.js';
import { startShardServer } from '../shards/server.js';
import { isLoopbackHost } from '../core/http-guards.js';
import { ConfigError, loadClusterToken, loadConfig, tracingSettings } from '../gateway/config.js';
import { Tracing } from '../core/tracing.js';
import { integerFlag, parseFlags, UsageError } from './args.js';

const SPACES = ['cosine', 'ip', 'l2'] as const;
type SpaceName = (typeof SPACES)[number];
/** The bundled glove-sif-100d model's dimension. */
const DEFAULT_DIM = 100;

export async function runShard(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    data: { type: 'string' },
    dim: { type: 'string' },
    space: { type: 'string' },
    m: { type: 'string' },
    'ef-construction': { type: 'string' },
    ef: { type: 'string' },
    peers: { type: 'string' },
    'grace-ms': { type: 'string' },
    'catch-up-timeout-ms': { type: 'string' },
    'anti-entropy-interval-ms': { type: 'string' },
    'snapshot-interval-ms': { type: 'string' },
    'snapshot-every': { type: 'string' },
    'wal-retain-records': { type: 'string' },
    log: { type: 'boolean' },
    'cluster-token-file': { type: 'string' },
    'shard-index': { type: 'string' },
  });
  if (values.data === undefined) throw new UsageError('ragway shard needs --data DIR');
  const space = (values.space ?? 'cosine') as SpaceName;
  if (!SPACES.includes(space)) throw new UsageError(`--space must be one of ${SPACES.join(', ')}, got "${values.space}"`);

  const m = integerFlag('m', values.m, 2, 128);
  const efConstruction = integerFlag('ef-construction', values['ef-construction'], 1, 10_000);
  const efSearch = integerFlag('ef', values.ef, 1, 10_000);
  const graceMs = integerFlag('grace-ms', values['grace-ms'], 0, 3_600_000);
  const catchUpTimeoutMs = integerFlag('catch-up-timeout-ms', values['catch-up-timeout-ms'], 0, 3_600_000);
  const antiEntropyIntervalMs = integerFlag('anti-entropy-interval-ms', values['anti-entropy-interval-ms'], 0, 86_400_000);
  const snapshotIntervalMs = integerFlag('snapshot-interval-ms', values['snapshot-interval-ms'], 0, 86_400_000);
  const snapshotEveryWrites = integerFlag('snapshot-every', values['snapshot-every'], 0);
  const retainRecords = integerFlag('wal-retain-records', values['wal-retain-records'], 0);
  const peers = parsePeers(values.peers);
  // Reported in /v1/stats: a gateway that finds replicas through DNS asks each address which shard it holds.
  const shardIndex = integerFlag('shard-index', values['shard-index'], 0, 1_023);
  // The CLI is where the environment is read (besides gateway/config.ts): fault injection
  // exists for tests and benchmarks and must never be on by accident.
  const faults = process.env['RAGWAY_FAULTS'] === '1';
  const host = values.host ?? '127.0.0.1';
  const settings = loadConfig(undefined, values['cluster-token-file'] !== undefined ? { clusterTokenFile: values['cluster-token-file'] } : {});
  const clusterToken = loadClusterToken(settings);
  if (clusterToken === undefined) {
    // The same safe default as the gateway's: open only to this machine, unless switched off on purpose.
    if (!isLoopbackHost(host) && settings.auth !== 'off') {
      throw new ConfigError(
        `refusing to listen on ${host} without a cluster credential: pass --cluster-token-file FILE (or RAGWAY_CLUSTER_TOKEN), ` +
          'or set RAGWAY_AUTH=off to accept calls from anyone who can reach the port',
      );
    }
    process.stderr.write(`ragway shard: WARNING: no cluster credential; any process that can reach ${host} may read and write this shard\n`);
  }
  // RAGWAY_TRACING and the OTEL_* variables, as the gateway reads them (`ragway start` passes its own on).
  const tracing = tracingSettings(settings, 'shard');
  const server = await startShardServer({
    host,
    tracing: tracing === undefined ? undefined : new Tracing(tracing),
    clusterToken,
    port: integerFlag('port', values.port, 0, 65_535) ?? 7_001,
    dataDir: values.data,
    dim: integerFlag('dim', values.dim, 1, 65_536) ?? DEFAULT_DIM,
    space,
    ...(m !== undefined ? { m } : {}),
    ...(efConstruction !== undefined ? { efConstruction } : {}),
    ...(efSearch !== undefined ? { efSearch } : {}),
    ...(graceMs !== undefined ? { graceMs } : {}),
    ...(catchUpTimeoutMs !== undefined ? { catchUpTimeoutMs } : {}),
    ...(antiEntropyIntervalMs !== undefined ? { antiEntropyIntervalMs } : {}),
    ...(snapshotIntervalMs !== undefined ? { snapshotIntervalMs } : {}),
    ...(snapshotEveryWrites !== undefined ? { snapshotEveryWrites } : {}),
    ...(retainRecords !== undefined ? { wal: { retainRecords } } : {}),
    peers,
    ...(shardIndex !== undefined ? { shardIndex } : {}),
    faults,
    logger: values.log === true,
    log: (line) => process.stderr.write(`ragway shard: ${line}\n`),
  });
  process.stdout.write(`ragway shard listening on ${server.url}\n`);
  if (faults) process.stderr.write('ragway shard: fault injection is ON (RAGWAY_FAULTS=1): POST /v1/faults\n');
  onShutdownSignal(() => server.close(), 'ragway shard');
}

function parsePeers(value: string | undefined): string[] {
  try {
    return parseUrlList(value ?? '', '--peers', { allowEmpty: true });
  } catch (err) {
    throw err instanceof UrlListError ? new UsageError(err.message) : err;
  }
}
