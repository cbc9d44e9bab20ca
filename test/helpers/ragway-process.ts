// `ragway start` as a child process, the way a newcomer runs it: tests wait for the
// "ragway ready on <url>" line, talk HTTP to it, and stop it with SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../cli/ragway.js', import.meta.url));
const READY = /ragway ready on (http:\/\/\S+)/;

export interface Started {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

export async function startRagway(dataDir: string): Promise<Started> {
  const child = spawn(process.execPath, [CLI, 'start', '--port', '0', '--shards', '2', '--data', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => {
    stderr += data.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ragway start did not become ready:\n${stderr}`)), 180_000);
    child.stdout?.on('data', (data: Buffer) => {
      stdout += data.toString();
      const match = READY.exec(stdout);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ragway start exited with ${code}:\n${stderr}`));
    });
  });
  return { child, url, stderr: () => stderr };
}

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `ragway start` without waiting for anything, in its own process group (so a test can
 * signal the whole group, as Ctrl-C does), its output collected.
 */
export function spawnRagway(args: string[], env: Record<string, string> = {}): Spawned {
  const child = spawn(process.execPath, [CLI, 'start', ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (data: Buffer) => {
    stdout += data.toString();
  });
  child.stderr?.on('data', (data: Buffer) => {
    stderr += data.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

export async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

