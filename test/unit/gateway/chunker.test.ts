import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chunkDocument, chunkText, splitUnits } from '../../../gateway/chunker.js';
import { parseBlocks } from '../../../gateway/markdown-blocks.js';

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

describe('parseBlocks', () => {
  it('recognises ATX and setext headings, fences, lists, tables and indented code', () => {
    const blocks = parseBlocks(
      'Title\n=====\n\nIntro text\non two lines.\n\n## Use it ##\n\n```js\n# not a heading\n\nconst a = 1;\n```\n\n- one\n- two\n\n  still two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n    indented();\n\n***\nAfter the rule.',
    );
    assert.deepEqual(
      blocks.map((block) => [block.kind, block.title ?? block.lines.length]),
      [
        ['heading', 'Title'],
        ['paragraph', 2],
        ['heading', 'Use it'],
        ['code', 5],
        ['list', 4],
        ['table', 3],
        ['code', 1],
        ['paragraph', 1],
      ],
    );
  });

  it('runs an unclosed fence to the end of the document', () => {
    const blocks = parseBlocks('```\ncode\n# still code');
    assert.deepEqual(blocks.map((block) => block.kind), ['code']);
  });

  it('strips link and emphasis markup from heading titles', () => {
    assert.equal(parseBlocks('### The [`max`](#max) **option**')[0]?.title, 'The `max` option');
  });
});

// A README the way packages write them: a title, prose, install and usage code, an options list.
const README = `# tiny-cache

A small cache for Node.js. It keeps the most recently used entries and drops the rest.

## Install

\`\`\`sh
npm install tiny-cache
\`\`\`

## Usage

Create a cache and store values in it. Entries expire after their time to live.

\`\`\`js
import { TinyCache } from 'tiny-cache';

const cache = new TinyCache({ max: 500, ttl: 60000 });
cache.set('key', 'value');
\`\`\`

### Options

- \`max\`: the most entries kept
- \`ttl\`: how long an entry lives, in milliseconds
  (entries are checked lazily on read)
- \`dispose\`: called when an entry leaves

## License

MIT
`;

describe('chunkDocument on README-like Markdown', () => {
  const options = { sizeTokens: 40, overlapTokens: 8, countTokens: countWords };
  const chunks = chunkDocument(README, options);

  it('keeps each code block whole, fences and newlines included', () => {
    const usage = "```js\nimport { TinyCache } from 'tiny-cache';\n\nconst cache = new TinyCache({ max: 500, ttl: 60000 });\ncache.set('key', 'value');\n```";
    const holding = chunks.filter((chunk) => chunk.text.includes('new TinyCache'));
    assert.equal(holding.length, 1, 'the usage example is in exactly one chunk');
    assert.ok(holding[0]?.text.includes(usage), holding[0]?.text);
    assert.ok(chunks.some((chunk) => chunk.text.includes('```sh\nnpm install tiny-cache\n```')));
  });

  it('keeps a list whole, with its continuation line', () => {
    const list = chunks.filter((chunk) => chunk.text.includes('`max`: the most entries kept'));
    assert.equal(list.length, 1);
    assert.ok(list[0]?.text.includes('- `ttl`: how long an entry lives, in milliseconds\n  (entries are checked lazily on read)\n- `dispose`'));
  });

  it('records the heading path of every chunk and prepends it for embedding', () => {
    const byText = (needle: string) => chunks.find((chunk) => chunk.text.includes(needle));
    assert.deepEqual(byText('npm install tiny-cache')?.headingPath, ['tiny-cache', 'Install']);
    assert.deepEqual(byText('new TinyCache')?.headingPath, ['tiny-cache', 'Usage']);
    assert.deepEqual(byText('`dispose`')?.headingPath, ['tiny-cache', 'Usage', 'Options']);
    assert.deepEqual(byText('MIT')?.headingPath, ['tiny-cache', 'License']);
    const options = byText('`dispose`');
    // The chunk opens with its own "### Options" heading, so the context line names the sections above it.
    assert.ok(options?.text.startsWith('### Options'), options?.text);
    assert.ok(options?.embedText.startsWith('tiny-cache > Usage\n\n### Options'), options?.embedText);
  });

  it('never cuts a section in two when it fits, and stays within the budget', () => {
    for (const chunk of chunks) assert.ok(countWords(chunk.text) <= options.sizeTokens, chunk.text);
    assert.ok(chunks.every((chunk) => chunk.split === undefined));
    // Every line of the document is in some chunk, as written.
    for (const line of README.split('\n').filter((l) => l.trim() !== '')) {
      assert.ok(chunks.some((chunk) => chunk.text.split('\n').includes(line)), `lost line: ${line}`);
    }
  });

  it('starts a new chunk at a heading once the section before it has text of its own', () => {
    assert.ok(chunks.some((chunk) => chunk.text.startsWith('## License')));
    assert.ok(chunks.some((chunk) => chunk.text.startsWith('## Usage')));
  });
});

describe('chunkDocument with blocks bigger than the budget', () => {
  const options = { sizeTokens: 20, overlapTokens: 0, countTokens: countWords };

  it('splits a long code block at line boundaries, re-fencing each piece, and says so', () => {
    const lines = Array.from({ length: 30 }, (_, i) => `call(${i}, 'a b');`);
    const text = `# API\n\n\`\`\`js\n${lines.join('\n')}\n\`\`\``;
    const chunks = chunkDocument(text, options).filter((chunk) => chunk.split !== undefined);
    assert.ok(chunks.length >= 3, `${chunks.length} pieces`);
    chunks.forEach((chunk, index) => {
      assert.deepEqual(chunk.split, { kind: 'code', part: index + 1, parts: chunks.length });
      // The first piece shares its chunk with the "# API" heading above it.
      assert.match(chunk.text, index === 0 ? /^# API\n\n```js\ncall/ : /^```js\ncall/);
      assert.ok(chunk.text.endsWith(');\n```'), chunk.text);
      assert.ok(countWords(chunk.text) <= options.sizeTokens);
      assert.equal(chunk.cutLine, undefined);
      assert.deepEqual(chunk.headingPath, ['API']);
    });
    // Each original line is whole in exactly one piece, in order.
    const seen = chunks.flatMap((chunk) => chunk.text.split('\n').filter((line) => line.startsWith('call(')));
    assert.deepEqual(seen, lines);
  });

  it('splits a long list between items, not inside one', () => {
    const items = Array.from({ length: 12 }, (_, i) => `- item ${i} has\n  two lines`);
    const chunks = chunkDocument(items.join('\n'), options);
    assert.ok(chunks.length > 1);
    for (const chunk of chunks) {
      assert.equal(chunk.split?.kind, 'list');
      assert.match(chunk.text, /^- item \d+ has\n {2}two lines(\n- item \d+ has\n {2}two lines)*$/);
    }
  });

  it('repeats a long table\'s header in every piece, its delimiter row shortened', () => {
    const rows = Array.from({ length: 20 }, (_, i) => `| r${i} | v |`);
    const chunks = chunkDocument(`| name | value |\n|-----------|:---------:|\n${rows.join('\n')}`, { ...options, sizeTokens: 40 });
    assert.ok(chunks.length > 1);
    for (const chunk of chunks) assert.ok(chunk.text.startsWith('| name | value |\n| --- | :---: |\n| r'), chunk.text);
  });

  it('cuts inside a line only when the line alone is over the budget, and marks it', () => {
    const long = Array.from({ length: 50 }, (_, i) => `w${i}`).join(' ');
    const chunks = chunkDocument(`\`\`\`\nshort();\n${long}\n\`\`\``, options);
    assert.ok(chunks.some((chunk) => chunk.cutLine === true));
    assert.ok(chunks.every((chunk) => countWords(chunk.text) <= options.sizeTokens));
    assert.equal(chunks.map((chunk) => chunk.text.replace(/```\n?/g, '').trim()).join(' ').replace(/\s+/g, ' '), `short(); ${long}`);
  });
});

describe('chunkText', () => {
  const options = { sizeTokens: 10, overlapTokens: 4, countTokens: countWords };

  it('keeps a short text whole', () => {
    assert.deepEqual(chunkText('A short text.', options), ['A short text.']);
  });

  it('keeps newlines inside a paragraph', () => {
    assert.deepEqual(chunkText('Line one\nline two.', options), ['Line one\nline two.']);
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
    for (const sentence of ['a b c.', 'p q r.']) assert.ok(chunks.some((c) => c.includes(sentence)));
  });

  it('does not carry overlap across a heading', () => {
    const chunks = chunkDocument('# A\n\none two three. four five six.\n\n# B\n\nseven eight nine.', { sizeTokens: 10, overlapTokens: 4, countTokens: countWords });
    const b = chunks.find((chunk) => chunk.text.includes('seven'));
    assert.ok(b?.text.startsWith('# B'), b?.text);
    assert.deepEqual(b?.headingPath, ['B']);
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
