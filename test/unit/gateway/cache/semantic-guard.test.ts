// guardDifference, rule by rule: each rule must fire on the difference it exists for and stay
// quiet on rewordings that keep the meaning (case, punctuation, word order, spelling of names).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GUARD_RULE_NAMES, guardDifference } from '../../../../gateway/cache/semantic-guard.js';

/** [rule expected to object, a, b] */
const DIFFERENT: readonly [string, string, string][] = [
  // negation
  ['negation', 'How do I cache responses with a TTL?', 'How do I cache responses without a TTL?'],
  ['negation', 'Does pino support transports?', "Doesn't pino support transports?"],
  ['negation', 'Can I import ESM from CommonJS?', 'Why can’t I import ESM from CommonJS?'],
  ['negation', 'Is lru-cache thread-safe?', 'Is lru-cache not thread-safe?'],
  ['negation', 'Does the cache return stale entries?', 'Does the cache never return stale entries?'],
  ['negation', 'How do I use non-blocking I/O?', 'How do I use blocking I/O?'],
  ['negation', 'Which options are required except ttl?', 'Which options are required?'],
  ['negation', 'I cannot set a TTL on the cache', 'I can set a TTL on the cache'],
  // numbers
  ['numbers', 'What changed in lru-cache v10?', 'What changed in lru-cache v11?'],
  ['numbers', 'How do I retry three times?', 'How do I retry 2 times?'],
  ['numbers', 'How do I upgrade to 1.2.3?', 'How do I upgrade to 1.2.4?'],
  ['numbers', 'What is new in TypeScript 5.0?', 'What is new in TypeScript 5.1?'],
  ['numbers', 'Does Node 18 ship fetch?', 'Does Node 16 ship fetch?'],
  ['numbers', 'Which embedding model has 384 dimensions?', 'Which embedding model has 768 dimensions?'],
  ['numbers', 'Why does my request time out after 30 seconds?', 'Why does my request time out after 60 seconds?'],
  ['numbers', 'What changed in 2023?', 'What changed in 2024?'],
  // names, identifiers, quoted strings
  ['names', 'How do I set maxSize?', 'How do I set maxEntrySize?'],
  ['names', 'How do I use fs.readFile?', 'How do I use fs.readFileSync?'],
  ['names', 'How do I set NODE_ENV?', 'How do I set NODE_OPTIONS?'],
  ['names', 'How do I install lru-cache?', 'How do I install quick-lru?'],
  ['names', 'Does Redis support TTLs?', 'Does Memcached support TTLs?'],
  ['names', 'What does "ECONNRESET" mean?', 'What does "ECONNREFUSED" mean?'],
  ['names', "Why do I get 'Cannot find module'?", "Why do I get 'Cannot find package'?"],
  ['names', 'How do I parse YAML in Node?', 'How do I parse TOML in Node?'],
  ['names', 'How do I set a TTL in lru-cache?', 'How do I set a TTL?'],
  // opposites
  ['opposites', 'Does onRequest run before validation?', 'Does onRequest run after validation?'],
  ['opposites', 'How do I increase the heap size?', 'How do I decrease the heap size?'],
  ['opposites', 'How do I raise the timeout?', 'How do I lower the timeout?'],
  ['opposites', 'How do I enable source maps?', 'How do I disable source maps?'],
  ['opposites', 'How do I turn on logging?', 'How do I turn off logging?'],
  ['opposites', 'How do I add a header to a request?', 'How do I remove a header from a request?'],
  ['opposites', 'How do I get the first item?', 'How do I get the last item?'],
  ['opposites', 'How do I set the max pool size?', 'How do I set the min pool size?'],
  ['opposites', 'How do I find the largest file?', 'How do I find the smallest file?'],
  ['opposites', 'How do I sort ascending?', 'How do I sort descending?'],
  ['opposites', 'How do I get a value from the cache?', 'How do I set a value in the cache?'],
  ['opposites', 'How do I read and write files?', 'How do I write files?'],
  // reversing prefixes
  ['reversal', 'How do I subscribe to events?', 'How do I unsubscribe from events?'],
  ['reversal', 'How do I serialize a Map?', 'How do I deserialize a Map?'],
  ['reversal', 'Why is my schema valid?', 'Why is my schema invalid?'],
  ['reversal', 'How do I mount the volume?', 'How do I unmount the volume?'],
  // swapped roles (invisible to a bag-of-words model)
  ['swapped roles', 'How do I convert JSON to YAML?', 'How do I convert YAML to JSON?'],
  ['swapped roles', 'Is pino faster than winston?', 'Is winston faster than pino?'],
  ['swapped roles', 'How do I copy a file from src into dist?', 'How do I copy a file from dist into src?'],
  // question intent
  ['question intent', 'How does lru-cache evict entries?', 'Why does lru-cache evict entries?'],
  ['question intent', 'When does the stream emit end?', 'How does the stream emit end?'],
  // one content word swapped in an otherwise identical question
  ['single-word swap', 'How do I validate JSON with ajv?', 'How do I validate JSON with zod?'],
  ['single-word swap', 'How do I set a timeout in axios?', 'How do I set a timeout in got?'],
  ['single-word swap', 'How do I log requests?', 'How do I log errors?'],
  ['single-word swap', 'How do I change the timeout?', 'How do I increase the timeout?'],
  // the rule's known cost: a one-word synonym is a miss too
  ['single-word swap', 'How do I stream a big file?', 'How do I stream a large file?'],
];

/** [why the guard must stay quiet, a, b] */
const SAME: readonly [string, string, string][] = [
  ['identical', 'How do I parse JSON?', 'How do I parse JSON?'],
  ['case and punctuation', 'How do I enable CORS in Express?', 'how do i enable cors in express'],
  ['all capitals', 'HOW DO I ENABLE CORS IN FASTIFY', 'how do i enable cors in fastify?'],
  ['phrase moved to the front', 'How do I set a TTL in lru-cache?', 'lru-cache: how do I set a TTL?'],
  ['moved phrase with a preposition', 'How to convert a string to a number in JavaScript?', 'In JavaScript, how to convert a string to a number?'],
  ['prepositional phrases reordered', 'How do I migrate from Jest to Vitest?', 'How do I migrate to Vitest from Jest?'],
  ['filler words', 'Hey, how do I flush pino?', 'How do I flush pino?'],
  ['auxiliary swapped', 'How do I set a TTL in lru-cache?', 'How can I set a TTL in lru-cache?'],
  ['preposition swapped', 'How do I enable gzip in Fastify?', 'How do I enable gzip for Fastify?'],
  ['plural', 'How do I read a file?', 'How do I read files?'],
  ['"with no" is "without"', 'How do I build a cache without a TTL?', 'How do I build a cache with no TTL?'],
  ['"or not" negates nothing', 'Is undici faster than node-fetch or not?', 'Is undici faster than node-fetch?'],
  ['number word and digit', 'How do I retry two times?', 'How do I retry 2 times?'],
  ['same numbers, other order', 'Which Node version added fetch, 18 or 20?', 'Which Node version added fetch: 20 or 18?'],
  ['thousands separator', 'Set a limit of 1,000 entries', 'Set a limit of 1000 entries'],
  ['leading zero', 'Is draft-07 supported?', 'Is draft 7 supported?'],
  ['"one" as an article', 'How do I read a file one line at a time?', 'How do I read a file line by line?'],
  ['hyphen or space', 'How do I use a built-in module?', 'How do I use a built in module?'],
  ['Node.js is Node', 'What does Node.js do on SIGTERM?', 'What does Node do on SIGTERM?'],
  ['backticks', 'How do I use `maxSize`?', 'How do I use maxSize?'],
  ['quotes', 'What does the error "socket hang up" mean?', 'What does the error socket hang up mean?'],
  ['possessive', "How do I change pino's log level?", 'How do I change the pino log level?'],
  ['synonyms on one side of an opposite', 'How do I increase the timeout?', 'How do I raise the timeout?'],
  ['synonyms on one side of an opposite', 'How do I delete a key?', 'How do I remove a key?'],
  ['turn on is enable', 'How do I enable gzip compression?', 'How do I turn on gzip compression?'],
  ['to and into', 'How do I convert a Buffer to a string?', 'How do I turn a Buffer into a string?'],
  ['no question word on one side', "What's the best way to set a TTL?", 'How do I set a TTL?'],
  ['same side, different words', 'How do I make the timeout longer?', 'How can I increase the timeout?'],
  ['several words reworded', 'How do I mock fetch in Jest tests?', 'How can I mock fetch inside Jest tests?'],
];

describe('guardDifference', () => {
  describe('objects when the meaning likely differs', () => {
    for (const [rule, a, b] of DIFFERENT) {
      it(`${rule}: ${a} / ${b}`, () => {
        const reason = guardDifference(a, b);
        assert.ok(reason !== undefined, 'expected a reason');
        assert.ok(reason.startsWith(`${rule}:`), `expected rule "${rule}", got "${reason}"`);
      });
    }
  });

  describe('stays quiet when only the wording differs', () => {
    for (const [why, a, b] of SAME) {
      it(`${why}: ${a} / ${b}`, () => assert.equal(guardDifference(a, b), undefined));
    }
  });

  it('is symmetric', () => {
    for (const [, a, b] of [...DIFFERENT, ...SAME]) {
      assert.equal(guardDifference(a, b) === undefined, guardDifference(b, a) === undefined, `${a} / ${b}`);
    }
  });

  it('has a test for every rule', () => {
    assert.deepEqual(new Set(DIFFERENT.map(([rule]) => rule)), new Set(GUARD_RULE_NAMES));
  });

  it('handles empty and punctuation-only text', () => {
    assert.equal(guardDifference('', ''), undefined);
    assert.equal(guardDifference('???', '!'), undefined);
    assert.match(guardDifference('', 'not') ?? '', /^negation:/);
  });
});
