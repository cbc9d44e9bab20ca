// The vocabulary filter must agree with the tokenizer transformers.js really runs: a word it
// keeps comes out of the tokenizer as exactly that one token, and a word it drops never can
// (otherwise its table row would be dead weight, or a word would silently become [UNK]).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { TOKENIZER_CONFIG, tokenizerJson } from '../../../../embedder/model/tokenizer-files.js';
import { isVocabularyWord } from '../../../../embedder/model/vocabulary.js';

const KEPT = ['cat', 'mp3', '1990s', 'straße', 'ﬁ', '中', 'добро', 'x'.repeat(100)];
const DROPPED = ['Cat', 'café', 'naïve', 'well-known', "n't", 'u.s.', '中国', 'a\u00adb', 'x'.repeat(101), ''];

describe('isVocabularyWord', () => {
  const words = [...KEPT, ...DROPPED.filter(isVocabularyWord)];
  const tokenizer = new PreTrainedTokenizer(JSON.parse(tokenizerJson(words)), TOKENIZER_CONFIG);

  it('keeps words the tokenizer produces as one token', () => {
    for (const word of KEPT) {
      assert.equal(isVocabularyWord(word), true, word);
      assert.deepEqual(tokenizer.tokenize(word), [word], word);
    }
  });

  it('drops words the tokenizer splits or rewrites', () => {
    for (const word of DROPPED) {
      assert.equal(isVocabularyWord(word), false, word);
      assert.notDeepEqual(tokenizer.tokenize(word), [word], word);
    }
  });

  it('drops lone punctuation on purpose', () => {
    for (const mark of [',', '?', '"', '$', '“']) assert.equal(isVocabularyWord(mark), false, mark);
  });
});
