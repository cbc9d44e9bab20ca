import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamTokenMeter } from '../../../../gateway/access/token-meter.js';

describe('StreamTokenMeter', () => {
  const metered = (): { meter: StreamTokenMeter; charges: number[] } => {
    const charges: number[] = [];
    return { meter: new StreamTokenMeter((tokens) => charges.push(tokens)), charges };
  };

  it('charges chunks in steps while streaming and the rest at the end, once', () => {
    const { meter, charges } = metered();
    for (let i = 0; i < 40; i += 1) meter.chunk();
    assert.deepEqual(charges, [16, 16]);
    meter.finish();
    meter.finish();
    meter.chunk();
    assert.deepEqual(charges, [16, 16, 8]);
    assert.equal(meter.charged, 40);
  });

  it('settles to the usage total when the stream reports one, never below what was sent', () => {
    const { meter, charges } = metered();
    for (let i = 0; i < 20; i += 1) meter.chunk();
    meter.usage(55);
    meter.finish();
    assert.deepEqual(charges, [16, 39]);
    const low = metered();
    for (let i = 0; i < 5; i += 1) low.meter.chunk();
    low.meter.usage(2);
    low.meter.finish();
    assert.deepEqual(low.charges, [5]);
  });

  it('reads OpenAI stream frames: content chunks count, the usage chunk reports, the rest is ignored', () => {
    const { meter, charges } = metered();
    meter.frame('{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}');
    meter.frame('{"choices":[{"index":0,"delta":{"content":" hi"}}],"usage":null}');
    meter.frame('{"choices":[{"index":0,"delta":{"content":"\\" quoted"}}]}');
    meter.frame('{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}');
    meter.frame('{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}');
    meter.frame('[DONE]');
    meter.finish();
    assert.deepEqual(charges, [11]);
  });

  it('reads whole SSE frames as they pass through unparsed', () => {
    const { meter, charges } = metered();
    meter.frames('data: {"choices":[{"delta":{"content":" a"}}]}\n\ndata: {"choices":[{"delta":{"content":" b"}}]}\n\n: ping\n\n');
    meter.frames('data: [DONE]\n\n');
    meter.finish();
    assert.deepEqual(charges, [2]);
  });
});
