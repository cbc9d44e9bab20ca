// The built-in generator for deployments without an LLM (docs/architecture.md §4.2): it answers with
// the retrieved sentences most similar to the question, each cited as [n], streamed word
// group by word group through the same path an LLM's tokens take. It only ever copies
// sentences out of the sources — it never writes text of its own, apart from the fixed
// sentence that says it found nothing.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { splitUnits } from '../chunker.js';
import { abortError, createError, raceAbort, throwIfAborted } from '../../core/errors.js';
import type { FinishReason, GenerationEvent, GenerationRequest, Generator, Source } from './provider.js';

export const EXTRACTIVE_MODEL_ID = 'ragway-extractive';
export const NO_ANSWER_TEXT = 'I could not find an answer to that in the indexed documents.';

export interface ExtractiveGeneratorOptions {
  /** Embeds texts into unit-length vectors (in production: the gateway's micro-batcher). */
  embed: (texts: string[], signal: AbortSignal) => Promise<Float32Array[]>;
  /** Tokens of a text for the embedding model; usage, maxTokens and the input limit use it. */
  countTokens: (text: string) => number;
  /** Most sentences in an answer. */
  maxSentences?: number;
  /** Cosine similarity to the question a sentence needs to be used at all. */
  minSimilarity?: number;
  /** A sentence scoring more than this below the best one is left out. */
  maxScoreGap?: number;
  /** Above this cosine similarity to a sentence already picked, a sentence is a duplicate. */
  duplicateSimilarity?: number;
  /** Most candidate sentences embedded per question (taken from the best sources first). */
  maxCandidates?: number;
  /** Longer sentences are skipped: they are run-ons of flattened lists or tables, and must fit the model. */
  maxSentenceTokens?: number;
  /** Words per streamed delta. */
  wordsPerDelta?: number;
}

// Calibrated on glove-sif-100d over README chunks: a sentence on another topic scores below
// about 0.5 against a question, one that answers it usually 0.6–0.85. The gap keeps a strong
// first sentence from being padded with merely on-topic ones.
export const DEFAULT_MIN_SIMILARITY = 0.6;
export const DEFAULT_MAX_SCORE_GAP = 0.15;
const DEFAULTS = {
  maxSentences: 4,
  minSimilarity: DEFAULT_MIN_SIMILARITY,
  maxScoreGap: DEFAULT_MAX_SCORE_GAP,
  duplicateSimilarity: 0.9,
  maxCandidates: 256,
  maxSentenceTokens: 96,
  wordsPerDelta: 3,
} as const;

const MIN_SENTENCE_WORDS = 4;

// --- Sentence candidates -------------------------------------------------------------------

// Ingestion joins a chunk's units with spaces (chunker.ts), so Markdown structure arrives
// flattened: "... items. ## Usage Set the ttl ..." These put the breaks back where the
// structure is still recognisable: before a heading marker, and before a list marker that
// follows the end of a sentence or an introducing colon.
const INLINE_HEADING = /(^|\s)(#{1,6})\s+(?=\S)/g;
const INLINE_LIST_ITEM = /([.:;!?])\s+([-*+]|\d{1,3}[.)])\s+(?=\S)/g;
const FENCED_BLOCK = /^[ \t]*(```|~~~)[^\n]*\n[\s\S]*?(?:^[ \t]*\1[^\n]*$|(?![\s\S]))/gm;

const HEADING_MARKER = /^#{1,6}\s+/;
const LIST_MARKER = /^(?:[-*+]|\d{1,3}[.)])\s+/;
const TABLE_ROW = /\|.*\|/;
// Items of a list that ran together without full stops: "`fetch` - The fetch function - `Headers` - …".
const LIST_RUN = /\s[-*+]\s.*\s[-*+]\s/;
// Markup is dropped and its text kept, as a Markdown renderer would show it.
const HTML_MARKUP = /<!--[\s\S]*?-->|<\/?[a-zA-Z][^>]*>/g;
const IMAGE = /!\[[^\]]*\]\([^)]*\)/;
const LINK = /\[([^\]]+)\]\([^)]*\)/g;
// Numbered markers inside a source ("[1]" footnotes) would read as our citations.
const BRACKETED_NUMBER = /\s*\[\d+(?:\s*[-–,;]\s*\d+)*\]/g;
const INLINE_CODE = /`[^`]*`/g;
const CODE_SIGNS = [
  /[{}]/,
  /=>|===|!==|&&|\|\||::/,
  /(^|\s)\/\/|\/\*|\*\//,
  /\s=\s/,
  /[A-Za-z_$][\w$]*\.[A-Za-z_$][\w$]*\(/,
  /\w\(\)/,
  /;\s*$/,
  /^(?:import|export|const|let|var|function|class|return|await|async|new|require|module|npm|npx|yarn|pnpm|pip|git|docker|curl|sudo|cd)\b/,
  /^(?:if|for|while|switch)\s*\(/,
  /^[$>]\s/,
];
const SYMBOL = /[{}[\];=<>\\|&~^$#@]/g;
const SENTENCE_START = /^["'“(*_`]*[\p{Lu}\p{N}`]/u;
const SENTENCE_END = /[.!?]["')”`*_]*$/;

/**
 * After a heading that ran into the following sentence, the sentence starts at the first
 * capitalised word that is followed by a word that is not ("# lru-cache A cache object that
 * …" → "A cache object that …"; "## Time To Live Entries expire …" → "Entries expire …").
 * Headings with no sentence after them give nothing.
 */
function afterHeading(unit: string): string | undefined {
  const words = unit.replace(HEADING_MARKER, '').split(/\s+/);
  for (let i = 1; i < Math.min(words.length - 1, 10); i += 1) {
    const word = words[i] as string;
    const next = words[i + 1] as string;
    if (/^\p{Lu}/u.test(word) && !/^\p{Lu}/u.test(next)) return words.slice(i).join(' ');
  }
  return undefined;
}

function looksLikeCode(sentence: string): boolean {
  // Inline code in prose ("set `ttl` to a number") is fine; judge the prose around it.
  const prose = sentence.replace(INLINE_CODE, 'x');
  if (CODE_SIGNS.some((sign) => sign.test(prose))) return true;
  const visible = prose.replace(/\s/g, '').length;
  const symbols = prose.match(SYMBOL)?.length ?? 0;
  return visible > 0 && symbols / visible > 0.06;
}

function cleanSentence(sentence: string): string | undefined {
  if (TABLE_ROW.test(sentence) || LIST_RUN.test(sentence) || IMAGE.test(sentence)) return undefined;
  const text = sentence.replace(LINK, '$1').replace(BRACKETED_NUMBER, '').replace(/\s+/g, ' ').trim();
  if (!SENTENCE_START.test(text) || !SENTENCE_END.test(text)) return undefined;
  if (text.split(' ').length < MIN_SENTENCE_WORDS) return undefined;
  if (looksLikeCode(text)) return undefined;
  const letters = text.match(/\p{L}/gu)?.length ?? 0;
  if (letters / text.replace(/\s/g, '').length < 0.6) return undefined;
  return text;
}

/** A heading or list item runs to the end of its line, which in a flattened chunk may hold several sentences. */
function unitSentences(unit: string): string[] {
  let text: string | undefined = unit;
  if (HEADING_MARKER.test(text)) text = afterHeading(text);
  else if (LIST_MARKER.test(text)) text = text.replace(LIST_MARKER, '');
  else return [unit];
  return text === undefined ? [] : splitUnits(text);
}

/**
 * The sentences of a source that could stand in an answer, in order: prose sentences and
 * sentence-like list items, with Markdown links and HTML reduced to their text. Headings,
 * code, table rows and fragments (no capital at the start or no full stop at the end) are
 * left out.
 */
export function sentenceCandidates(text: string): string[] {
  const restored = text
    .replace(/\r\n?/g, '\n')
    .replace(FENCED_BLOCK, '\n\n')
    .replace(HTML_MARKUP, ' ')
    .replace(INLINE_HEADING, '$1\n\n$2 ')
    .replace(INLINE_LIST_ITEM, '$1\n$2 ');
  const sentences: string[] = [];
  for (const unit of splitUnits(restored)) {
    for (const raw of unitSentences(unit)) {
      const sentence = cleanSentence(raw);
      if (sentence !== undefined) sentences.push(sentence);
    }
  }
  return sentences;
}

// --- Selection -----------------------------------------------------------------------------

interface Candidate {
  text: string;
  key: string;
  /** Citation numbers: the source it came from, plus any that said the same thing. */
  cites: number[];
  order: number;
}

interface Scored extends Candidate {
  vector: Float32Array;
  score: number;
}

function normalizedKey(text: string): string {
  return text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim();
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i += 1) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

function addCitation(cites: number[], index: number): void {
  if (!cites.includes(index)) cites.push(index);
}

/** "Entries expire after ttl ms." + [1, 2] → "Entries expire after ttl ms [1][2]." */
function withCitations(sentence: string, cites: readonly number[]): string {
  const marks = cites.map((n) => `[${n}]`).join('');
  const end = /([.!?])$/.exec(sentence);
  return end === null ? `${sentence} ${marks}` : `${sentence.slice(0, -1)} ${marks}${end[1] as string}`;
}


interface Composed {
  text: string;
  promptTokens: number;
}

export class ExtractiveGenerator implements Generator {
  readonly id = EXTRACTIVE_MODEL_ID;
  readonly ownedBy = 'ragway';
  readonly #embed: ExtractiveGeneratorOptions['embed'];
  readonly #countTokens: (text: string) => number;
  readonly #settings: Required<Omit<ExtractiveGeneratorOptions, 'embed' | 'countTokens'>>;

  constructor(options: ExtractiveGeneratorOptions) {
    this.#embed = options.embed;
    this.#countTokens = options.countTokens;
    this.#settings = {
      maxSentences: options.maxSentences ?? DEFAULTS.maxSentences,
      minSimilarity: options.minSimilarity ?? DEFAULTS.minSimilarity,
      maxScoreGap: options.maxScoreGap ?? DEFAULTS.maxScoreGap,
      duplicateSimilarity: options.duplicateSimilarity ?? DEFAULTS.duplicateSimilarity,
      maxCandidates: options.maxCandidates ?? DEFAULTS.maxCandidates,
      maxSentenceTokens: options.maxSentenceTokens ?? DEFAULTS.maxSentenceTokens,
      wordsPerDelta: options.wordsPerDelta ?? DEFAULTS.wordsPerDelta,
    };
    for (const name of ['maxSentences', 'maxCandidates', 'maxSentenceTokens', 'wordsPerDelta'] as const) {
      const value = this.#settings[name];
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
    }
  }

  async *stream(request: GenerationRequest, signal: AbortSignal): AsyncGenerator<GenerationEvent> {
    throwIfAborted(signal);
    const composed = await this.#compose(request, signal);
    // Stop sequences mean what they mean for an LLM: the answer ends just before the first one.
    const stopAt = Math.min(...(request.stop ?? []).filter((s) => s !== '').map((s) => composed.text.indexOf(s)).filter((i) => i >= 0));
    if (Number.isFinite(stopAt)) composed.text = composed.text.slice(0, stopAt);
    yield* this.#emit(composed, request.maxTokens, signal);
  }

  /** Picks the sentences and lays out the whole answer; streaming it is a separate step. */
  async #compose(request: GenerationRequest, signal: AbortSignal): Promise<Composed> {
    const settings = this.#settings;
    const question = request.question.trim();
    let promptTokens = this.#countTokens(question);
    const candidates = question === '' ? [] : this.#candidates(request.sources);
    for (const candidate of candidates) promptTokens += this.#countTokens(candidate.text);
    if (candidates.length === 0) return { text: NO_ANSWER_TEXT, promptTokens };

    const vectors = await raceAbort(
      this.#embed([question, ...candidates.map((c) => c.text)], signal),
      signal,
    );
    const questionVector = vectors[0];
    if (questionVector === undefined || vectors.length !== candidates.length + 1) {
      throw createError('RAGWAY_ERR_INTERNAL', `embed returned ${vectors.length} vectors for ${candidates.length + 1} texts`);
    }
    const scored: Scored[] = candidates.map((candidate, i) => {
      const vector = vectors[i + 1] as Float32Array;
      return { ...candidate, vector, score: cosine(questionVector, vector) };
    });
    scored.sort((a, b) => b.score - a.score || a.order - b.order);

    const best = scored[0]?.score ?? 0;
    const floor = Math.max(settings.minSimilarity, best - settings.maxScoreGap);
    const picked: Scored[] = [];
    for (const candidate of scored) {
      if (candidate.score < floor) break;
      // A sentence that repeats one already picked (the same README vendored twice, an
      // overlapping chunk) adds its citations to that one instead of appearing again.
      const same = picked.find(
        (p) => p.key === candidate.key || cosine(p.vector, candidate.vector) > settings.duplicateSimilarity,
      );
      if (same !== undefined) {
        for (const n of candidate.cites) addCitation(same.cites, n);
      } else if (picked.length < settings.maxSentences) {
        picked.push({ ...candidate, cites: [...candidate.cites] });
      }
    }
    if (picked.length === 0) return { text: NO_ANSWER_TEXT, promptTokens };
    // Most relevant first: the opening sentence is the best answer, and a maxTokens cut
    // keeps the best sentences rather than whichever came first in the sources.
    return { text: picked.map((p) => withCitations(p.text, p.cites)).join(' '), promptTokens };
  }

  #candidates(sources: readonly Source[]): Candidate[] {
    const settings = this.#settings;
    const byKey = new Map<string, Candidate>();
    const candidates: Candidate[] = [];
    // Sources arrive best first, so the cap keeps the sentences of the best sources.
    for (const source of sources) {
      for (const text of sentenceCandidates(source.text)) {
        const key = normalizedKey(text);
        const seen = byKey.get(key);
        if (seen !== undefined) {
          addCitation(seen.cites, source.index);
          continue;
        }
        if (candidates.length >= settings.maxCandidates) continue;
        if (this.#countTokens(text) > settings.maxSentenceTokens) continue;
        const candidate: Candidate = { text, key, cites: [source.index], order: candidates.length };
        byKey.set(key, candidate);
        candidates.push(candidate);
      }
    }
    return candidates;
  }

  async *#emit(composed: Composed, maxTokens: number | undefined, signal: AbortSignal): AsyncGenerator<GenerationEvent> {
    const words = composed.text.split(' ');
    let keep = words.length;
    let finishReason: FinishReason = 'stop';
    if (maxTokens !== undefined && this.#countTokens(composed.text) > maxTokens) {
      // The answer is known in full, so the longest prefix of whole words within the limit
      // is found by bisection: a handful of tokenizer calls instead of one per word.
      finishReason = 'length';
      let low = 0;
      let high = words.length - 1;
      while (low < high) {
        const mid = Math.ceil((low + high) / 2);
        if (this.#countTokens(words.slice(0, mid).join(' ')) <= maxTokens) low = mid;
        else high = mid - 1;
      }
      keep = low;
    }

    const { wordsPerDelta } = this.#settings;
    for (let start = 0; start < keep; start += wordsPerDelta) {
      // Let other requests' work run between deltas, and stop as soon as the client is gone.
      await nextTurn();
      if (signal.aborted) throw abortError(signal);
      const group = words.slice(start, Math.min(start + wordsPerDelta, keep)).join(' ');
      yield { type: 'delta', text: start === 0 ? group : ` ${group}` };
    }
    if (signal.aborted) throw abortError(signal);
    const completionTokens = keep === 0 ? 0 : this.#countTokens(words.slice(0, keep).join(' '));
    yield {
      type: 'done',
      finishReason,
      usage: {
        prompt_tokens: composed.promptTokens,
        completion_tokens: completionTokens,
        total_tokens: composed.promptTokens + completionTokens,
      },
    };
  }
}
