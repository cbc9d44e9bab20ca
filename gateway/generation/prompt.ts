// Prompt assembly for grounded answers, and the check of what an answer cites. Pure: token
// counts come from an injected counter, so the same code budgets for the embedding model's
// tokenizer in tests and for an upstream LLM's (or an estimate of it) in production.
import type { ChatMessage, Source } from '../providers/provider.js';

/**
 * Changes whenever the default template or the way sources are laid out changes, so a cache
 * of answers keyed on it never replays an answer produced from a different prompt. (A cache
 * must also key on the template text itself when an operator configures their own.)
 */
export const PROMPT_TEMPLATE_VERSION = 'ragway-prompt-v1';

/**
 * Placeholders: `{sources}` — the numbered source blocks; `{dropped}` — a line saying how many
 * sources were left out for budget (empty when none); `{coverage}` — a line warning that some
 * shards did not answer (empty when all did). A template without `{dropped}` or `{coverage}`
 * gets those lines appended when they have something to say; one without `{sources}` gets the
 * sources appended, since a grounded prompt without its sources would be worse than useless.
 */
export const DEFAULT_SYSTEM_TEMPLATE = [
  'You answer questions using only the numbered sources below. Do not use outside knowledge.',
  'Cite the sources that support each statement inline with their numbers in square brackets, like [1] or [2][3].',
  "If the sources do not contain the answer, say that you don't know instead of guessing.",
  '',
  'Sources:',
  '',
  '{sources}',
  '',
  '{dropped}',
  '{coverage}',
].join('\n');

const SOURCE_SEPARATOR = '\n\n';
const NO_SOURCES_TEXT = '(no sources were found for this question)';
const PARTIAL_COVERAGE_TEXT =
  'Note: some parts of the index did not answer in time, so these sources may be incomplete; say so if that could change the answer.';

export interface BuildPromptOptions {
  question: string;
  /** Earlier turns, oldest first; may include system messages from the client. */
  history: ChatMessage[];
  /** Retrieved chunks, best first, numbered from 1. */
  sources: Source[];
  systemTemplate: string;
  /** Most tokens the source blocks (the text that replaces `{sources}`) may take. */
  contextBudgetTokens: number;
  countTokens: (text: string) => number;
  /** True when some shards did not answer, so the retrieved sources may be incomplete. */
  partialCoverage?: boolean;
}

export interface BuiltPrompt {
  messages: ChatMessage[];
  /** The sources that fit, renumbered 1..n in their original order. */
  sources: Source[];
  droppedSources: number;
  /** Tokens of the source blocks that were kept. */
  contextTokens: number;
}

function sourceBlock(index: number, source: Source): string {
  return `[${index}] (${source.document_id})\n${source.text.trim()}`;
}

function droppedLine(dropped: number): string {
  if (dropped === 0) return '';
  return dropped === 1
    ? '(1 more source matched but was left out to fit the context budget.)'
    : `(${dropped} more sources matched but were left out to fit the context budget.)`;
}

function fillPlaceholder(template: string, name: string, value: string): string {
  const placeholder = `{${name}}`;
  if (template.includes(placeholder)) return template.split(placeholder).join(value);
  return value === '' ? template : `${template}\n\n${value}`;
}

export function buildPrompt(options: BuildPromptOptions): BuiltPrompt {
  const { countTokens } = options;
  const budget = Math.max(0, options.contextBudgetTokens);
  const separatorTokens = countTokens(SOURCE_SEPARATOR);

  // First fit in rank order: a chunk too big for what is left is skipped whole (a cut chunk
  // could drop the very sentence that answers, or a citation could point at half a fact), but
  // a smaller, lower-ranked one after it may still fit. The kept ones stay best first.
  const kept: Source[] = [];
  const blocks: string[] = [];
  let contextTokens = 0;
  for (const source of options.sources) {
    const block = sourceBlock(kept.length + 1, source);
    const cost = countTokens(block) + (blocks.length > 0 ? separatorTokens : 0);
    if (contextTokens + cost > budget) continue;
    kept.push({ ...source, index: kept.length + 1 });
    blocks.push(block);
    contextTokens += cost;
  }
  const droppedSources = options.sources.length - kept.length;

  let system = fillPlaceholder(options.systemTemplate, 'sources', blocks.length > 0 ? blocks.join(SOURCE_SEPARATOR) : NO_SOURCES_TEXT);
  system = fillPlaceholder(system, 'dropped', droppedLine(droppedSources));
  system = fillPlaceholder(system, 'coverage', options.partialCoverage === true ? PARTIAL_COVERAGE_TEXT : '');
  // Empty placeholder lines would otherwise leave runs of blank lines behind.
  system = system.replace(/\n{3,}/g, '\n\n').trim();

  // Client system messages go right after ours rather than where they were: many chat
  // templates (Llama, Mistral, Gemma) reject or mangle a system message after the first turn.
  const clientSystem = options.history.filter((message) => message.role === 'system');
  const turns = options.history.filter((message) => message.role !== 'system');
  const messages: ChatMessage[] = [
    { role: 'system', content: system },
    ...clientSystem.map((message) => ({ ...message })),
    ...turns.map((message) => ({ ...message })),
    { role: 'user', content: options.question },
  ];
  return { messages, sources: kept, droppedSources, contextTokens };
}

export interface CitationCheck {
  /** Valid source numbers cited, unique, in order of first appearance. */
  cited: number[];
  /** Numbers in citation markers that name no retrieved source, unique, in order of first appearance. */
  invalid: number[];
}

// One marker: `[` numbers or ranges separated by `,` or `;` `]`, spaces allowed inside.
// Numbers have at most three digits: retrieval never returns a thousand sources, and a
// bracketed year (`[2024]`, `[2019-2024]`) is not a citation.
const CITATION_MARKER = /\[\s*(\d{1,3}(?:\s*[-–]\s*\d{1,3})?(?:\s*[,;]\s*\d{1,3}(?:\s*[-–]\s*\d{1,3})?)*)\s*\]/gu;
const IDENTIFIER_CHAR = /[\p{L}\p{N}_$]/u;
// Wider ranges are not citations but something else in brackets (`[1-500]`).
const MAX_RANGE_SPAN = 20;
const FENCED_CODE = /^[ \t]*(```|~~~)[^\n]*\n[\s\S]*?(?:^[ \t]*\1[^\n]*$|(?![\s\S]))/gm;
const INLINE_CODE = /`[^`\n]*`/g;

/**
 * Finds the `[n]` markers of an answer. Grammar: `[1]`, `[1, 3]`, `[1; 3]`, adjacent `[1][2]`,
 * ranges `[1-3]` / `[1–3]` (expanded; a reversed range or one spanning more than 20 numbers
 * is not a citation); numbers of one to three digits. Not citations: a bracket right after an identifier character (`arr[0]`,
 * `x[1]`), a markdown link or reference (`[1](url)`, a line starting `[1]:`), footnotes
 * (`[^1]`), and anything inside code spans or fenced code blocks.
 */
export function checkCitations(answer: string, sourceCount: number): CitationCheck {
  const prose = answer.replace(FENCED_CODE, ' ').replace(INLINE_CODE, ' ');
  const cited: number[] = [];
  const invalid: number[] = [];
  const note = (n: number): void => {
    const list = n >= 1 && n <= sourceCount ? cited : invalid;
    if (!list.includes(n)) list.push(n);
  };
  for (const match of prose.matchAll(CITATION_MARKER)) {
    const start = match.index;
    const end = start + match[0].length;
    const before = prose[start - 1];
    if (before !== undefined && IDENTIFIER_CHAR.test(before)) continue;
    if (prose[end] === '(') continue;
    const lineStart = start === 0 || before === '\n';
    if (lineStart && prose[end] === ':') continue;

    const numbers: number[] = [];
    let isCitation = true;
    for (const part of (match[1] ?? '').split(/[,;]/)) {
      const [from, to] = part.split(/[-–]/).map((s) => Number.parseInt(s.trim(), 10));
      if (from === undefined || Number.isNaN(from)) continue;
      if (to === undefined) {
        numbers.push(from);
        continue;
      }
      if (to < from || to - from > MAX_RANGE_SPAN) {
        isCitation = false;
        break;
      }
      for (let n = from; n <= to; n += 1) numbers.push(n);
    }
    if (isCitation) numbers.forEach(note);
  }
  return { cited, invalid };
}
