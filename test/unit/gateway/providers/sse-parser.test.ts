import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSse, SseParser, type SseEvent } from '../../../../gateway/providers/sse-parser.js';

interface Case {
  name: string;
  stream: string;
  events: Array<Partial<SseEvent> & { data: string }>;
  retryMs?: number;
}

// Each case is checked whole, split in two at every character and at every UTF-8 byte,
// and fed one character / one byte at a time: a chunk boundary must never change the result.
const CASES: Case[] = [
  { name: 'one event', stream: 'data: hello\n\n', events: [{ data: 'hello' }] },
  { name: 'multi-line data joined with LF', stream: 'data: a\ndata: b\ndata: c\n\n', events: [{ data: 'a\nb\nc' }] },
  { name: 'two events', stream: 'data: 1\n\ndata: 2\n\n', events: [{ data: '1' }, { data: '2' }] },
  { name: 'comments ignored', stream: ': ping\n\ndata: x\n: in the middle\ndata: y\n\n: trailing\n', events: [{ data: 'x\ny' }] },
  {
    name: 'event and id fields; id persists, event resets',
    stream: 'event: delta\nid: 7\ndata: {}\n\ndata: next\n\n',
    events: [
      { event: 'delta', id: '7', data: '{}' },
      { event: 'message', id: '7', data: 'next' },
    ],
  },
  { name: 'field with no colon: data', stream: 'data\n\n', events: [{ data: '' }] },
  { name: 'field with no colon: event resets to message', stream: 'event: x\nevent\ndata: z\n\n', events: [{ event: 'message', data: 'z' }] },
  { name: 'empty data lines keep their newlines', stream: 'data:\ndata:\n\n', events: [{ data: '\n' }] },
  { name: 'only one leading space stripped', stream: 'data:  two\n\ndata:none\n\n', events: [{ data: ' two' }, { data: 'none' }] },
  { name: 'colons inside the value kept', stream: 'data: {"a":"b:c"}\n\n', events: [{ data: '{"a":"b:c"}' }] },
  { name: 'CRLF line endings', stream: 'data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n', events: [{ data: 'a\nb' }, { data: 'c' }] },
  { name: 'CR line endings', stream: 'data: a\rdata: b\r\rdata: c\r\r', events: [{ data: 'a\nb' }, { data: 'c' }] },
  { name: 'mixed line endings', stream: 'data: a\r\n\rdata: b\n\r\ndata: c\r\r\n', events: [{ data: 'a' }, { data: 'b' }, { data: 'c' }] },
  { name: 'BOM at the start stripped', stream: '\uFEFFdata: bom\n\n', events: [{ data: 'bom' }] },
  // Only one BOM is stripped; a second makes the first line's field name "\uFEFFdata" (unknown).
  { name: 'second BOM is not stripped', stream: '\uFEFF\uFEFFdata: x\n\ndata: y\n\n', events: [{ data: 'y' }] },
  { name: 'retry sets the reconnection time', stream: 'retry: 1500\ndata: r\n\n', events: [{ data: 'r' }], retryMs: 1500 },
  { name: 'retry that is not all digits ignored', stream: 'retry: 15x\nretry: -1\ndata: r\n\n', events: [{ data: 'r' }] },
  { name: 'id containing NUL ignored', stream: 'id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n', events: [{ id: '1', data: 'a' }, { id: '1', data: 'b' }] },
  { name: 'empty id resets', stream: 'id: 1\ndata: a\n\nid\ndata: b\n\n', events: [{ id: '1', data: 'a' }, { id: '', data: 'b' }] },
  { name: 'event without data not dispatched', stream: 'event: x\nid: 3\n\ndata: y\n\n', events: [{ event: 'message', id: '3', data: 'y' }] },
  { name: 'unknown fields ignored', stream: 'foo: bar\ndata: a\nDATA: b\n\n', events: [{ data: 'a' }] },
  { name: 'unterminated final event discarded', stream: 'data: a\n\ndata: incomplete', events: [{ data: 'a' }] },
  { name: 'unterminated final event discarded (line ended)', stream: 'data: a\n\ndata: incomplete\n', events: [{ data: 'a' }] },
  { name: 'multi-byte UTF-8', stream: 'data: héllo — 你好 😀\n\n', events: [{ data: 'héllo — 你好 😀' }] },
  {
    name: 'OpenAI-style stream',
    stream:
      'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n' +
      ': keep-alive\n\n' +
      'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n' +
      'data: [DONE]\n\n',
    events: [
      { data: '{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}' },
      { data: '{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}' },
      { data: '[DONE]' },
    ],
  },
  { name: 'empty stream', stream: '', events: [] },
  { name: 'blank lines only', stream: '\n\n\r\n\r', events: [] },
];

function expected(c: Case): SseEvent[] {
  return c.events.map((e) => ({ event: e.event ?? 'message', id: e.id ?? '', data: e.data }));
}

function run(chunks: Array<string | Uint8Array>): { events: SseEvent[]; retryMs: number | undefined } {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  for (const chunk of chunks) events.push(...parser.push(chunk));
  events.push(...parser.end());
  return { events, retryMs: parser.retryMs };
}

function check(c: Case, chunks: Array<string | Uint8Array>, how: string): void {
  const result = run(chunks);
  assert.deepEqual(result.events, expected(c), `${c.name}: ${how}`);
  assert.equal(result.retryMs, c.retryMs, `${c.name}: retry, ${how}`);
}

describe('SseParser', () => {
  for (const c of CASES) {
    it(c.name, () => {
      check(c, [c.stream], 'whole');
      for (let i = 0; i <= c.stream.length; i++) {
        check(c, [c.stream.slice(0, i), c.stream.slice(i)], `split at char ${i}`);
      }
      check(c, [...c.stream.split('')], 'one UTF-16 unit at a time');

      const bytes = new TextEncoder().encode(c.stream);
      check(c, [bytes], 'whole bytes');
      for (let i = 0; i <= bytes.length; i++) {
        check(c, [bytes.subarray(0, i), bytes.subarray(i)], `split at byte ${i}`);
      }
      check(c, Array.from(bytes, (b) => Uint8Array.of(b)), 'one byte at a time');
    });
  }

  it('splits at every pair of positions (CRLF and multi-byte heavy stream)', () => {
    const c: Case = {
      name: 'pairs',
      stream: '\uFEFFdata: é\r\ndata: 😀\r\n\r\n: c\rdata: z\r\r',
      events: [{ data: 'é\n😀' }, { data: 'z' }],
    };
    const bytes = new TextEncoder().encode(c.stream);
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        check(c, [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)], `split at bytes ${i}, ${j}`);
      }
    }
  });

  it('returns events as soon as their blank line arrives', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push('data: a\n'), []);
    assert.deepEqual(parser.push('\n'), [{ event: 'message', data: 'a', id: '' }]);
    assert.deepEqual(parser.push('data: b\r'), []);
    // The CR already ended the line; the LF that follows is the same line break, not a blank line.
    assert.deepEqual(parser.push('\n'), []);
    assert.deepEqual(parser.push('\r\n'), [{ event: 'message', data: 'b', id: '' }]);
  });

  it('an invalid UTF-8 byte becomes U+FFFD rather than throwing', () => {
    const bytes = Uint8Array.from([...new TextEncoder().encode('data: a'), 0xff, ...new TextEncoder().encode('\n\n')]);
    assert.deepEqual(run([bytes]).events, [{ event: 'message', data: 'a\uFFFD', id: '' }]);
  });
});

describe('parseSse', () => {
  it('parses an async byte stream split mid-character', async () => {
    const bytes = new TextEncoder().encode('data: 你好\n\nevent: end\ndata: ok\n\n');
    async function* source(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < bytes.length; i += 3) yield bytes.subarray(i, i + 3);
    }
    const events: SseEvent[] = [];
    for await (const event of parseSse(source())) events.push(event);
    assert.deepEqual(events, [
      { event: 'message', data: '你好', id: '' },
      { event: 'end', data: 'ok', id: '' },
    ]);
  });
});
