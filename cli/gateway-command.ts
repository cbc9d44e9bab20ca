// `ragway gateway`: the gateway alone, in front of shards that run elsewhere.
import { join } from 'node:path';
import { ConfigError, loadConfig, parseShardSource } from '../gateway/config.js';
import { closeGracefully, onShutdownSignal, startGateway } from '../gateway/server.js';
import { integerFlag, parseFlags } from './args.js';

export async function runGateway(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    shards: { type: 'string' },
  });
  const config = loadConfig(undefined, {
    port: integerFlag('port', values.port, 0, 65_535),
    host: values.host,
    shards: values.shards,
  });
  if (config.keysFile === '') config.keysFile = join(config.dataDir, 'keys.json');
  // Checked before the model loads, so a typo fails in milliseconds, not after start-up.
  const source = parseShardSource(config.shards);
  if (source.kind === 'static' && source.shards.length === 0) {
    throw new ConfigError('no shards configured: pass --shards SPEC or set RAGWAY_SHARDS');
  }
  const { app, url } = await startGateway(config);
  process.stdout.write(`ragway gateway listening on ${url}\n`);
  onShutdownSignal(async () => {
    await closeGracefully(app, config.shutdownGraceMs);
  });
}
