// The embedding table: GloVe rows weighted and projected as SIF prescribes.
// SIF (Arora, Liang, Ma 2017): weight each word by a/(a + p(w)) and remove the projection on the
// first principal component. GloVe ships no counts, so p(w) comes from the frequency rank via
// Zipf's law, p(r) = 1/(r·H_N). Without a corpus of sentences, the component is the top
// eigenvector of the expected second moment of sentence vectors under that same p(w).
// Both steps are linear, so they commute with the sum over tokens and are baked into the table:
// row(w) = (I − uuᵀ)·a/(a + p(w))·v(w). The graph then only sums masked rows and normalizes;
// dividing by the token count is skipped because the L2 norm cancels it.

import type { SourceData } from './glove-source.js';

/** SIF smoothing constant a in a / (a + p(w)) (Arora et al. 2017 use 1e-3 to 1e-4). */
export const SIF_A = 1e-3;
/**
 * Sentence length assumed when estimating the principal component without a corpus: the
 * second moment of a mean of L i.i.d. word vectors is Σp·ssᵀ/L + (1 − 1/L)·μμᵀ.
 */
export const PCA_SENTENCE_LENGTH = 10;
const POWER_ITERATIONS = 300;

export interface SifTable {
  table: Float32Array;
  principalComponent: Float64Array;
}

export function sifTable(source: SourceData): SifTable {
  const { dimensions: dim, words, ranks, vectors, sourceSize } = source;
  let harmonic = 0;
  for (let r = 1; r <= sourceSize; r++) harmonic += 1 / r;

  const count = words.length;
  const prob = new Float64Array(count);
  const weighted = new Float64Array(count * dim);
  for (let i = 0; i < count; i++) {
    const p = 1 / (((ranks[i] ?? 0) + 1) * harmonic);
    prob[i] = p;
    const w = SIF_A / (SIF_A + p);
    for (let d = 0; d < dim; d++) weighted[i * dim + d] = w * (vectors[i * dim + d] ?? 0);
  }

  // M = Σ p·ssᵀ / L + (1 − 1/L)·μμᵀ: the upper triangle is accumulated four words at a time
  // (a quarter of the passes over M; this loop is most of the build time), then mirrored.
  const mean = new Float64Array(dim);
  const moment = new Float64Array(dim * dim);
  const W = weighted;
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    const b0 = i * dim;
    const b1 = b0 + dim;
    const b2 = b1 + dim;
    const b3 = b2 + dim;
    const p0 = prob[i] ?? 0;
    const p1 = prob[i + 1] ?? 0;
    const p2 = prob[i + 2] ?? 0;
    const p3 = prob[i + 3] ?? 0;
    for (let a = 0; a < dim; a++) {
      const q0 = p0 * (W[b0 + a] ?? 0);
      const q1 = p1 * (W[b1 + a] ?? 0);
      const q2 = p2 * (W[b2 + a] ?? 0);
      const q3 = p3 * (W[b3 + a] ?? 0);
      mean[a] = (mean[a] ?? 0) + (q0 + q1 + q2 + q3);
      const row = a * dim;
      for (let b = a; b < dim; b++) {
        moment[row + b] =
          (moment[row + b] ?? 0) + (q0 * (W[b0 + b] ?? 0) + q1 * (W[b1 + b] ?? 0) + q2 * (W[b2 + b] ?? 0) + q3 * (W[b3 + b] ?? 0));
      }
    }
  }
  for (; i < count; i++) {
    const base = i * dim;
    const p = prob[i] ?? 0;
    for (let a = 0; a < dim; a++) {
      const q = p * (W[base + a] ?? 0);
      mean[a] = (mean[a] ?? 0) + q;
      const row = a * dim;
      for (let b = a; b < dim; b++) moment[row + b] = (moment[row + b] ?? 0) + q * (W[base + b] ?? 0);
    }
  }
  const L = PCA_SENTENCE_LENGTH;
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = (moment[a * dim + b] ?? 0) / L + (1 - 1 / L) * (mean[a] ?? 0) * (mean[b] ?? 0);
      moment[a * dim + b] = v;
      moment[b * dim + a] = v;
    }
  }

  // Power iteration from a fixed start vector, a fixed number of steps: deterministic.
  let u = new Float64Array(dim).fill(1 / Math.sqrt(dim));
  for (let it = 0; it < POWER_ITERATIONS; it++) {
    const next = new Float64Array(dim);
    let norm = 0;
    for (let a = 0; a < dim; a++) {
      let s = 0;
      for (let b = 0; b < dim; b++) s += (moment[a * dim + b] ?? 0) * (u[b] ?? 0);
      next[a] = s;
      norm += s * s;
    }
    norm = Math.sqrt(norm);
    for (let a = 0; a < dim; a++) next[a] = (next[a] ?? 0) / norm;
    u = next;
  }

  // Rows 0 and 1 ([PAD], [UNK]) stay zero: they add nothing to a sentence.
  const table = new Float32Array((count + 2) * dim);
  for (let i = 0; i < count; i++) {
    const base = i * dim;
    let dot = 0;
    for (let d = 0; d < dim; d++) dot += (weighted[base + d] ?? 0) * (u[d] ?? 0);
    const out = (i + 2) * dim;
    for (let d = 0; d < dim; d++) table[out + d] = (weighted[base + d] ?? 0) - dot * (u[d] ?? 0);
  }
  return { table, principalComponent: u };
}
