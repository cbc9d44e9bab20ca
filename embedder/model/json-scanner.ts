// A streaming scanner for one large JSON file: it reads the file in chunks into one buffer
// and parses strings, numbers and punctuation at a cursor, so a 307 MB source is read without
// a 1.2 GB JSON.parse and the read can stop early. Only what the model source needs: no
// true/false/null, numbers parsed exactly as Number() would.
import type { FileHandle } from 'node:fs/promises';

const READ_CHUNK = 8 * 1024 * 1024;
/** Bytes kept available ahead of the cursor; far more than any one word or vector entry. */
const LOOKAHEAD = 1024 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
export const COMMA = 0x2c;
export const COLON = 0x3a;
export const OPEN_BRACKET = 0x5b;
export const CLOSE_BRACKET = 0x5d;
export const OPEN_BRACE = 0x7b;
export const CLOSE_BRACE = 0x7d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

// Exact powers of ten: a ≤ 2^53 integer times or divided by one of these is a single correctly
// rounded operation, so this parser returns exactly what Number() would (Clinger's fast path).
const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

export class JsonScanner {
  private buf = Buffer.allocUnsafe(READ_CHUNK + LOOKAHEAD);
  private pos = 0;
  private end = 0;
  private eof = false;
  /** File offset of buf[0], for error messages. */
  private base = 0;
  bytesRead = 0;

  constructor(
    private readonly file: FileHandle,
    private readonly path: string,
  ) {}

  /** Ensures LOOKAHEAD bytes (or the rest of the file) are buffered from the cursor on. */
  async ensure(): Promise<void> {
    if (this.end - this.pos >= LOOKAHEAD || this.eof) return;
    const kept = this.end - this.pos;
    this.buf.copyWithin(0, this.pos, this.end);
    this.base += this.pos;
    this.pos = 0;
    this.end = kept;
    while (this.end < this.buf.length && !this.eof) {
      const { bytesRead } = await this.file.read(this.buf, this.end, this.buf.length - this.end, null);
      if (bytesRead === 0) this.eof = true;
      this.end += bytesRead;
      this.bytesRead += bytesRead;
    }
  }

  fail(what: string): never {
    throw new Error(`${this.path}: ${what} at byte ${this.base + this.pos}`);
  }

  private skipWhitespace(): void {
    const b = this.buf;
    while (this.pos < this.end) {
      const c = b[this.pos];
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.pos++;
    }
  }

  peek(): number {
    this.skipWhitespace();
    return this.pos < this.end ? (this.buf[this.pos] ?? -1) : -1;
  }

  expect(byte: number): void {
    if (this.peek() !== byte) this.fail(`expected '${String.fromCharCode(byte)}'`);
    this.pos++;
  }

  /** Consumes a comma and returns true, or returns false at the closing byte (not consumed). */
  nextItem(close: number): boolean {
    const c = this.peek();
    if (c === COMMA) {
      this.pos++;
      return true;
    }
    if (c === close) return false;
    return this.fail(`expected ',' or '${String.fromCharCode(close)}'`);
  }

  /** Skips a JSON string and returns its [start, end) byte range, quotes excluded. */
  private stringRange(): { start: number; stop: number; escaped: boolean } {
    this.expect(QUOTE);
    const b = this.buf;
    const start = this.pos;
    let escaped = false;
    for (let i = start; i < this.end; i++) {
      const c = b[i];
      if (c === BACKSLASH) {
        escaped = true;
        i++;
      } else if (c === QUOTE) {
        this.pos = i + 1;
        return { start, stop: i, escaped };
      }
    }
    return this.fail('unterminated string');
  }

  string(): string {
    const { start, stop, escaped } = this.stringRange();
    return escaped ? (JSON.parse(this.buf.toString('utf8', start - 1, stop + 1)) as string) : this.buf.toString('utf8', start, stop);
  }

  skipString(): void {
    this.stringRange();
  }

  number(): number {
    this.skipWhitespace();
    const b = this.buf;
    const start = this.pos;
    let i = start;
    let negative = false;
    if (b[i] === MINUS) {
      negative = true;
      i++;
    }
    let mantissa = 0;
    let digits = 0;
    let exponent = 0;
    let c = b[i] ?? -1;
    while (c >= DIGIT_0 && c <= DIGIT_9) {
      mantissa = mantissa * 10 + (c - DIGIT_0);
      digits++;
      c = b[++i] ?? -1;
    }
    if (c === DOT) {
      c = b[++i] ?? -1;
      while (c >= DIGIT_0 && c <= DIGIT_9) {
        mantissa = mantissa * 10 + (c - DIGIT_0);
        digits++;
        exponent--;
        c = b[++i] ?? -1;
      }
    }
    if (c === 0x65 || c === 0x45) {
      c = b[++i] ?? -1;
      let expNegative = false;
      if (c === MINUS || c === PLUS) {
        expNegative = c === MINUS;
        c = b[++i] ?? -1;
      }
      let e = 0;
      while (c >= DIGIT_0 && c <= DIGIT_9) {
        e = e * 10 + (c - DIGIT_0);
        c = b[++i] ?? -1;
      }
      exponent += expNegative ? -e : e;
    }
    if (digits === 0 || i >= this.end) this.fail('malformed number');
    this.pos = i;
    let value: number;
    if (digits <= 15 && exponent >= -22 && exponent <= 22) {
      const scale = POW10[Math.abs(exponent)] ?? 1;
      value = exponent < 0 ? mantissa / scale : mantissa * scale;
    } else {
      value = Math.abs(Number(b.toString('latin1', negative ? start + 1 : start, i)));
    }
    return negative ? -value : value;
  }

  /** Reads `"key":` and returns the key. */
  key(): string {
    const k = this.string();
    this.expect(COLON);
    return k;
  }
}
