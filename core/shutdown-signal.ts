// Process signals for every long-running ragway process (gateway, shard, supervisor). Lives in
// core/ so a shard process never loads gateway code to stop cleanly.

/**
 * Runs `shutdown` once on the first SIGINT or SIGTERM; a second signal exits at once, for an
 * operator who does not want to wait for a graceful stop (acknowledged writes are already in
 * the shard's log). Started by a supervisor with an IPC channel (`ragway start`), the process
 * also stops when that channel closes — the supervisor died, even by SIGKILL, which it cannot
 * forward — rather than linger as an orphan holding its port and data dir.
 */
export function onShutdownSignal(shutdown: (signal: NodeJS.Signals) => Promise<void>, label = 'ragway'): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`${label}: received ${signal} again; exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    shutdown(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`${label}: shutdown failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  if (process.send !== undefined) process.once('disconnect', () => handler('SIGTERM'));
}
