// `ragway shard`: one shard replica process. Prints "ragway shard listening on <url>" on
// stdout once it serves (ragway start and the tests read the port from that line).
import { onShutdownSignal } from '../gateway/server.js';
import { startShardServer } from '../shards/server.js';
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
    log: { type: 'boolean' },
  });
  if (values.data === undefined) throw new UsageError('ragway shard needs --data DIR');
  const space = (values.space ?? 'cosine') as SpaceName;
  if (!SPACES.includes(space)) throw new UsageError(`--space must be one of ${SPACES.join(', ')}, got "${values.space}"`);

  const m = integerFlag('m', values.m, 2, 128);
  const efConstruction = integerFlag('ef-construction', values['ef-construction'], 1, 10_000);
  const efSearch = integerFlag('ef', values.ef, 1, 10_000);
  const server = await startShardServer({
    host: values.host ?? '127.0.0.1',
    port: integerFlag('port', values.port, 0, 65_535) ?? 7_001,
    dataDir: values.data,
    dim: integerFlag('dim', values.dim, 1, 65_536) ?? DEFAULT_DIM,
    space,
    ...(m !== undefined ? { m } : {}),
    ...(efConstruction !== undefined ? { efConstruction } : {}),
    ...(efSearch !== undefined ? { efSearch } : {}),
    logger: values.log === true,
  });
  process.stdout.write(`ragway shard listening on ${server.url}\n`);
  onShutdownSignal(async () => {
    await server.close();
  });
}
