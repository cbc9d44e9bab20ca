// The BM25 index scores what a plain BM25 over its live documents scores, through adds,
// replacements, removals and reused labels (the vector index hands labels out again from a
// free list), per namespace, with filters and with statistics from elsewhere. The reference
// here is the textbook formula over the same analyzer's tokens, written without the index's
// per-label arrays and reused scratch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BM25_DEFAULTS, Bm25Index } from '../../../shards/lexical/bm25-index.js';
import { termFrequencies, tokenize } from '../../../shards/lexical/tokenizer.js';
import type { LexicalStats } from '../../../shards/protocol.js';
import { mulberry32 } from '../../helpers/random.js';

const VOCABULARY = Array.from({ length: 120 }, (_, i) => `term${i.toString(36)}q`);

interface Live {
  namespace: string;
  text: string;
  parity: 'even' | 'odd';
}

function referenceStats(live: Map<number, Live>, namespace: string, terms: Iterable<string>): LexicalStats {
  const documents = [...live.values()].filter((doc) => doc.namespace === namespace).map((doc) => tokenize(doc.text));
  const df: Record<string, number> = {};
  for (const term of terms) df[term] = documents.filter((tokens) => tokens.includes(term)).length;
  return { doc_count: documents.length, total_length: documents.reduce((sum, tokens) => sum + tokens.length, 0), df };
}

function referenceSearch(live: Map<number, Live>, namespace: string, query: Map<string, number>, stats: LexicalStats, k: number, keep: (doc: Live) => boolean) {
  const { k1, b } = BM25_DEFAULTS;
  const avgdl = stats.total_length / stats.doc_count || 1;
  const scored: { label: number; score: number }[] = [];
  for (const [label, doc] of live) {
    if (doc.namespace !== namespace || !keep(doc)) continue;
    const tokens = tokenize(doc.text);
    const tfs = termFrequencies(tokens);
    let score = 0;
    let matched = false;
    for (const term of [...query.keys()].sort()) {
      const tf = tfs.get(term);
      if (tf === undefined) continue;
      matched = true;
      const df = stats.df[term] as number;
      const idf = Math.log(1 + (stats.doc_count - df + 0.5) / (df + 0.5));
      score += ((query.get(term) as number) * idf * tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * tokens.length) / avgdl));
    }
    if (matched) scored.push({ label, score });
  }
  return scored.sort((x, y) => y.score - x.score || x.label - y.label).slice(0, k);
}

function randomText(random: () => number): string {
  const length = 3 + Math.floor(random() * 40);
  return Array.from({ length }, () => VOCABULARY[Math.floor(VOCABULARY.length * random() ** 2)] as string).join(' ');
}

describe('Bm25Index', () => {
  it('scores exactly as plain BM25 through adds, replacements, removals and reused labels', () => {
    const random = mulberry32(42);
    const index = new Bm25Index();
    const live = new Map<number, Live>();
    const free: number[] = [];
    let nextLabel = 0;
    let searches = 0;
    for (let step = 0; step < 3000; step += 1) {
      const action = random();
      if (action < 0.55 || live.size === 0) {
        // Labels come back from the free list first, as the vector index hands them out.
        const label = free.pop() ?? nextLabel++;
        const doc: Live = { namespace: random() < 0.8 ? 'default' : 'other', text: randomText(random), parity: label % 2 === 0 ? 'even' : 'odd' };
        index.add(label, doc.namespace, doc.text);
        live.set(label, doc);
      } else if (action < 0.7) {
        const labels = [...live.keys()];
        const label = labels[Math.floor(random() * labels.length)] as number;
        const doc = { ...(live.get(label) as Live), text: randomText(random) };
        index.add(label, doc.namespace, doc.text);
        live.set(label, doc);
      } else if (action < 0.85) {
        const labels = [...live.keys()];
        const label = labels[Math.floor(random() * labels.length)] as number;
        index.remove(label);
        live.delete(label);
        free.push(label);
      } else {
        const namespace = random() < 0.8 ? 'default' : 'other';
        const query = termFrequencies(tokenize(randomText(random).split(' ').slice(0, 1 + Math.floor(random() * 4)).join(' ')));
        const stats = index.stats(namespace, query.keys());
        assert.deepEqual(stats, referenceStats(live, namespace, query.keys()), `statistics at step ${step}`);
        const k = 1 + Math.floor(random() * 15);
        const filtered = random() < 0.3;
        const got = index.search(namespace, {
          terms: query,
          k,
          stats,
          ...BM25_DEFAULTS,
          predicate: filtered ? (metadata) => metadata['parity'] === 'even' : undefined,
          metadataOf: (label) => ({ parity: (live.get(label) as Live).parity }),
        });
        const want = referenceSearch(live, namespace, query, stats, k, (doc) => !filtered || doc.parity === 'even');
        assert.deepEqual(got.map((hit) => hit.label), want.map((hit) => hit.label), `ranking at step ${step}`);
        for (const [i, hit] of got.entries()) assert.ok(Math.abs(hit.score - (want[i] as { score: number }).score) < 1e-9, `score at step ${step}`);
        searches += 1;
      }
    }
    assert.ok(searches > 300, `only ${searches} searches ran`);
  });

  it('uses statistics it is given (the gateway sums every shard\'s) over its own', () => {
    const index = new Bm25Index();
    const live = new Map<number, Live>([
      [0, { namespace: 'default', text: 'apple banana', parity: 'even' }],
      [1, { namespace: 'default', text: 'apple cherry cherry', parity: 'odd' }],
      [2, { namespace: 'default', text: 'banana banana date', parity: 'even' }],
    ]);
    for (const [label, doc] of live) index.add(label, doc.namespace, doc.text);
    const terms = new Map([['appl', 1], ['banana', 1], ['cherri', 1]]);
    // As if other shards held many more documents: apple common, banana and cherry rare.
    const global: LexicalStats = { doc_count: 1000, total_length: 3000, df: { appl: 900, banana: 4, cherri: 3 } };
    const got = index.search('default', { terms, k: 3, stats: global, ...BM25_DEFAULTS, predicate: undefined, metadataOf: () => ({}) });
    const want = referenceSearch(live, 'default', terms, global, 3, () => true);
    assert.deepEqual(got.map((hit) => hit.label), want.map((hit) => hit.label));
    for (const [i, hit] of got.entries()) assert.ok(Math.abs(hit.score - (want[i] as { score: number }).score) < 1e-12);
    // Its own statistics rank differently: what the given ones are for.
    const own = index.search('default', { terms, k: 3, stats: index.stats('default', terms.keys()), ...BM25_DEFAULTS, predicate: undefined, metadataOf: () => ({}) });
    assert.notDeepEqual(own.map((hit) => hit.score), got.map((hit) => hit.score));
  });

  it('forgets a namespace whose last document went, and searches it as empty', () => {
    const index = new Bm25Index();
    index.add(5, 'gone', 'lonely words');
    index.remove(5);
    assert.deepEqual(index.stats('gone', ['lone']), { doc_count: 0, total_length: 0, df: { lone: 0 } });
    const stats: LexicalStats = { doc_count: 10, total_length: 20, df: { lone: 1 } };
    assert.deepEqual(index.search('gone', { terms: new Map([['lone', 1]]), k: 3, stats, ...BM25_DEFAULTS, predicate: undefined, metadataOf: () => ({}) }), []);
  });
});
