// With `rag: {enabled: false}`, /v1/chat/completions is a transparent proxy to the LLM
// upstream: a recording upstream (a real HTTP server) receives exactly what the client sent —
// tools, response_format, seed, logprobs, n, user and unknown fields included — less ragway's
// own `rag` and `cache`, with `model` mapped to the upstream's name; the client gets the
// upstream's response field for field, streamed and not, with `model` naming ragway's id.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import { startLlmStack, type LlmStack } from '../../helpers/llm-stack.js';
import { listenOnLoopback } from '../../helpers/listen.js';
import { parseSse, SseParser } from '../../../gateway/providers/sse-parser.js';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** What clients call the model, and what the upstream calls it. */
const ALIAS = 'house-llm';
const UPSTREAM_MODEL = 'upstream-llm-7b';
/** A model both sides call the same: nothing to rename, so the upstream's bytes pass unparsed. */
const SAME_NAME = 'same-name-llm';

/** A body with the parameters the RAG path would drop or refuse (tools, tool messages, n=2…). */
function clientBody(stream: boolean): Record<string, unknown> {
  return {
    model: ALIAS,
    messages: [
      { role: 'system', content: 'You are a terse assistant.' },
      { role: 'user', content: [{ type: 'text', text: 'What is the weather in Paris?' }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temp_c":21}' },
    ],
    tools: [{ type: 'function', function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
    tool_choice: 'auto',
    response_format: { type: 'json_object' },
    seed: 42,
    logprobs: true,
    top_logprobs: 2,
    n: 2,
    user: 'user-1234',
    temperature: 0.3,
    presence_penalty: 0.5,
    logit_bias: { '50256': -100 },
    metadata: { trace: 'abc' },
    some_future_field: { nested: [1, 'two', null] },
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
    rag: { enabled: false },
    cache: { mode: 'bypass' },
  };
}

/** What the upstream must receive: the client's body, minus ragway's fields, model mapped. */
function expectedUpstreamBody(body: Record<string, unknown>): Record<string, unknown> {
  const { rag: _rag, cache: _cache, ...rest } = body;
  return { ...rest, model: UPSTREAM_MODEL };
}

/** The data of every event, read with the gateway's own spec-following SSE parser. */
async function sseData(body: AsyncIterable<Buffer>): Promise<string[]> {
  const data: string[] = [];
  for await (const event of parseSse(body)) data.push(event.data);
  return data;
}

/** A chunk or completion with what differs between two requests (id, created) taken out. */
function comparable(json: string): Record<string, unknown> {
  const { id, created, ...rest } = JSON.parse(json) as Record<string, unknown>;
  assert.match(String(id), /^chatcmpl-scripted-\d+$/, 'the upstream id is passed through');
  assert.equal(typeof created, 'number');
  return rest;
}

describe('chat with retrieval off is a transparent proxy', () => {
  let stack: LlmStack;
  let app: FastifyInstance;
  let base: string;
  /** A hand-written upstream for the byte-level cases: writes exactly what `rawReply` says. */
  let raw: Server;
  let rawReply: (res: ServerResponse) => Promise<void> = async (res) => {
    res.end();
  };

  before(async () => {
    stack = await startLlmStack('passthrough', { script: { tokens: ['It is', ' 21', ' °C.'] } });
    raw = createServer((req, res) => {
      req.resume();
      req.on('end', () => void rawReply(res).catch(() => res.destroy()));
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    const rawUrl = `http://127.0.0.1:${(raw.address() as AddressInfo).port}`;
    const upstreamsFile = join(stack.dir.path, 'upstreams.json');
    await writeFile(
      upstreamsFile,
      JSON.stringify([
        { id: ALIAS, model: UPSTREAM_MODEL, urls: [`${stack.upstream.url}/v1`] },
        { id: SAME_NAME, model: SAME_NAME, urls: [`${rawUrl}/v1`] },
      ]),
    );
    app = await buildApp(loadConfig({}, { shards: stack.shards.spec, logLevel: 'silent', llmUpstreamsFile: upstreamsFile }), {
      embeddingBackend: stack.backend,
      defaultMetrics: false,
    });
    base = await listenOnLoopback(app);
  });

  beforeEach(() => stack.upstream.resetScript({ tokens: ['It is', ' 21', ' °C.'] }));

  after(async () => {
    await app?.close();
    raw?.closeAllConnections();
    await new Promise((resolve) => raw?.close(resolve));
    await stack?.close();
  });

  const viaRagway = (body: unknown) =>
    request(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const direct = (body: unknown) =>
    request(`${stack.upstream.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('non-streaming: the upstream receives the client body unchanged, the client the upstream response', async () => {
    const body = clientBody(false);
    const response = await viaRagway(body);
    assert.equal(response.statusCode, 200);
    const received = stack.upstream.requests.at(-1);
    assert.ok(received !== undefined);
    // Byte-equivalent as JSON: same fields, same values, same order.
    assert.equal(received.raw, JSON.stringify(expectedUpstreamBody(body)));
    assert.doesNotMatch(received.raw, /numbered sources/);

    const through = await response.body.text();
    const reference = await (await direct(expectedUpstreamBody(body))).body.text();
    const mine = comparable(through);
    assert.equal(mine.model, ALIAS);
    assert.deepEqual({ ...mine, model: UPSTREAM_MODEL }, comparable(reference));
    assert.equal('rag' in mine, false, 'no ragway extension on a proxied answer');
    assert.deepEqual(Object.keys(JSON.parse(through)), Object.keys(JSON.parse(reference)), 'field order kept');
  });

  it('streaming: the same body upstream, and every upstream chunk through, in order, ending with [DONE]', async () => {
    const body = clientBody(true);
    const response = await viaRagway(body);
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /text\/event-stream/);
    const through = await sseData(response.body);
    assert.equal(stack.upstream.requests.at(-1)?.raw, JSON.stringify(expectedUpstreamBody(body)));
    const reference = await sseData((await direct(expectedUpstreamBody(body))).body);
    assert.equal(through.length, reference.length);
    assert.equal(through.at(-1), '[DONE]');
    for (const [i, data] of through.slice(0, -1).entries()) {
      const mine = comparable(data);
      assert.equal(mine.model, ALIAS, `chunk ${i} names ragway's model`);
      assert.deepEqual({ ...mine, model: UPSTREAM_MODEL }, comparable(reference[i] as string), `chunk ${i}`);
    }
    // system_fingerprint is the upstream's own field: ragway's encoder never writes it.
    assert.ok(through.slice(0, -1).every((data) => 'system_fingerprint' in JSON.parse(data)));
  });

  it("answers an upstream's refusal with the catalog envelope and its status", async () => {
    stack.upstream.setScript({ status: 400, errorBody: { error: { message: 'tools are not supported by this model', type: 'invalid_request_error' } } });
    const response = await viaRagway(clientBody(false));
    assert.equal(response.statusCode, 400);
    const error = ((await response.body.json()) as { error: { code: string; message: string } }).error;
    assert.equal(error.code, 'RAGWAY_ERR_UPSTREAM_REJECTED');
    assert.match(error.message, /tools are not supported/);
  });

  it('keeps the RAG path strict: with retrieval on, tool messages are still refused', async () => {
    const { rag: _rag, ...body } = clientBody(false);
    const response = await viaRagway(body);
    assert.equal(response.statusCode, 400);
    const error = ((await response.body.json()) as { error: { message: string; param: string } }).error;
    assert.match(error.message, /role must be system, developer, user or assistant|n must be 1|content must be/);
  });

  describe('with nothing to rename, the upstream frames pass through as bytes', () => {
    const frame = (content: string): string =>
      `data: {"id":"c1","object":"chat.completion.chunk","model":"${SAME_NAME}","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}}}]}\n\n`;
    const streamed = { model: SAME_NAME, messages: [{ role: 'user', content: 'hi' }], stream: true, rag: { enabled: false } };
    const openStream = (res: ServerResponse): void => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
    };

    it('frames split anywhere by the upstream reach the client whole and byte for byte; [DONE] ends the stream', async () => {
      const upstreamText = `: a comment\n\n${frame('Hel')}event: custom\nid: 7\n${frame('lo').slice(0, -1)}\n${frame(' wörld')}data: [DONE]\n\n`;
      rawReply = async (res) => {
        openStream(res);
        const bytes = Buffer.from(upstreamText);
        // Cut mid-frame, mid-line and inside a multi-byte character.
        for (const [from, to] of [[0, 5], [5, 40], [40, 41], [41, bytes.length - 30], [bytes.length - 30, bytes.length]] as const) {
          res.write(bytes.subarray(from, to));
          await sleep(15);
        }
        // Bytes after [DONE] are not the protocol's: the client must not see them.
        res.end('data: {"after":"done"}\n\n');
      };
      const response = await viaRagway(streamed);
      assert.equal(response.statusCode, 200);
      assert.equal(await response.body.text(), upstreamText);
    });

    it('an upstream with CRLF line endings is parsed and re-framed, losing no event', async () => {
      rawReply = async (res) => {
        openStream(res);
        res.write(frame('one'));
        await sleep(15);
        res.write(frame('two').replaceAll('\n', '\r\n'));
        await sleep(15);
        res.end('data: [DONE]\r\n\r\n');
      };
      const response = await viaRagway(streamed);
      const data = await sseData(response.body);
      assert.deepEqual(
        data.map((item) => (item === '[DONE]' ? item : (JSON.parse(item) as { choices: { delta: { content: string } }[] }).choices[0]?.delta.content)),
        ['one', 'two', '[DONE]'],
      );
    });

    it('an upstream that dies mid-stream ends the client stream with an error event and [DONE], never half a frame', async () => {
      rawReply = async (res) => {
        openStream(res);
        res.write(frame('partial'));
        res.write(frame('cut off').slice(0, 30));
        await sleep(15);
        res.destroy();
      };
      const response = await viaRagway(streamed);
      const text = await response.body.text();
      assert.ok(text.startsWith(frame('partial')), 'the whole frame before the failure is there');
      assert.doesNotMatch(text, /cut off/, 'the unfinished frame is not forwarded');
      const data = new SseParser().push(text).map((event) => event.data);
      assert.equal(data.at(-1), '[DONE]');
      const error = JSON.parse(data.at(-2) as string) as { error: { code: string } };
      assert.equal(error.error.code, 'RAGWAY_ERR_UPSTREAM_UNAVAILABLE');
    });
  });
});
