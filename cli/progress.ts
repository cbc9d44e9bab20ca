// A one-line progress bar on stderr ("[######----] 120/400 docs  35.2 docs/s"), redrawn in
// place on a terminal and printed every few seconds otherwise (CI logs, pipes).
const WIDTH = 28;
const NON_TTY_INTERVAL_MS = 5_000;

export class ProgressBar {
  readonly #total: number;
  readonly #label: string;
  readonly #stream: NodeJS.WriteStream;
  readonly #started = performance.now();
  #done = 0;
  #lastPrinted = 0;

  constructor(total: number, label: string, stream: NodeJS.WriteStream = process.stderr) {
    this.#total = total;
    this.#label = label;
    this.#stream = stream;
  }

  get rate(): number {
    const seconds = (performance.now() - this.#started) / 1000;
    return seconds > 0 ? this.#done / seconds : 0;
  }

  advance(count: number, detail = ''): void {
    this.#done += count;
    const now = performance.now();
    // Off a terminal the final line comes from finish(), so only periodic updates print here.
    if (!this.#stream.isTTY && (now - this.#lastPrinted < NON_TTY_INTERVAL_MS || this.#done >= this.#total)) return;
    this.#lastPrinted = now;
    this.#stream.write(`${this.#stream.isTTY ? '\r' : ''}${this.line(detail)}${this.#stream.isTTY ? '' : '\n'}`);
  }

  line(detail = ''): string {
    const fraction = this.#total > 0 ? Math.min(1, this.#done / this.#total) : 1;
    const filled = Math.round(fraction * WIDTH);
    const bar = `${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}`;
    return `[${bar}] ${this.#done}/${this.#total} ${this.#label}  ${this.rate.toFixed(1)} ${this.#label}/s${detail ? `  ${detail}` : ''}`;
  }

  finish(detail = ''): void {
    if (this.#stream.isTTY) this.#stream.write(`\r${this.line(detail)}\n`);
    else this.#stream.write(`${this.line(detail)}\n`);
  }
}
