// An incremental Server-Sent Events parser following the WHATWG "event stream interpretation"
// rules (html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
//
// Upstream LLM streams arrive in TCP-sized pieces that split events, lines, CRLF pairs and
// multi-byte UTF-8 sequences at arbitrary bytes, so nothing here assumes a chunk boundary
// means anything. The parser is pure (no I/O, no timers): the provider drives it chunk by
// chunk, which keeps its own timeouts and backpressure in charge of reading.

export interface SseEvent {
  /** The `event:` field, or "message" when the block set none. */
  event: string;
  /** The `data:` lines of the block joined with "\n". */
  data: string;
  /** The last event ID seen so far in the stream (it persists across events, per the spec). */
  id: string;
}

const LF = 0x0a;
const CR = 0x0d;
const BOM = '\uFEFF';

export class SseParser {
  // A line whose terminator has not arrived yet.
  private pending = '';
  // A chunk ended with CR: if the next chunk starts with LF, that LF belongs to the same CRLF.
  private skipLeadingLf = false;
  private sawText = false;
  private data = '';
  private eventType = '';
  private lastEventId = '';
  private reconnectionMs: number | undefined;
  // Bytes arrive split mid-character; `stream: true` holds partial sequences until the next
  // chunk. ignoreBOM keeps the BOM in the text so one rule strips it for strings and bytes alike.
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });

  /** The reconnection time the stream asked for with `retry:`, in milliseconds, if any. */
  get retryMs(): number | undefined {
    return this.reconnectionMs;
  }

  /** Feeds the next piece of the stream; returns the events it completed, in order. */
  push(chunk: string | Uint8Array): SseEvent[] {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    return this.feed(text);
  }

  /**
   * Ends the stream. Per the spec an event without its terminating blank line is discarded,
   * so this returns only what undecoded bytes complete (always [] for well-formed input); it
   * exists so callers need not know that, and so the decoder flushes.
   */
  end(): SseEvent[] {
    const events = this.feed(this.decoder.decode());
    this.pending = '';
    this.data = '';
    this.eventType = '';
    return events;
  }

  private feed(input: string): SseEvent[] {
    let text = input;
    if (text.length === 0) return [];
    if (!this.sawText) {
      this.sawText = true;
      if (text.startsWith(BOM)) text = text.slice(1);
    }
    const events: SseEvent[] = [];
    let start = 0;
    if (this.skipLeadingLf) {
      this.skipLeadingLf = false;
      if (text.charCodeAt(0) === LF) start = 1;
    }
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== LF && c !== CR) continue;
      const line = this.pending + text.slice(start, i);
      this.pending = '';
      if (c === CR) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === LF) i++;
        } else {
          this.skipLeadingLf = true;
        }
      }
      start = i + 1;
      const event = this.processLine(line);
      if (event) events.push(event);
    }
    if (start < text.length) this.pending += text.slice(start);
    return events;
  }

  private processLine(line: string): SseEvent | undefined {
    if (line.length === 0) return this.dispatch();
    if (line.charCodeAt(0) === 0x3a /* ':' */) return undefined; // a comment, e.g. ": ping"
    const colon = line.indexOf(':');
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      value = line.slice(line.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1);
    }
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data += value + '\n';
        break;
      case 'id':
        // An id containing NUL is ignored so a stream cannot poison Last-Event-ID.
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.reconnectionMs = Number(value);
        break;
      default:
        // Unknown fields are ignored, as the spec requires.
        break;
    }
    return undefined;
  }

  private dispatch(): SseEvent | undefined {
    if (this.data.length === 0) {
      this.eventType = '';
      return undefined;
    }
    const event: SseEvent = {
      event: this.eventType.length > 0 ? this.eventType : 'message',
      data: this.data.endsWith('\n') ? this.data.slice(0, -1) : this.data,
      id: this.lastEventId,
    };
    this.data = '';
    this.eventType = '';
    return event;
  }
}

/** Events of a byte (or string) stream, for callers that need no control between chunks. */
export async function* parseSse(stream: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent, void, undefined> {
  const parser = new SseParser();
  for await (const chunk of stream) {
    yield* parser.push(chunk);
  }
  yield* parser.end();
}
