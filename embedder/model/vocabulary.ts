// Which source words enter the vocabulary.
// Only words that the tokenizer can produce as one pre-token, so no table row is
// dead weight. This mirrors BertNormalizer and BertPreTokenizer in both @huggingface/tokenizers
// (transformers.js) and the Rust tokenizers (Python): a word is kept when normalizing it is a
// no-op and the pre-tokenizer does not split it.

const PUNCTUATION = '\\p{P}\\u0021-\\u002F\\u003A-\\u0040\\u005B-\\u0060\\u007B-\\u007E';
const ONE_PRE_TOKEN = new RegExp(`^[^\\s${PUNCTUATION}]+$`, 'u');
// Lone punctuation is also a pre-token, but it carries no meaning for retrieval and SIF would
// give rarer marks ("?") near-full weight; it maps to [UNK], a zero row, instead.
const WORD_CHARACTER = /[\p{L}\p{N}]/u;
const CONTROL = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\uFFFD\0]/u;
const COMBINING_MARK = /\p{Mn}/gu;
export const MAX_INPUT_CHARS_PER_WORD = 100;

function isChineseCodePoint(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

export function isVocabularyWord(word: string): boolean {
  if (word.length === 0 || [...word].length > MAX_INPUT_CHARS_PER_WORD) return false;
  if (!ONE_PRE_TOKEN.test(word) || !WORD_CHARACTER.test(word) || CONTROL.test(word)) return false;
  for (const ch of word) {
    // handle_chinese_chars puts spaces around each CJK ideograph, so longer words never survive
    if (isChineseCodePoint(ch.codePointAt(0) ?? 0) && word.length > ch.length) return false;
  }
  const lowered = word.toLowerCase();
  return lowered === word && lowered.normalize('NFD').replace(COMBINING_MARK, '') === word;
}

