// `ragway gateway`: the gateway alone, in front of shards that run elsewhere.
import { loadConfig } from '../gateway/config.js';
import { onShutdownSignal, startGateway } from '../gateway/server.js';
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
  const { app, url } = await startGateway(config);
  process.stdout.write(`ragway gateway listening on ${url}\n`);
  onShutdownSignal(async () => {
    await app.close();
  });
}
