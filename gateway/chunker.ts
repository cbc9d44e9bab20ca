// Splits a document into chunks of about `sizeTokens` model tokens along its structure:
// a chunk boundary goes at a heading first, then between blocks (paragraphs, code, lists,
// tables), then between sentences, so a chunk reads as a piece of the document rather than
// a window of bytes. Code blocks, lists and tables stay whole when they fit; one too big for
// a chunk is cut at line boundaries (lists between items, tables with their header repeated)
// and the pieces say so. Each chunk remembers the headings it sits under (its heading path),
// which is prepended to the text that gets embedded, so "Options > ttl" is part of what a
// short chunk about a TTL option means. Stored text keeps its newlines. Token counts come
// from the embedding model's own tokenizer (injected). Pure.
import { codeFences, isDelimiterRow, isTopLevelItem, parseBlocks, type Block, type BlockKind } from './markdown-blocks.js';

export interface ChunkOptions {
  sizeTokens: number;
  overlapTokens: number;
  countTokens: (text: string) => number;
}

export type SplitKind = Exclude<BlockKind, 'heading' | 'paragraph'>;

export interface TextChunk {
  /** The chunk's text as written in the document (newlines kept). */
  text: string;
  /** The headings the whole chunk sits under, outermost first (empty before the first heading). */
  headingPath: string[];
  /** What to embed: the heading path as a line of context, then the text. */
  embedText: string;
  /** Set when the chunk holds a piece of a code block, list or table too big for one chunk. */
  split?: { kind: SplitKind; part: number; parts: number };
  /** Set when a single line (or sentence) longer than the budget had to be cut inside. */
  cutLine?: true;
}

// How good a place the gap before a unit is for a chunk boundary.
const HEADING = 4;
const BLOCK = 3;
const PIECE = 2;
const SENTENCE = 1;

interface Unit {
  text: string;
  tokens: number;
  /** Whitespace between this unit and the one before it in the same chunk. */
  sep: string;
  strength: number;
  path: string[];
  heading: boolean;
  /** Prose may be repeated at the start of the next chunk as overlap; blocks are not. */
  movable: boolean;
  split?: { kind: SplitKind; part: number; parts: number };
  cutLine?: true;
}

const SENTENCE_END = /(?<=[.!?])(\s+)(?=\S)/;
const PATH_SEPARATOR = ' > ';

/**
 * Text units (sentences, list items, headings, code lines) in document order, whitespace
 * collapsed. The extractive generator picks answer sentences from these.
 */
export function splitUnits(text: string): string[] {
  const units: string[] = [];
  for (const block of parseBlocks(text)) {
    if (block.kind === 'paragraph') {
      for (const sentence of block.lines.map((line) => line.trim()).join(' ').split(/(?<=[.!?])\s+(?=[^\s])/)) {
        if (sentence.trim() !== '') units.push(sentence.trim());
      }
      continue;
    }
    const fences = block.kind === 'code' ? codeFences(block.lines) : undefined;
    for (const line of fences?.body ?? block.lines) {
      const trimmed = line.trim();
      if (trimmed !== '') units.push(trimmed);
    }
  }
  return units;
}

/** Splits text longer than `budget` at word boundaries (a single huge "word" by characters). */
function splitWords(text: string, budget: number, countTokens: (text: string) => number): { text: string; tokens: number }[] {
  const pieces: { text: string; tokens: number }[] = [];
  let words: string[] = [];
  let tokens = 0;
  for (const word of text.split(/\s+/)) {
    if (word === '') continue;
    const wordTokens = Math.max(1, countTokens(word));
    if (tokens + wordTokens > budget && words.length > 0) {
      pieces.push({ text: words.join(' '), tokens });
      words = [];
      tokens = 0;
    }
    // A minified line or a base64 blob: no word boundary to cut at, so cut by characters.
    if (wordTokens > budget) {
      const step = Math.max(1, Math.floor((word.length * budget) / wordTokens));
      for (let i = 0; i < word.length; i += step) {
        const part = word.slice(i, i + step);
        pieces.push({ text: part, tokens: countTokens(part) });
      }
      continue;
    }
    words.push(word);
    tokens += wordTokens;
  }
  if (words.length > 0) pieces.push({ text: words.join(' '), tokens });
  return pieces;
}

function prefixText(path: readonly string[]): string {
  return path.join(PATH_SEPARATOR);
}

class UnitBuilder {
  readonly units: Unit[] = [];
  readonly #options: ChunkOptions;
  readonly #headings: { level: number; title: string }[] = [];
  #path: string[] = [];
  readonly #budgets = new WeakMap<readonly string[], number>();

  constructor(options: ChunkOptions) {
    this.#options = options;
  }

  /** Tokens a chunk under `path` may hold: the heading line prepended for embedding counts too (up to half the budget). */
  budgetFor(path: readonly string[]): number {
    const size = this.#options.sizeTokens;
    if (path.length === 0) return size;
    // Units of one section share one path array, so this is one tokenizer call per section.
    let budget = this.#budgets.get(path);
    if (budget === undefined) {
      budget = Math.max(Math.ceil(size / 2), size - this.#options.countTokens(prefixText(path)));
      this.#budgets.set(path, budget);
    }
    return budget;
  }

  add(block: Block): void {
    const count = this.#options.countTokens;
    if (block.kind === 'heading') {
      const level = block.level ?? 1;
      while ((this.#headings.at(-1)?.level ?? 0) >= level) this.#headings.pop();
      if (block.title !== undefined && block.title !== '') this.#headings.push({ level, title: block.title });
      this.#path = this.#headings.map((heading) => heading.title);
      this.#prose(block.lines.join('\n'), HEADING, { heading: true });
      return;
    }
    if (block.kind === 'paragraph') {
      const text = block.lines.join('\n');
      const tokens = count(text);
      if (tokens <= this.budgetFor(this.#path)) {
        this.#push({ text, tokens, sep: '\n\n', strength: BLOCK, movable: true });
        return;
      }
      const parts = text.split(SENTENCE_END);
      // split() with a capture group interleaves the separators: [sentence, ws, sentence, ...].
      for (let i = 0; i < parts.length; i += 2) {
        const sep = i === 0 ? '\n\n' : (parts[i - 1] as string).includes('\n') ? '\n' : ' ';
        this.#prose(parts[i] as string, i === 0 ? BLOCK : SENTENCE, { sep });
      }
      return;
    }
    this.#block(block.kind, block.lines);
  }

  /** One prose unit, cut at words when even it is over the budget. */
  #prose(text: string, strength: number, options: { heading?: boolean; sep?: string }): void {
    const budget = this.budgetFor(this.#path);
    const tokens = this.#options.countTokens(text);
    const sep = options.sep ?? '\n\n';
    if (tokens <= budget) {
      this.#push({ text, tokens, sep, strength, movable: options.heading !== true, heading: options.heading === true });
      return;
    }
    splitWords(text, budget, this.#options.countTokens).forEach((piece, index) => {
      this.#push({
        text: piece.text,
        tokens: piece.tokens,
        sep: index === 0 ? sep : ' ',
        strength: index === 0 ? strength : 0,
        movable: options.heading !== true,
        heading: options.heading === true && index === 0,
        cutLine: true,
      });
    });
  }

  /** A code block, list or table: whole when it fits, else pieces cut between lines. */
  #block(kind: SplitKind, lines: readonly string[]): void {
    const count = this.#options.countTokens;
    const budget = this.budgetFor(this.#path);
    const text = lines.join('\n');
    const tokens = count(text);
    if (tokens <= budget) {
      this.#push({ text, tokens, sep: '\n\n', strength: BLOCK, movable: false });
      return;
    }
    // What each piece repeats so it stands on its own: a code block's fences, a table's header.
    let head: string[] = [];
    let tail: string[] = [];
    let body = [...lines];
    if (kind === 'code') {
      const fences = codeFences(lines);
      if (fences !== undefined) {
        head = [fences.open];
        tail = [fences.close];
        body = fences.body;
      }
    } else if (kind === 'table' && lines.length > 2 && isDelimiterRow(lines[1] as string)) {
      head = lines.slice(0, 2);
      body = lines.slice(2);
    }
    let frameTokens = head.length + tail.length === 0 ? 0 : count([...head, ...tail].join('\n'));
    if (kind === 'table' && frameTokens > budget / 3) {
      // A header that long would leave each piece room for a row or less: not repeated.
      head = [];
      body = [...lines];
      frameTokens = 0;
    }
    const pieceBudget = Math.max(1, budget - frameTokens);
    // Groups that should stay together when they can: list items (with their nested lines), else single lines.
    const baseIndent = kind === 'list' ? (/^[ \t]*/.exec(body[0] ?? '')?.[0].length ?? 0) : 0;
    const groups: string[][] = [];
    for (const line of body) {
      if (kind !== 'list' || groups.length === 0 || isTopLevelItem(line, baseIndent)) groups.push([line]);
      else (groups.at(-1) as string[]).push(line);
    }
    const pieces: { lines: string[]; tokens: number; cutLine: boolean }[] = [];
    let current: string[] = [];
    let currentTokens = 0;
    let cutLine = false;
    const flush = (): void => {
      if (current.length > 0) pieces.push({ lines: current, tokens: currentTokens, cutLine });
      current = [];
      currentTokens = 0;
      cutLine = false;
    };
    const addLine = (line: string, lineTokens: number): void => {
      if (currentTokens + lineTokens > pieceBudget && current.length > 0) flush();
      current.push(line);
      currentTokens += lineTokens;
    };
    for (const group of groups) {
      const groupTokens = count(group.join('\n'));
      if (currentTokens + groupTokens > pieceBudget && current.length > 0) flush();
      if (groupTokens <= pieceBudget) {
        current.push(...group);
        currentTokens += groupTokens;
        continue;
      }
      for (const line of group) {
        const lineTokens = count(line);
        if (lineTokens <= pieceBudget) {
          addLine(line, lineTokens);
          continue;
        }
        // The one case a line is cut inside: it alone is longer than a chunk may be.
        flush();
        for (const part of splitWords(line, pieceBudget, count)) {
          current = [part.text];
          currentTokens = part.tokens;
          cutLine = true;
          flush();
        }
      }
    }
    flush();
    pieces.forEach((piece, index) => {
      this.#push({
        text: [...head, ...piece.lines, ...tail].join('\n'),
        tokens: piece.tokens + frameTokens,
        sep: index === 0 ? '\n\n' : '\n',
        strength: index === 0 ? BLOCK : PIECE,
        movable: false,
        split: { kind, part: index + 1, parts: pieces.length },
        ...(piece.cutLine ? { cutLine: true as const } : {}),
      });
    });
  }

  #push(unit: Omit<Unit, 'path' | 'heading'> & { heading?: boolean }): void {
    this.units.push({ ...unit, heading: unit.heading === true, path: this.#path });
  }
}

function commonPath(units: readonly Unit[]): string[] {
  let path = (units[0] as Unit).path;
  for (const unit of units) {
    let same = 0;
    while (same < path.length && same < unit.path.length && path[same] === unit.path[same]) same += 1;
    if (same < path.length) path = path.slice(0, same);
  }
  return path;
}

function toChunk(units: readonly Unit[]): TextChunk {
  const text = units.map((unit, index) => (index === 0 ? unit.text : unit.sep + unit.text)).join('');
  const headingPath = [...commonPath(units)];
  const first = units[0] as Unit;
  // A chunk that opens with its own section's heading already says it; the context line names only the sections above.
  const context = first.heading && first.path.length === headingPath.length ? headingPath.slice(0, -1) : headingPath;
  const chunk: TextChunk = { text, headingPath, embedText: context.length === 0 ? text : `${prefixText(context)}\n\n${text}` };
  const split = units.find((unit) => unit.split !== undefined)?.split;
  if (split !== undefined) chunk.split = split;
  if (units.some((unit) => unit.cutLine === true)) chunk.cutLine = true;
  return chunk;
}

export function chunkDocument(text: string, options: ChunkOptions): TextChunk[] {
  if (options.overlapTokens >= options.sizeTokens) throw new RangeError('overlapTokens must be smaller than sizeTokens');
  const builder = new UnitBuilder(options);
  for (const block of parseBlocks(text)) builder.add(block);

  const chunks: TextChunk[] = [];
  let current: Unit[] = [];
  let tokens = 0;
  /** Units at the start of `current` repeated from the previous chunk. */
  let carried = 0;
  // A section that already has this much text gets its own chunk instead of sharing one with the next.
  const sectionTokens = Math.ceil(options.sizeTokens / 4);

  const cut = (at: number, next: Unit | undefined): void => {
    const emitted = current.slice(0, at);
    chunks.push(toChunk(emitted));
    const rest = current.slice(at);
    const opener = rest[0] ?? next;
    const restTokens = rest.reduce((sum, unit) => sum + unit.tokens, 0);
    // Overlap: the tail of the chunk just emitted, prose only and never across a heading, so a
    // fact split at the boundary is whole in one of the two chunks.
    const overlap: Unit[] = [];
    let overlapTokens = 0;
    if (opener !== undefined && !opener.heading && options.overlapTokens > 0) {
      const room = builder.budgetFor(opener.path) - restTokens - (rest.length === 0 ? (next?.tokens ?? 0) : 0);
      for (let i = emitted.length - 1; i >= 0; i -= 1) {
        const unit = emitted[i] as Unit;
        if (!unit.movable || unit.heading) break;
        if (overlapTokens + unit.tokens > Math.min(options.overlapTokens, room)) break;
        overlap.unshift(unit);
        overlapTokens += unit.tokens;
      }
    }
    current = [...overlap, ...rest];
    tokens = overlapTokens + restTokens;
    carried = overlap.length;
  };

  for (const unit of builder.units) {
    const fresh = current.length - carried;
    if (unit.heading && fresh > 0 && tokens >= sectionTokens) cut(current.length, unit);
    while (current.length - carried > 0 && tokens + unit.tokens > builder.budgetFor((current[0] as Unit).path)) {
      // Cut at the best boundary: a heading wherever it is (a section is worth a chunk of its
      // own), anything else only where it leaves the chunk at least half full; else right here.
      const budget = builder.budgetFor((current[0] as Unit).path);
      let at = current.length;
      let strength = unit.strength;
      let prefix = tokens;
      for (let i = current.length - 1; i > carried; i -= 1) {
        const candidate = current[i] as Unit;
        prefix -= candidate.tokens;
        if (candidate.strength > strength && (candidate.heading || prefix >= budget / 2)) {
          at = i;
          strength = candidate.strength;
        }
      }
      cut(at, unit);
    }
    current.push(unit);
    tokens += unit.tokens;
  }
  if (current.length - carried > 0) chunks.push(toChunk(current));
  return chunks;
}

/** The chunks' texts only (tests and callers that need no structure). */
export function chunkText(text: string, options: ChunkOptions): string[] {
  return chunkDocument(text, options).map((chunk) => chunk.text);
}
