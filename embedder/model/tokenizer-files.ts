// The tokenizer files transformers.js reads: a WordPiece model without ## pieces (a
// whole-word lookup; a WordLevel model is not implemented by the tokenizers package
// transformers.js uses and silently falls back to a legacy model), BERT normalizer and
// pre-tokenizer. tokenizer_config.json must name a pad token: without one a padded batch
// fails with "Cannot convert undefined to a BigInt".
import { MAX_INPUT_CHARS_PER_WORD } from './vocabulary.js';

const PAD_TOKEN = '[PAD]';
const UNK_TOKEN = '[UNK]';
const MODEL_MAX_LENGTH = 8192;

/** tokenizer.json for a vocabulary of whole words (ids 2…; 0 and 1 are [PAD] and [UNK]). */
export function tokenizerJson(words: readonly string[]): string {
  const special = (id: number, content: string): string =>
    `    {"id": ${id}, "content": ${JSON.stringify(content)}, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}`;
  const vocab = [PAD_TOKEN, UNK_TOKEN, ...words].map((w, id) => `      ${JSON.stringify(w)}: ${id}`).join(',\n');
  return [
    '{',
    '  "version": "1.0",',
    '  "truncation": null,',
    '  "padding": null,',
    '  "added_tokens": [',
    `${special(0, PAD_TOKEN)},`,
    special(1, UNK_TOKEN),
    '  ],',
    '  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": true, "lowercase": true},',
    '  "pre_tokenizer": {"type": "BertPreTokenizer"},',
    '  "post_processor": null,',
    '  "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},',
    '  "model": {',
    '    "type": "WordPiece",',
    `    "unk_token": ${JSON.stringify(UNK_TOKEN)},`,
    '    "continuing_subword_prefix": "##",',
    `    "max_input_chars_per_word": ${MAX_INPUT_CHARS_PER_WORD},`,
    '    "vocab": {',
    vocab,
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

export const TOKENIZER_CONFIG = {
  clean_up_tokenization_spaces: true,
  do_lower_case: true,
  model_max_length: MODEL_MAX_LENGTH,
  pad_token: PAD_TOKEN,
  strip_accents: null,
  tokenize_chinese_chars: true,
  tokenizer_class: 'PreTrainedTokenizerFast',
  unk_token: UNK_TOKEN,
} as const;
