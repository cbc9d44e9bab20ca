// Splits Markdown (or plain text, which is Markdown without markup) into the blocks a
// chunker must not cut through carelessly: headings, paragraphs, fenced or indented code,
// lists and tables, each with its original lines (newlines kept). Only the CommonMark block
// structure that READMEs use is recognised; inline markup is left as it is. Pure.

export type BlockKind = 'heading' | 'paragraph' | 'code' | 'list' | 'table';

export interface Block {
  kind: BlockKind;
  /** The block's lines as written (fences included for code; trailing blank lines dropped). */
  lines: string[];
  /** Headings only: 1–6 and the heading's text without its markers. */
  level?: number;
  title?: string;
}

const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})/;
const ATX_HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const SETEXT_UNDERLINE = /^ {0,3}(=+|-+)[ \t]*$/;
const THEMATIC_BREAK = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const LIST_ITEM = /^ {0,3}(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)/;
const TABLE_ROW = /^ {0,3}\|/;
const DELIMITER_ROW = /^[ \t]*\|?(?:[ \t]*:?-+:?[ \t]*\|)+[ \t]*(?::?-+:?[ \t]*)?$/;
const INDENTED = /^(?: {4}|\t)/;
const BLANK = /^[ \t]*$/;

/** Heading text as a reader sees it: links and emphasis markers removed, code spans kept. */
export function headingTitle(raw: string): string {
  return raw
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/(\*\*|__|\*|_)(\S(?:.*?\S)?)\1/g, '$2')
    .replace(/\s+/g, ' ')
    .trim();
}

export function parseBlocks(text: string): Block[] {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const blocks: Block[] = [];
  let paragraph: string[] = [];
  const flushParagraph = (): void => {
    if (paragraph.length > 0) blocks.push({ kind: 'paragraph', lines: paragraph });
    paragraph = [];
  };

  let i = 0;
  while (i < lines.length) {
    const line = lines[i] as string;
    if (BLANK.test(line)) {
      flushParagraph();
      i += 1;
      continue;
    }
    const fence = FENCE_OPEN.exec(line);
    if (fence !== null) {
      flushParagraph();
      const marker = fence[1] as string;
      const close = new RegExp(`^ {0,3}${marker[0] === '`' ? '`' : '~'}{${marker.length},}[ \\t]*$`);
      const code = [line];
      i += 1;
      // An unclosed fence runs to the end of the document, as CommonMark says.
      while (i < lines.length) {
        const inner = lines[i] as string;
        code.push(inner);
        i += 1;
        if (close.test(inner)) break;
      }
      blocks.push({ kind: 'code', lines: code });
      continue;
    }
    const atx = ATX_HEADING.exec(line);
    if (atx !== null) {
      flushParagraph();
      blocks.push({ kind: 'heading', lines: [line], level: (atx[1] as string).length, title: headingTitle(atx[2] ?? '') });
      i += 1;
      continue;
    }
    if (paragraph.length > 0 && SETEXT_UNDERLINE.test(line)) {
      const underline = line.trim()[0] === '=' ? 1 : 2;
      blocks.push({ kind: 'heading', lines: [...paragraph, line], level: underline, title: headingTitle(paragraph.join(' ')) });
      paragraph = [];
      i += 1;
      continue;
    }
    if (THEMATIC_BREAK.test(line)) {
      // A rule carries no words; it only ends what came before.
      flushParagraph();
      i += 1;
      continue;
    }
    if (LIST_ITEM.test(line)) {
      flushParagraph();
      const list = [line];
      i += 1;
      while (i < lines.length) {
        const next = lines[i] as string;
        if (BLANK.test(next)) {
          // A blank line continues the list only when an item or an indented line follows.
          let j = i + 1;
          while (j < lines.length && BLANK.test(lines[j] as string)) j += 1;
          const after = lines[j];
          if (after === undefined || !(LIST_ITEM.test(after) || /^[ \t]{2,}\S/.test(after))) break;
          list.push(...lines.slice(i, j));
          i = j;
          continue;
        }
        if (FENCE_OPEN.test(next) && !/^[ \t]{2,}/.test(next)) break;
        if (ATX_HEADING.test(next) || THEMATIC_BREAK.test(next) || TABLE_ROW.test(next)) break;
        // Items, indented continuations, and lazy continuation lines of an item's paragraph.
        list.push(next);
        i += 1;
      }
      blocks.push({ kind: 'list', lines: list });
      continue;
    }
    if (TABLE_ROW.test(line)) {
      flushParagraph();
      const table: string[] = [];
      while (i < lines.length && TABLE_ROW.test(lines[i] as string)) {
        const row = lines[i] as string;
        // The delimiter row's dash runs are padding; a tokenizer that counts each "-" would
        // spend a chunk's budget on them. `| --- | :-: |` is the same table.
        table.push(DELIMITER_ROW.test(row) ? row.trim().replace(/[ \t]*(:?)-+(:?)[ \t]*/g, ' $1---$2 ').trim() : row);
        i += 1;
      }
      blocks.push({ kind: 'table', lines: table });
      continue;
    }
    if (paragraph.length === 0 && INDENTED.test(line)) {
      // Indented code: runs of indented lines, blank lines inside included.
      const code: string[] = [];
      while (i < lines.length && (INDENTED.test(lines[i] as string) || BLANK.test(lines[i] as string))) {
        code.push(lines[i] as string);
        i += 1;
      }
      while (code.length > 0 && BLANK.test(code.at(-1) as string)) code.pop();
      blocks.push({ kind: 'code', lines: code });
      continue;
    }
    paragraph.push(line);
    i += 1;
  }
  flushParagraph();
  return blocks;
}

/** The opening and closing fence lines of a fenced code block, so each piece of a split one is valid Markdown again. */
export function codeFences(lines: readonly string[]): { open: string; close: string; body: string[] } | undefined {
  const first = lines[0];
  if (first === undefined) return undefined;
  const fence = FENCE_OPEN.exec(first);
  if (fence === null) return undefined;
  const marker = fence[1] as string;
  const last = lines.at(-1) as string;
  const closed = lines.length > 1 && new RegExp(`^ {0,3}${marker[0] === '`' ? '`' : '~'}{${marker.length},}[ \\t]*$`).test(last);
  return { open: first, close: closed ? last : marker, body: lines.slice(1, closed ? -1 : undefined) };
}

/** Whether a list line starts an item at the list's outermost indentation (a place to cut a long list). */
/** Whether a table line is the delimiter row under its header. */
export function isDelimiterRow(line: string): boolean {
  return DELIMITER_ROW.test(line);
}

export function isTopLevelItem(line: string, baseIndent: number): boolean {
  if (!LIST_ITEM.test(line)) return false;
  const indent = /^[ \t]*/.exec(line)?.[0].length ?? 0;
  return indent <= baseIndent;
}
