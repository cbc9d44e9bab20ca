// Whole server-sent-event frames out of an upstream's byte stream, without parsing them.
//
// A transparent proxy has no reason to decode, parse and re-encode every event: it only must
// never forward half an event (a ping comment or an error frame written after it would be
// glued onto the half, and a client would see a corrupt event). So this finds the last frame
// boundary in what has arrived, hands back the bytes up to it untouched, and keeps the rest
// for the next chunk. Frames are the upstream's, byte for byte.
//
// Only LF line endings are handled this way. The spec also allows CR and CRLF, whose frame
// boundaries are ambiguous across chunk edges (a CR at the end of one chunk may be half of a
// CRLF); a stream that contains a CR at all is handed back as `undefined` so the caller can
// switch to the full parser (SseParser) for the rest of it, starting at a frame boundary.

const FRAME_END = '\n\n';
const CR = 0x0d;

export class SseFrameSplitter {
  #pending: Buffer | undefined;

  /**
   * The complete frames `chunk` finishes (possibly none: an empty buffer), or `undefined` once
   * a CR shows up; then `takePending()` returns the bytes not yet handed out, which begin at a
   * frame boundary.
   */
  push(chunk: Buffer): Buffer | undefined {
    if (chunk.includes(CR)) return undefined;
    const text = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
    const end = text.lastIndexOf(FRAME_END);
    if (end === -1) {
      this.#pending = text;
      return EMPTY;
    }
    const cut = end + FRAME_END.length;
    this.#pending = cut === text.length ? undefined : text.subarray(cut);
    return cut === text.length ? text : text.subarray(0, cut);
  }

  /** Bytes received after the last complete frame (an unterminated event), emptied. */
  takePending(): Buffer {
    const pending = this.#pending ?? EMPTY;
    this.#pending = undefined;
    return pending;
  }
}

const EMPTY = Buffer.alloc(0);
