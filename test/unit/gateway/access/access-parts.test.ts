// The pure parts of access control: namespace patterns, token buckets (on a manual clock),
// the admission gate's queue, and the keys file's format and operations.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdaptiveLimit, AdmissionGate } from '../../../../gateway/access/admission.js';
import { MemoryBuckets } from '../../../../gateway/access/buckets.js';
import { addKey, keyIdOf, parseKeysFile, revokeKey, type KeysFile } from '../../../../gateway/access/keys-file.js';
import { formatDuration } from '../../../../gateway/access/rate-limiter.js';
import { hashSecret, safeEqual } from '../../../../core/secrets.js';
import { isLoopbackHost } from '../../../../core/http-guards.js';
import { namespaceAllowed, parseNamespaceScope } from '../../../../shards/access.js';

describe('namespace patterns', () => {
  it('matches exact names and prefixes, nothing else', () => {
    const table: [string[], string, boolean][] = [
      [['a'], 'a', true],
      [['a'], 'ab', false],
      [['a'], 'b', false],
      [['team-*'], 'team-red', true],
      [['team-*'], 'team', false],
      [['team-*'], 'teams', false],
      [['*'], 'anything', true],
      [['x', 'team-*'], 'x', true],
      [[], 'a', false],
    ];
    for (const [patterns, namespace, expected] of table) assert.equal(namespaceAllowed(patterns, namespace), expected, `${patterns} ${namespace}`);
  });
  it('refuses a malformed scope header instead of reading it as unlimited', () => {
    assert.deepEqual(parseNamespaceScope('a,team-*'), ['a', 'team-*']);
    assert.equal(parseNamespaceScope(undefined), undefined);
    for (const bad of ['', 'a,', '../b', 'a b', '*x']) assert.throws(() => parseNamespaceScope(bad), { code: 'RAGWAY_ERR_INVALID_REQUEST' });
  });
});

describe('token buckets', () => {
  it('admits the burst, then the refill rate, and reports when to retry', async () => {
    let now = 0;
    const buckets = new MemoryBuckets(() => now);
    const spec = { ratePerMs: 10 / 1_000, capacity: 10 };
    let admitted = 0;
    for (let i = 0; i < 50; i += 1) if ((await buckets.take('k', spec, 1, 1)).allowed) admitted += 1;
    assert.equal(admitted, 10);
    const refused = await buckets.take('k', spec, 1, 1);
    assert.equal(refused.allowed, false);
    assert.equal(refused.retryAfterMs, 100);
    now += 500;
    admitted = 0;
    for (let i = 0; i < 50; i += 1) if ((await buckets.take('k', spec, 1, 1)).allowed) admitted += 1;
    assert.equal(admitted, 5);
  });
  it('lets a forced charge overdraw, and checks only for a positive balance afterwards', async () => {
    let now = 0;
    const buckets = new MemoryBuckets(() => now);
    const spec = { ratePerMs: 60 / 60_000, capacity: 60 };
    assert.equal((await buckets.take('t', spec, 100, 0, true)).remaining, -40);
    const check = await buckets.take('t', spec, 0, 1);
    assert.equal(check.allowed, false);
    assert.equal(check.retryAfterMs, 41_000);
    now += 41_000;
    assert.equal((await buckets.take('t', spec, 0, 1)).allowed, true);
  });
  it('formats durations as OpenAI does', () => {
    assert.equal(formatDuration(20), '20ms');
    assert.equal(formatDuration(1_500), '1.5s');
    assert.equal(formatDuration(360_000), '6m0s');
  });
});

describe('admission gate', () => {
  it('runs the limit, queues a few, and refuses the rest at once with 503', async () => {
    const gate = new AdmissionGate('search', { concurrency: 2, queueLength: 1, queueTimeoutMs: 10_000 });
    const first = await gate.acquire();
    await gate.acquire();
    const queued = gate.acquire();
    await assert.rejects(gate.acquire(), (err: { code: string; statusCode: number; retryAfterSeconds: number }) => err.code === 'RAGWAY_ERR_SATURATED' && err.statusCode === 503 && err.retryAfterSeconds === 1);
    first();
    first(); // a second release of the same slot is ignored
    const third = await queued;
    assert.equal(gate.active, 2);
    third();
    assert.equal(gate.active, 1);
  });
  it('gives up on a queued request at the queue timeout and when it is aborted', async () => {
    const gate = new AdmissionGate('ingest', { concurrency: 1, queueLength: 5, queueTimeoutMs: 20 });
    await gate.acquire();
    await assert.rejects(gate.acquire(), { code: 'RAGWAY_ERR_SATURATED' });
    const controller = new AbortController();
    const waiting = gate.acquire(controller.signal);
    controller.abort();
    await assert.rejects(waiting, { code: 'RAGWAY_ERR_CLIENT_CLOSED' });
    assert.equal(gate.queued, 0);
  });
});

describe('keys file', () => {
  it('stores digests only, finds keys by id, refuses duplicates and revokes by name', () => {
    const file: KeysFile = { version: 1, keys: [] };
    const { key, entry } = addKey(file, { name: 'a', scopes: ['read'], namespaces: ['a'], limits: { requests_per_second: 5 } });
    assert.equal(keyIdOf(key), entry.id);
    assert.equal(entry.hash, hashSecret(key));
    assert.ok(!JSON.stringify(file).includes(key));
    assert.throws(() => addKey(file, { name: 'a', scopes: ['read'], namespaces: ['a'], limits: {} }), /already exists/);
    const parsed = parseKeysFile(JSON.stringify(file), 'keys.json');
    assert.equal(parsed.keys.length, 1);
    revokeKey(parsed, 'a');
    assert.ok(parsed.keys[0]?.revoked_at);
    assert.throws(() => revokeKey(parsed, 'a'), /no active key/);
    assert.throws(() => parseKeysFile('{"version":1,"keys":[{"id":"zz"}]}', 'k.json'), /k\.json/);
  });
  it('compares secrets in constant time and knows loopback', () => {
    assert.ok(safeEqual('abc', 'abc'));
    assert.ok(!safeEqual('abc', 'abd'));
    for (const host of ['127.0.0.1', 'localhost', '::1', '[::1]', '127.1.2.3']) assert.ok(isLoopbackHost(host), host);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com']) assert.ok(!isLoopbackHost(host), host);
  });
});

describe('adaptive admission limit', () => {
  it('grows while latency stays near the floor and the limit is in use, shrinks once it passes the tolerance', () => {
    const limit = new AdaptiveLimit({ minConcurrency: 2, tolerance: 2 }, 40);
    assert.equal(limit.value, 2);
    for (let i = 0; i < 400; i += 1) limit.observe(10 + (i % 3), true);
    const grown = limit.value;
    assert.ok(grown > 10, `grew to ${grown}`);
    // Not in use: no reason to grow.
    for (let i = 0; i < 400; i += 1) limit.observe(10, false);
    assert.equal(limit.value, grown);
    // Queueing inside: latency 5x the floor; the limit falls back to its floor, not below.
    for (let i = 0; i < 2_000; i += 1) limit.observe(50, true);
    assert.equal(limit.value, 2);
    // The ceiling holds however long latency stays low.
    for (let i = 0; i < 20_000; i += 1) limit.observe(10, true);
    assert.ok(limit.value <= 40 && limit.value >= 39, `at ${limit.value}`);
  });

  it('a gate with a shrunk limit takes slots back and refuses early once its queue is full', async () => {
    const gate = new AdmissionGate('search', { concurrency: 8, queueLength: 1, queueTimeoutMs: 10_000, adaptive: { minConcurrency: 1, tolerance: 2 } });
    assert.equal(gate.limit, 1);
    const first = await gate.acquire();
    const queued = gate.acquire();
    assert.equal(gate.full, true);
    assert.equal((gate.refuse() as { code?: string }).code, 'RAGWAY_ERR_SATURATED');
    first(false);
    const second = await queued;
    assert.equal(gate.active, 1);
    second(false);
    assert.equal(gate.active, 0);
    assert.equal(gate.full, false);
  });
});
