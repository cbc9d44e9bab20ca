// Charges a streamed answer's tokens to its key's tokens-per-minute budget while it streams.
// A JSON answer is charged from its `usage` once it is sent (the access plugin reads it off the
// payload); a stream has no payload to read, so the routes report what they send: each chunk
// of generated text counts one token (what an OpenAI-compatible stream carries per chunk) and is
// charged in small steps as it goes, and a `usage` total, when the stream ends with one, settles
// the difference (prompt tokens included). A client that leaves mid-stream is still charged for
// every chunk it was sent. Refusing the next request once the bucket is empty is the rate
// limiter's pre-check; a stream already running is not cut.

/** Chunks counted before a charge goes out: one bucket call (a Redis round trip) per step, not per token. */
const CHARGE_STEP = 16;

export class StreamTokenMeter {
  readonly #charge: (tokens: number) => void;
  #counted = 0;
  #charged = 0;
  #reported: number | undefined;
  #finished = false;

  constructor(charge: (tokens: number) => void) {
    this.#charge = charge;
  }

  /** One chunk of generated text went to the client. */
  chunk(): void {
    if (this.#finished) return;
    this.#counted += 1;
    if (this.#counted - this.#charged >= CHARGE_STEP) this.#settle(this.#counted);
  }

  /** The stream's own total (`usage.total_tokens`), when it has one; it replaces the count. */
  usage(totalTokens: number): void {
    if (this.#finished || !Number.isFinite(totalTokens) || totalTokens < 0) return;
    this.#reported = totalTokens;
  }

  /** A raw SSE data frame of an OpenAI chat stream: a usage chunk reports, a content chunk counts. */
  frame(data: string): void {
    const usage = TOTAL_TOKENS.exec(data);
    if (usage !== null) this.usage(Number(usage[1]));
    else if (CONTENT.test(data)) this.chunk();
  }

  /** Whole SSE frames as they arrived (`data: …` lines, blank line between events). */
  frames(text: string): void {
    for (const line of text.split('\n')) {
      if (line.startsWith('data:')) this.frame(line.slice(5).trim());
    }
  }

  /** The stream is over (ended, failed or abandoned): charges what is still owed, once. */
  finish(): void {
    if (this.#finished) return;
    this.#settle(Math.max(this.#reported ?? 0, this.#counted));
    this.#finished = true;
  }

  get charged(): number {
    return this.#charged;
  }

  #settle(total: number): void {
    const owed = total - this.#charged;
    if (owed <= 0) return;
    this.#charged = total;
    this.#charge(owed);
  }
}

const TOTAL_TOKENS = /"total_tokens":\s*(\d+)/;
// A chunk whose delta carries text (not the role-only first chunk, not an empty delta).
const CONTENT = /"content":\s*"(?:[^"\\]|\\.)/;
