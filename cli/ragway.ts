#!/usr/bin/env node
// One binary, several roles: `ragway start` (everything on one machine), `ragway gateway`,
// `ragway shard`, `ragway ingest`, `ragway eval`, `ragway config`. Each command parses its own flags.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../core/package-paths.js';

const USAGE = `ragway — RAG inference serving gateway

Usage:
  ragway start   [--port 8080] [--host 127.0.0.1] [--shards 2] [--replicas 1] [--data ./data] [--corpus PATH]
  ragway gateway [--port 8080] [--host 127.0.0.1] --shards SPEC
  ragway shard   --port P --data DIR [--cluster-token-file FILE] [--dim D] [--space cosine|ip|l2] [--m 16] [--ef-construction 200] [--ef 64]
                 [--shard-index N] [--peers URL[,URL]] [--grace-ms 10000] [--catch-up-timeout-ms 5000] [--anti-entropy-interval-ms 10000]
                 [--snapshot-interval-ms 60000] [--snapshot-every 20000] [--wal-retain-records 100000]
  ragway ingest  <folder | file.jsonl | file.md> [--url http://127.0.0.1:8080] [--namespace NS] [--batch 32]
  ragway eval    <beir-dataset-dir> [--url http://127.0.0.1:8080] [--split test] [--namespace eval]
                 [--modes vector,lexical,hybrid] [--rerank TOP_N] [--concurrency 8] [--limit N] [--json FILE]
  ragway keys    create --name NAME [--scopes read,write,admin] [--namespaces NS[,prefix-*]] [--rps N] [--burst N]
                 [--tpm N] [--max-streams N] | list [--json] | revoke ID|NAME     (all take [--file PATH])
  ragway config  [--markdown]     the settings (environment variables) and their defaults

SPEC lists shard URLs: shards separated by ';', replicas of one shard by ','. Or a DNS name whose
records are re-resolved: dns+srv://_shard._tcp.NAME?shards=N (SRV) or dns://NAME:PORT?shards=N
(A/AAAA); each address found is asked which shard it holds (ragway shard --shard-index).
Settings come from RAGWAY_* environment variables (see 'ragway config'); flags win.
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return (await import('./start-command.js')).runStart(rest);
    case 'gateway':
      return (await import('./gateway-command.js')).runGateway(rest);
    case 'shard':
      return (await import('./shard-command.js')).runShard(rest);
    case 'ingest':
      return (await import('./ingest-command.js')).runIngest(rest);
    case 'eval':
      return (await import('./eval-command.js')).runEval(rest);
    case 'keys':
      return (await import('./keys-command.js')).runKeys(rest);
    case 'config':
      return (await import('./config-command.js')).runConfig(rest);
    case '--version':
    case '-v': {
      const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
      process.stdout.write(`${pkg.version}\n`);
      return;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  // Configuration and usage mistakes print one line; anything else prints its stack.
  const name = err instanceof Error ? err.name : '';
  const message = err instanceof Error ? err.message : String(err);
  if (name === 'ConfigError' || name === 'UsageError' || name === 'RagwayError' || name === 'DataDirLockedError' || name === 'ShardIdentityError') {
    process.stderr.write(`ragway: ${message}\n`);
  } else {
    process.stderr.write(`ragway: ${err instanceof Error ? (err.stack ?? message) : message}\n`);
  }
  process.exit(1);
});
