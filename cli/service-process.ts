// A ragway child process (`ragway shard` for `ragway start`, `ragway gateway` for the
// benchmarks): its URL read from the "listening on" line it prints, restarted on the same
// port (so URLs held by others stay valid) with backoff if it dies, and stopped with
// SIGTERM (a shard saves its index) then SIGKILL.
//
// A supervisor that is stopping never restarts anything: `stopping` (one signal for every
// process of a supervisor) is aborted the moment a stop begins, before any child is told to
// stop — Ctrl-C and most supervisors signal the whole process group, so children exit on
// their own, and such an exit must not read as a crash.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const LISTENING = /ragway \w+ listening on (http:\/\/\S+)/;
const START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 15_000;
const MAX_BACKOFF_MS = 30_000;

export interface ServiceProcessOptions {
  label: string;
  /** The ragway command to run; default "shard". */
  command?: 'shard' | 'gateway';
  /** Arguments after the command, without --host and --port. */
  args: string[];
  /** Extra environment for the child (added to this process's). */
  env?: Record<string, string>;
  host: string;
  port?: number;
  log?: (line: string) => void;
  /** Restart the process when it dies (default true); tests that kill shards turn it off. */
  restart?: boolean;
  /** Aborted when the supervisor starts to stop: from then on no exit is restarted. */
  stopping?: AbortSignal;
}

export class ServiceProcess {
  readonly #options: ServiceProcessOptions;
  #child: ChildProcess | undefined;
  #port: number;
  #args: string[];
  #url: string | undefined;
  #stopping = false;
  #restarts = 0;
  #restartTimer: NodeJS.Timeout | undefined;

  constructor(options: ServiceProcessOptions) {
    this.#options = options;
    this.#port = options.port ?? 0;
    this.#args = options.args;
  }

  get url(): string {
    if (this.#url === undefined) throw new Error(`${this.#options.label} has not started`);
    return this.#url;
  }

  /** Replaces the arguments for the next start (e.g. a URL learned after construction). */
  setArgs(args: string[]): void {
    this.#args = args;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Sends a signal without stopping supervision (tests use SIGKILL to simulate a crash). */
  kill(signal: NodeJS.Signals): void {
    this.#child?.kill(signal);
  }

  /** Spawns the process (again, on the same port, after a stop) and resolves its URL once it listens. */
  async start(): Promise<string> {
    if (this.#options.stopping?.aborted === true) throw new Error(`${this.#options.label} not started: the supervisor is stopping`);
    this.#stopping = false;
    const cli = fileURLToPath(new URL('./ragway.js', import.meta.url));
    const child = spawn(
      process.execPath,
      [cli, this.#options.command ?? 'shard', '--host', this.#options.host, '--port', String(this.#port), ...this.#args],
      // The IPC channel is a lifeline: the child stops when this process dies, however it dies.
      { stdio: ['ignore', 'pipe', 'inherit', 'ipc'], env: { ...process.env, ...this.#options.env } },
    );
    this.#child = child;
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${this.#options.label} did not report its port within ${START_TIMEOUT_MS / 1000}s`));
      }, START_TIMEOUT_MS);
      const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
      lines.on('line', (line) => {
        const match = LISTENING.exec(line);
        if (match?.[1] !== undefined) {
          clearTimeout(timer);
          resolve(match[1]);
        } else {
          this.#options.log?.(`[${this.#options.label}] ${line}`);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${this.#options.label} exited during start (code ${code}, signal ${signal})`));
      });
    });
    this.#url = url;
    this.#port = Number(new URL(url).port);
    child.once('exit', (code, signal) => this.#onExit(code, signal));
    return url;
  }

  get #supervisorStopping(): boolean {
    return this.#stopping || this.#options.stopping?.aborted === true;
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#options.restart === false) return;
    if (this.#supervisorStopping) {
      this.#options.log?.(`${this.#options.label} stopped (code ${code}, signal ${signal})`);
      return;
    }
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.#restarts);
    this.#restarts += 1;
    this.#options.log?.(
      `${this.#options.label} exited unexpectedly (code ${code}, signal ${signal}); restarting on port ${this.#port} in ${delay} ms`,
    );
    this.#restartTimer = setTimeout(() => {
      if (this.#supervisorStopping) return;
      this.start().then(
        () => this.#options.log?.(`${this.#options.label} is back on ${this.#url}`),
        (err: unknown) => this.#options.log?.(`${this.#options.label} failed to restart: ${(err as Error).message}`),
      );
    }, delay);
  }

  /** SIGTERM (a shard saves and exits), then SIGKILL after a grace period. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
