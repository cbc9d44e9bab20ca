import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildPrompt,
  checkCitations,
  DEFAULT_SYSTEM_TEMPLATE,
  PROMPT_TEMPLATE_VERSION,
} from '../../../../gateway/generation/prompt.js';
import type { BuildPromptOptions } from '../../../../gateway/generation/prompt.js';
import type { ChatMessage, Source } from '../../../../gateway/providers/provider.js';

const countWords = (text: string): number => text.split(/\s+/).filter((w) => w !== '').length;

function source(index: number, words: number, documentId = `doc-${index}`): Source {
  const text = Array.from({ length: words }, (_, i) => `s${index}w${i}`).join(' ');
  return { index, id: `${documentId}#0`, document_id: documentId, text, score: 1 / index, metadata: {} };
}

function build(overrides: Partial<BuildPromptOptions>): ReturnType<typeof buildPrompt> {
  return buildPrompt({
    question: 'What is it?',
    history: [],
    sources: [],
    systemTemplate: DEFAULT_SYSTEM_TEMPLATE,
    contextBudgetTokens: 1_000,
    countTokens: countWords,
    ...overrides,
  });
}

function systemOf(result: ReturnType<typeof buildPrompt>): string {
  const first = result.messages[0];
  assert.equal(first?.role, 'system');
  return first.content;
}

describe('buildPrompt: budget', () => {
  // A block "[n] (doc-n)\n<words>" costs words + 2 with the word counter; separators cost 0.
  const cases: { name: string; sizes: number[]; budget: number; kept: number[]; dropped: number; tokens: number }[] = [
    { name: 'everything fits', sizes: [3, 3, 3], budget: 100, kept: [1, 2, 3], dropped: 0, tokens: 15 },
    { name: 'exactly at the budget', sizes: [3, 3], budget: 10, kept: [1, 2], dropped: 0, tokens: 10 },
    { name: 'one over the budget drops the whole chunk', sizes: [3, 4], budget: 10, kept: [1], dropped: 1, tokens: 5 },
    { name: 'a chunk alone bigger than the budget is dropped', sizes: [50], budget: 10, kept: [], dropped: 1, tokens: 0 },
    { name: 'a big chunk is skipped, smaller later ones still fit', sizes: [3, 50, 3, 2], budget: 15, kept: [1, 3, 4], dropped: 1, tokens: 14 },
    { name: 'zero budget keeps nothing', sizes: [1, 1], budget: 0, kept: [], dropped: 2, tokens: 0 },
    { name: 'no sources', sizes: [], budget: 10, kept: [], dropped: 0, tokens: 0 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const sources = c.sizes.map((size, i) => source(i + 1, size));
      const result = build({ sources, contextBudgetTokens: c.budget });
      assert.deepEqual(result.sources.map((s) => s.id), c.kept.map((n) => `doc-${n}#0`));
      assert.equal(result.droppedSources, c.dropped);
      assert.equal(result.contextTokens, c.tokens);
      assert.ok(result.contextTokens <= c.budget);
      // Whole chunks only: every kept text is in the prompt verbatim, no dropped one at all.
      const system = systemOf(result);
      for (const kept of result.sources) assert.ok(system.includes(kept.text));
      for (const s of sources) if (!result.sources.some((k) => k.id === s.id)) assert.ok(!system.includes(s.text));
    });
  }

  it('counts separators between blocks when the tokenizer sees them', () => {
    const countChars = (text: string): number => text.length;
    const sources = [source(1, 1), source(2, 1)];
    const block = (n: number): string => `[${n}] (doc-${n})\ns${n}w0`;
    const exact = block(1).length + 2 + block(2).length;
    assert.equal(build({ sources, countTokens: countChars, contextBudgetTokens: exact }).droppedSources, 0);
    assert.equal(build({ sources, countTokens: countChars, contextBudgetTokens: exact - 1 }).droppedSources, 1);
  });
});

describe('buildPrompt: layout', () => {
  it('renumbers the kept sources 1..n in order and cites them by those numbers', () => {
    const sources = [source(1, 3, 'a'), source(2, 50, 'b'), source(3, 3, 'c'), source(4, 3, 'd')];
    const result = build({ sources, contextBudgetTokens: 15 });
    assert.deepEqual(
      result.sources.map((s) => [s.index, s.document_id]),
      [[1, 'a'], [2, 'c'], [3, 'd']],
    );
    const system = systemOf(result);
    assert.ok(system.includes(`[1] (a)\n${sources[0]?.text}`));
    assert.ok(system.includes(`[2] (c)\n${sources[2]?.text}`));
    assert.ok(system.includes(`[3] (d)\n${sources[3]?.text}`));
    assert.ok(system.indexOf('[1] (a)') < system.indexOf('[2] (c)'));
    assert.ok(!system.includes('(b)'));
    // The input is not mutated: the caller's numbering stays as retrieved.
    assert.deepEqual(sources.map((s) => s.index), [1, 2, 3, 4]);
  });

  it('says how many sources were dropped, and nothing when none were', () => {
    const sources = [source(1, 3), source(2, 50), source(3, 50)];
    assert.match(systemOf(build({ sources, contextBudgetTokens: 10 })), /2 more sources matched but were left out/);
    assert.match(systemOf(build({ sources: sources.slice(0, 2), contextBudgetTokens: 10 })), /1 more source matched but was left out/);
    assert.doesNotMatch(systemOf(build({ sources: sources.slice(0, 1) })), /left out/);
  });

  it('adds the partial coverage line only when coverage is partial', () => {
    const sources = [source(1, 3)];
    assert.match(systemOf(build({ sources, partialCoverage: true })), /did not answer.*may be incomplete/);
    assert.doesNotMatch(systemOf(build({ sources, partialCoverage: false })), /incomplete/);
    assert.doesNotMatch(systemOf(build({ sources })), /incomplete/);
  });

  it('the default template asks for answers from the sources only, with [n] citations, or "don\'t know"', () => {
    const system = systemOf(build({ sources: [source(1, 2)] }));
    assert.match(system, /only the numbered sources/);
    assert.match(system, /\[1\]/);
    assert.match(system, /don't know/);
    assert.doesNotMatch(system, /\{(sources|dropped|coverage)\}/);
    assert.doesNotMatch(system, /\n{3,}/);
    assert.equal(typeof PROMPT_TEMPLATE_VERSION, 'string');
    assert.ok(PROMPT_TEMPLATE_VERSION.length > 0);
  });

  it('tells the model when there are no sources at all', () => {
    assert.match(systemOf(build({ sources: [] })), /no sources were found/);
  });

  it('fills a custom template, appending the notes it has no placeholder for', () => {
    const result = build({
      systemTemplate: 'Use these:\n{sources}\nEnd.',
      sources: [source(1, 2), source(2, 50)],
      contextBudgetTokens: 10,
      partialCoverage: true,
    });
    const system = systemOf(result);
    assert.ok(system.startsWith('Use these:\n[1] (doc-1)\ns1w0 s1w1\nEnd.'));
    assert.match(system, /1 more source matched/);
    assert.match(system, /may be incomplete/);
    assert.ok(system.indexOf('End.') < system.indexOf('1 more source'));
  });

  it('appends the sources to a template without {sources}', () => {
    const system = systemOf(build({ systemTemplate: 'Be brief.', sources: [source(1, 2)] }));
    assert.equal(system, 'Be brief.\n\n[1] (doc-1)\ns1w0 s1w1');
  });

  it('keeps history in order, client system messages right after ragway\'s, the question last', () => {
    const history: ChatMessage[] = [
      { role: 'user', content: 'first question' },
      { role: 'system', content: 'client rule A' },
      { role: 'assistant', content: 'first answer' },
      { role: 'system', content: 'client rule B' },
      { role: 'user', content: 'second question' },
      { role: 'assistant', content: 'second answer' },
    ];
    const result = build({ history, question: 'third question', sources: [source(1, 2)] });
    assert.deepEqual(
      result.messages.slice(1),
      [
        { role: 'system', content: 'client rule A' },
        { role: 'system', content: 'client rule B' },
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'first answer' },
        { role: 'user', content: 'second question' },
        { role: 'assistant', content: 'second answer' },
        { role: 'user', content: 'third question' },
      ],
    );
    assert.equal(result.messages[0]?.role, 'system');
    assert.ok(result.messages[0]?.content.includes('[1] (doc-1)'));
  });
});

describe('checkCitations', () => {
  const cases: { name: string; answer: string; sources: number; cited: number[]; invalid: number[] }[] = [
    { name: 'single', answer: 'Entries live five minutes [1].', sources: 3, cited: [1], invalid: [] },
    { name: 'first-appearance order, unique', answer: 'A [2]. B [1]. C [2].', sources: 3, cited: [2, 1], invalid: [] },
    { name: 'comma list with spaces', answer: 'A [1, 3].', sources: 3, cited: [1, 3], invalid: [] },
    { name: 'semicolon list', answer: 'A [3; 1].', sources: 3, cited: [3, 1], invalid: [] },
    { name: 'spaces inside the brackets', answer: 'A [ 2 ].', sources: 3, cited: [2], invalid: [] },
    { name: 'adjacent markers', answer: 'A [1][2].', sources: 3, cited: [1, 2], invalid: [] },
    { name: 'range expands', answer: 'A [1-3].', sources: 3, cited: [1, 2, 3], invalid: [] },
    { name: 'en-dash range', answer: 'A [2–3].', sources: 3, cited: [2, 3], invalid: [] },
    { name: 'range partly beyond the sources', answer: 'A [2-4].', sources: 3, cited: [2, 3], invalid: [4] },
    { name: 'reversed range is not a citation', answer: 'A [3-1].', sources: 3, cited: [], invalid: [] },
    { name: 'year span is not a citation', answer: 'From [2019-2024] it grew.', sources: 3, cited: [], invalid: [] },
    { name: 'a bracketed year is not a citation', answer: 'In [2024] it grew [1].', sources: 3, cited: [1], invalid: [] },
    { name: 'too wide a range is not a citation', answer: 'Items [1-500] are listed.', sources: 3, cited: [], invalid: [] },
    { name: 'number beyond the sources', answer: 'A [4]. B [1].', sources: 3, cited: [1], invalid: [4] },
    { name: 'zero is invalid', answer: 'A [0].', sources: 3, cited: [], invalid: [0] },
    { name: 'invalid ones unique, in order', answer: 'A [9] [5] [9].', sources: 3, cited: [], invalid: [9, 5] },
    { name: 'no sources: every marker is invalid', answer: 'A [1].', sources: 0, cited: [], invalid: [1] },
    { name: 'array index after an identifier', answer: 'Use arr[0] and x[2] here.', sources: 3, cited: [], invalid: [] },
    { name: 'index after a non-ASCII identifier', answer: 'größe[1] stays.', sources: 3, cited: [], invalid: [] },
    { name: 'markdown link text', answer: 'See [1](https://example.com).', sources: 3, cited: [], invalid: [] },
    { name: 'markdown link with words', answer: 'See [the docs](https://x.dev) [2].', sources: 3, cited: [2], invalid: [] },
    { name: 'reference definition', answer: 'Text [1].\n[2]: https://example.com', sources: 3, cited: [1], invalid: [] },
    { name: 'footnote', answer: 'Text[^1] and more.', sources: 3, cited: [], invalid: [] },
    { name: 'inline code', answer: 'Call `list[3]` or `[4]` then [1].', sources: 3, cited: [1], invalid: [] },
    { name: 'fenced code', answer: 'Do this [2]:\n```js\nconst a = [1];\nb = [3]\n```\nDone [1].', sources: 3, cited: [2, 1], invalid: [] },
    { name: 'unclosed fence hides the rest', answer: 'Do [1]:\n```\nx = [2]', sources: 3, cited: [1], invalid: [] },
    { name: 'after punctuation and at the start', answer: '[1] says so.(see [2])', sources: 3, cited: [1, 2], invalid: [] },
    { name: 'words in brackets are not citations', answer: 'A [citation needed] and [a, b].', sources: 3, cited: [], invalid: [] },
    { name: 'no citations', answer: "I don't know.", sources: 3, cited: [], invalid: [] },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(checkCitations(c.answer, c.sources), { cited: c.cited, invalid: c.invalid }));
  }
});
