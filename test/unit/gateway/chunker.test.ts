import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chunkText, splitUnits } from '../../../gateway/chunker.js';

const countWords = (text: string): number => text.split(/\s+/).filter((w) => w !== '').length;

describe('splitUnits', () => {
  const cases: [string, string, string[]][] = [
    ['sentences', 'One two. Three four! Five?', ['One two.', 'Three four!', 'Five?']],
    ['paragraphs', 'First para\ncontinues.\n\nSecond.', ['First para continues.', 'Second.']],
    ['headings and lists stand alone', '# Title\n- item one\n- item two\nText after.', ['# Title', '- item one', '- item two', 'Text after.']],
    ['code fences keep lines, drop fences', '```js\nconst a = 1;\n```\nDone.', ['const a = 1;', 'Done.']],
    ['CRLF', 'A.\r\n\r\nB.', ['A.', 'B.']],
    ['empty', '  \n\n ', []],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => assert.deepEqual(splitUnits(input), expected));
  }
});

describe('chunkText', () => {
  const options = { sizeTokens: 10, overlapTokens: 4, countTokens: countWords };

  it('keeps a short text whole', () => {
    assert.deepEqual(chunkText('A short text.', options), ['A short text.']);
  });

  it('never exceeds the size and overlaps by whole sentences', () => {
    const text = 'a b c. d e f. g h i. j k l. m n o. p q r.';
    const chunks = chunkText(text, options);
    assert.ok(chunks.length > 1);
    for (const chunk of chunks) assert.ok(countWords(chunk) <= 10, chunk);
    for (let i = 1; i < chunks.length; i += 1) {
      const previousLast = (chunks[i - 1] as string).split('. ').at(-1) as string;
      assert.ok((chunks[i] as string).startsWith(previousLast.replace(/\.$/, '')), 'next chunk starts with the overlap');
    }
    // Every sentence appears somewhere.
    for (const sentence of ['a b c.', 'p q r.']) assert.ok(chunks.some((c) => c.includes(sentence)));
  });

  it('splits a sentence longer than the size at word boundaries', () => {
    const long = Array.from({ length: 25 }, (_, i) => `w${i}`).join(' ');
    const chunks = chunkText(long, { ...options, overlapTokens: 0 });
    assert.deepEqual(chunks.map(countWords), [10, 10, 5]);
    assert.equal(chunks.join(' '), long);
  });

  it('cuts a single enormous token by characters', () => {
    const blob = 'x'.repeat(100);
    const chunks = chunkText(blob, { sizeTokens: 10, overlapTokens: 0, countTokens: (t) => Math.ceil(t.length / 5) });
    assert.equal(chunks.join(''), blob);
    assert.ok(chunks.every((c) => Math.ceil(c.length / 5) <= 10));
  });

  it('rejects overlap ≥ size', () => {
    assert.throws(() => chunkText('x', { sizeTokens: 4, overlapTokens: 4, countTokens: countWords }), RangeError);
  });

  it('returns nothing for whitespace', () => {
    assert.deepEqual(chunkText(' \n ', options), []);
  });
});
