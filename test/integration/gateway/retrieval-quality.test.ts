// Retrieval quality on the labelled sample-corpus set (test/fixtures/sample-corpus-questions.json):
// the sample corpus `ragway start` ingests (the installed packages' READMEs), ingested once into
// real shard processes with the real model, then every question searched in each mode and
// scored with the standard nDCG@10 / recall / MRR. A regression guard, not a benchmark: it
// asserts how modes compare and reports the figures (run with --test-reporter=spec to see them).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { batchDocuments, openSampleCorpus } from '../../../cli/corpus.js';
import { packageRoot } from '../../../core/package-paths.js';
import { buildApp } from '../../../gateway/app.js';
import { loadConfig } from '../../../gateway/config.js';
import type { OnnxEmbeddingBackend } from '../../../embedder/backends/onnx.js';
import { evaluateRuns, type Judgements, type QualityReport } from '../../../retriever/eval-metrics.js';
import { loadDefaultBackend, startShards, tempDir, type TestShards } from '../../helpers/cluster.js';

interface LabelledSet {
  questions: { id: string; query: string; relevant: Record<string, number> }[];
}

const SET = JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'sample-corpus-questions.json'), 'utf8')) as LabelledSet;
const QRELS = new Map<string, Judgements>(SET.questions.map((question) => [question.id, new Map(Object.entries(question.relevant))]));

describe('retrieval quality on the labelled sample-corpus questions', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let shards: TestShards;
  let backend: OnnxEmbeddingBackend;
  let app: FastifyInstance;
  const documentIds = new Set<string>();
  let chunks = 0;

  /** Document ids of the top 100 for every question (100 for recall@100; chunks of one document count once). */
  async function run(extra: Record<string, unknown>): Promise<{ report: QualityReport; rankings: Map<string, string[]> }> {
    const rankings = new Map<string, string[]>();
    for (const question of SET.questions) {
      const response = await app.inject({
        method: 'POST',
        url: '/v1/search',
        payload: { query: question.query, k: 100, include: [], cache: { mode: 'bypass' }, ...extra },
      });
      assert.equal(response.statusCode, 200, response.body);
      rankings.set(question.id, (response.json().results as { document_id: string }[]).map((hit) => hit.document_id));
    }
    return { report: evaluateRuns(rankings, QRELS), rankings };
  }

  before(async () => {
    dir = await tempDir('quality');
    backend = await loadDefaultBackend();
    shards = await startShards(2, dir.path, backend.dimensions);
    app = await buildApp(loadConfig({}, { shards: shards.spec, logLevel: 'silent', searchMaxK: 100 }), { embeddingBackend: backend, defaultMetrics: false });
    // One ingest for every mode: the whole corpus is the slow part on a small machine.
    const source = await openSampleCorpus(join(packageRoot(), 'node_modules'));
    for await (const batch of batchDocuments(source.documents(), { maxDocuments: 32, maxBytes: 2 * 1024 * 1024 })) {
      const result = await app.documents.ingest('default', batch);
      chunks += result.chunks_total;
      for (const document of batch) documentIds.add(document.id as string);
    }
  });

  after(async () => {
    await app?.close();
    await shards?.stop();
    await backend?.close();
    await dir?.remove();
  });

  it('has at least 60 questions, each judged against documents that are in the corpus', () => {
    assert.ok(SET.questions.length >= 60, `${SET.questions.length} questions`);
    assert.equal(new Set(SET.questions.map((question) => question.id)).size, SET.questions.length, 'question ids are unique');
    for (const question of SET.questions) {
      const judged = Object.entries(question.relevant);
      assert.ok(judged.some(([, grade]) => grade >= 2), `${question.id} has a document that answers it`);
      for (const [id] of judged) assert.ok(documentIds.has(id), `${question.id} judges ${id}, which the sample corpus does not hold`);
    }
  });

  it('answers the TTL question from lru-cache: first by vector, in the top 3 by the default (hybrid)', async (t) => {
    t.diagnostic(`${documentIds.size} documents, ${chunks} chunks`);
    const ttl = SET.questions.find((question) => question.query === 'how do I set a TTL on cache entries');
    const byVector = (await run({ mode: 'vector' })).rankings.get(ttl?.id ?? '');
    assert.equal(byVector?.[0], 'lru-cache/README.md');
    // BM25 weighs toad-cache's README (judged relevant too) first for this wording.
    const byDefault = (await run({})).rankings.get(ttl?.id ?? '');
    t.diagnostic(`default mode top 3: ${byDefault?.slice(0, 3).join(', ')}`);
    assert.ok(byDefault?.slice(0, 3).includes('lru-cache/README.md'), `default top 3: ${byDefault?.slice(0, 3).join(', ')}`);
  });

  it('scores every search mode, and hybrid is at least as good as vector on nDCG@10', async (t) => {
    const reports: Record<string, QualityReport> = {};
    for (const mode of ['vector', 'lexical', 'hybrid'] as const) {
      reports[mode] = (await run({ mode })).report;
      t.diagnostic(`${mode}: ${JSON.stringify(reports[mode])}`);
    }
    const { vector, lexical, hybrid } = reports as Record<'vector' | 'lexical' | 'hybrid', QualityReport>;
    assert.equal(vector.queries, SET.questions.length);
    // Far below what each measures (see the README); only a broken retrieval path falls under them.
    assert.ok(vector.ndcg_at_10 > 0.3, `vector nDCG@10 ${vector.ndcg_at_10}`);
    assert.ok(lexical.ndcg_at_10 > 0.3, `lexical nDCG@10 ${lexical.ndcg_at_10}`);
    // The regression guard: fusing BM25 in must not make retrieval worse than vectors alone.
    assert.ok(hybrid.ndcg_at_10 >= vector.ndcg_at_10, `hybrid ${hybrid.ndcg_at_10} < vector ${vector.ndcg_at_10}`);
  });
});
