// Splits a document into overlapping chunks of about `sizeTokens` model tokens, cutting at
// sentence, list-item and paragraph boundaries so a chunk reads as text, not as a window
// of bytes. Token counts come from the embedding model's own tokenizer (injected), so a
// chunk is never longer than the model accepts. Pure.

export interface ChunkOptions {
  sizeTokens: number;
  overlapTokens: number;
  countTokens: (text: string) => number;
}

const BLOCK_BREAK = /\n[ \t]*\n+/;
const FENCE = /^\s*(```|~~~)/;
// Lines that stand alone in Markdown: headings, list items, table rows, quotes.
const STANDALONE_LINE = /^\s*(#{1,6}\s|[-*+]\s|\d+[.)]\s|\||>)/;
const SENTENCE_END = /(?<=[.!?])\s+(?=[^\s])/;

/** Text units (sentences, list items, headings, code lines) in document order. */
export function splitUnits(text: string): string[] {
  const units: string[] = [];
  const normalized = text.replace(/\r\n?/g, '\n');
  let inFence = false;
  for (const block of normalized.split(BLOCK_BREAK)) {
    let prose: string[] = [];
    const flushProse = (): void => {
      if (prose.length === 0) return;
      for (const sentence of prose.join(' ').split(SENTENCE_END)) {
        const trimmed = sentence.trim();
        if (trimmed !== '') units.push(trimmed);
      }
      prose = [];
    };
    for (const line of block.split('\n')) {
      if (FENCE.test(line)) {
        flushProse();
        inFence = !inFence;
        continue;
      }
      const trimmed = line.trim();
      if (trimmed === '') continue;
      if (inFence || STANDALONE_LINE.test(line)) {
        flushProse();
        units.push(trimmed);
      } else {
        prose.push(trimmed);
      }
    }
    flushProse();
  }
  return units;
}

/** Splits one over-long unit at word boundaries into pieces of at most `sizeTokens`. */
function splitLongUnit(unit: string, options: ChunkOptions): { text: string; tokens: number }[] {
  const pieces: { text: string; tokens: number }[] = [];
  let words: string[] = [];
  let tokens = 0;
  for (const word of unit.split(/\s+/)) {
    const wordTokens = Math.max(1, options.countTokens(word));
    if (tokens + wordTokens > options.sizeTokens && words.length > 0) {
      pieces.push({ text: words.join(' '), tokens });
      words = [];
      tokens = 0;
    }
    // A single "word" longer than the budget (a minified line, a base64 blob) is cut by characters.
    if (wordTokens > options.sizeTokens) {
      const step = Math.max(1, Math.floor((word.length * options.sizeTokens) / wordTokens));
      for (let i = 0; i < word.length; i += step) {
        const part = word.slice(i, i + step);
        pieces.push({ text: part, tokens: options.countTokens(part) });
      }
      continue;
    }
    words.push(word);
    tokens += wordTokens;
  }
  if (words.length > 0) pieces.push({ text: words.join(' '), tokens });
  return pieces;
}

export function chunkText(text: string, options: ChunkOptions): string[] {
  if (options.overlapTokens >= options.sizeTokens) throw new RangeError('overlapTokens must be smaller than sizeTokens');
  const units = splitUnits(text).flatMap((unit) => {
    const tokens = options.countTokens(unit);
    return tokens > options.sizeTokens ? splitLongUnit(unit, options) : [{ text: unit, tokens }];
  });
  const chunks: string[] = [];
  let current: { text: string; tokens: number }[] = [];
  let currentTokens = 0;
  let freshUnits = 0;
  for (const unit of units) {
    if (currentTokens + unit.tokens > options.sizeTokens && freshUnits > 0) {
      chunks.push(current.map((u) => u.text).join(' '));
      // Carry the tail of this chunk into the next so a fact split across the boundary
      // is still whole in one of them.
      const carried: { text: string; tokens: number }[] = [];
      let carriedTokens = 0;
      for (let i = current.length - 1; i >= 0; i -= 1) {
        const previous = current[i] as { text: string; tokens: number };
        if (carriedTokens + previous.tokens > options.overlapTokens) break;
        if (carriedTokens + previous.tokens + unit.tokens > options.sizeTokens) break;
        carried.unshift(previous);
        carriedTokens += previous.tokens;
      }
      current = carried;
      currentTokens = carriedTokens;
      freshUnits = 0;
    }
    current.push(unit);
    currentTokens += unit.tokens;
    freshUnits += 1;
  }
  if (freshUnits > 0) chunks.push(current.map((u) => u.text).join(' '));
  return chunks;
}
