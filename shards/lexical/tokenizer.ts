// The analyzer both sides of BM25 share (documents at write time, queries at search time),
// modelled on Elasticsearch's `english` analyzer: Unicode NFKC, accents folded, lowercased,
// possessive 's dropped, split on anything that is not a letter or digit, Lucene's English
// stopwords removed, Porter-stemmed (the `stemmer` package, pinned). Changing it changes
// what old indexes mean: the lexical index is rebuilt from stored text at open, so an
// upgrade only needs a restart.
import { stemmer } from 'stemmer';

/** Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (what Elasticsearch's `english` analyzer removes). */
const STOPWORDS = new Set([
  'a', 'an', 'and', 'are', 'as', 'at', 'be', 'but', 'by', 'for', 'if', 'in', 'into', 'is', 'it', 'no', 'not', 'of', 'on',
  'or', 'such', 'that', 'the', 'their', 'then', 'there', 'these', 'they', 'this', 'to', 'was', 'will', 'with',
]);

const TOKEN = /[\p{L}\p{N}]+/gu;
const POSSESSIVE = /['\u2019]s\b/gu;
const MARKS = /\p{M}+/gu;
/** Longer "words" are base64, hashes or garbage: they would only bloat the postings. */
const MAX_TOKEN_CHARS = 64;

export function tokenize(text: string): string[] {
  const folded = text.normalize('NFKD').replace(MARKS, '').normalize('NFKC').toLowerCase().replace(POSSESSIVE, '');
  const terms: string[] = [];
  for (const match of folded.matchAll(TOKEN)) {
    const word = match[0];
    if (word.length > MAX_TOKEN_CHARS || STOPWORDS.has(word)) continue;
    terms.push(stemmer(word));
  }
  return terms;
}

/** Term → occurrences, in first-seen order. */
export function termFrequencies(terms: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const term of terms) counts.set(term, (counts.get(term) ?? 0) + 1);
  return counts;
}
