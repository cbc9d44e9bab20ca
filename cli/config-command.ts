import { loadConfig, redactedConfig, renderConfigTable } from '../gateway/config.js';
import { parseFlags } from './args.js';

export async function runConfig(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { markdown: { type: 'boolean' } });
  if (values.markdown === true) {
    process.stdout.write(`${renderConfigTable()}\n`);
    return;
  }
  process.stdout.write(`${JSON.stringify(redactedConfig(loadConfig()), null, 2)}\n`);
}
