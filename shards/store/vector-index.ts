// The ANN half of a shard: an hnswlib HNSW graph plus a label-major copy of every stored
// vector (for exact scans and exports), and the label allocator (a free list, so deleted
// slots are reused). Labels are what the catalog (catalog.ts) maps to chunk records.
import hnswlib from 'hnswlib-node';
import { createError } from '../../core/errors.js';
import { decodeVector, type Space } from '../protocol.js';

const { HierarchicalNSW } = hnswlib;
type HnswIndex = InstanceType<typeof HierarchicalNSW>;

export interface VectorIndexParams {
  dim: number;
  space: Space;
  m: number;
  efConstruction: number;
}

export class VectorIndex {
  readonly dim: number;
  readonly space: Space;
  readonly m: number;
  readonly efConstruction: number;
  private readonly index: HnswIndex;
  private capacityNow: number;
  /** Label-major copy of every stored (normalized, for cosine) vector, for exact scans. */
  private vectors: Float32Array;
  readonly freeLabels: number[] = [];
  nextLabel = 0;

  private constructor(params: VectorIndexParams, index: HnswIndex) {
    this.dim = params.dim;
    this.space = params.space;
    this.m = params.m;
    this.efConstruction = params.efConstruction;
    this.index = index;
    this.capacityNow = index.getMaxElements();
    this.vectors = new Float32Array(this.capacityNow * this.dim);
  }

  static create(params: VectorIndexParams, initialCapacity: number): VectorIndex {
    const index = new HierarchicalNSW(params.space, params.dim);
    index.initIndex({ maxElements: initialCapacity, m: params.m, efConstruction: params.efConstruction });
    return new VectorIndex(params, index);
  }

  /** Loads hnswlib's index file and the snapshot's vector copy and label allocator. */
  static load(
    params: VectorIndexParams,
    indexPath: string,
    state: { capacity: number; nextLabel: number; freeLabels: readonly number[]; vectors: Float32Array },
  ): VectorIndex {
    const index = new HierarchicalNSW(params.space, params.dim);
    index.readIndexSync(indexPath);
    // hnswlib reloads an index that holds no elements with capacity 0.
    if (index.getMaxElements() < state.capacity) index.resizeIndex(state.capacity);
    const loaded = new VectorIndex(params, index);
    loaded.nextLabel = state.nextLabel;
    loaded.freeLabels.push(...state.freeLabels);
    loaded.vectors.set(state.vectors);
    return loaded;
  }

  get capacity(): number {
    return this.capacityNow;
  }

  /** Labels allocated in hnswlib, deleted slots awaiting reuse included. */
  get elements(): number {
    return this.index.getCurrentCount();
  }

  /** Doubles the index (and the vector copy) until `newLabels` more labels fit. */
  ensureCapacity(newLabels: number): void {
    const fresh = Math.max(0, newLabels - this.freeLabels.length);
    const needed = this.nextLabel + fresh;
    if (needed <= this.capacityNow) return;
    let capacity = Math.max(this.capacityNow, 1);
    while (capacity < needed) capacity *= 2;
    this.index.resizeIndex(capacity);
    const vectors = new Float32Array(capacity * this.dim);
    vectors.set(this.vectors);
    this.vectors = vectors;
    this.capacityNow = capacity;
  }

  /** A label for a new chunk; a reused one is marked deleted in hnswlib until written. */
  allocate(): number {
    return this.freeLabels.pop() ?? this.nextLabel++;
  }

  write(label: number, vector: Float32Array): void {
    // hnswlib-node accepts only plain arrays (it rejects typed arrays); addPoint on a
    // deleted label unmarks it and rewires it.
    this.index.addPoint(Array.from(vector), label);
    this.vectors.set(vector, label * this.dim);
  }

  release(label: number): void {
    this.index.markDelete(label);
    this.freeLabels.push(label);
  }

  vectorOf(label: number): Float32Array {
    return this.vectors.subarray(label * this.dim, (label + 1) * this.dim);
  }

  /** The first next_label × dim floats: what a snapshot stores. */
  usedVectors(): Float32Array {
    return this.vectors.subarray(0, this.nextLabel * this.dim);
  }

  writeIndex(path: string): void {
    this.index.writeIndexSync(path);
  }

  /** Graph search; scores are higher-is-better (see scoreFromDistance). */
  searchKnn(
    vector: Float32Array,
    k: number,
    ef: number,
    allowed: ((label: number) => boolean) | undefined,
  ): { label: number; score: number }[] {
    this.index.setEf(ef);
    const { neighbors, distances } = this.index.searchKnn(Array.from(vector), k, allowed);
    return neighbors.map((label, i) => ({ label, score: this.scoreFromDistance(distances[i] as number) }));
  }

  private scoreFromDistance(distance: number): number {
    return this.space === 'l2' ? -distance : 1 - distance;
  }

  /** The same score the graph reports, computed exactly against the stored copy. */
  exactScore(query: Float32Array, label: number): number {
    const { vectors, dim } = this;
    const offset = label * dim;
    let sum = 0;
    if (this.space === 'l2') {
      for (let d = 0; d < dim; d++) {
        const diff = (query[d] as number) - (vectors[offset + d] as number);
        sum += diff * diff;
      }
      return -sum;
    }
    for (let d = 0; d < dim; d++) sum += (query[d] as number) * (vectors[offset + d] as number);
    return sum;
  }

  /** Decodes, checks dimension and finiteness, and normalizes for cosine (as hnswlib stores it). */
  decodeChecked(encoded: string, param: string, normalizeCosine = true): Float32Array {
    const vector = decodeVector(encoded);
    if (vector === undefined) {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', `${param} is not base64 of little-endian float32 values`, { param });
    }
    if (vector.length !== this.dim) {
      throw createError('RAGWAY_ERR_INVALID_REQUEST', `${param} has ${vector.length} dimensions; this shard's index has ${this.dim}`, {
        param,
      });
    }
    for (let d = 0; d < vector.length; d++) {
      if (!Number.isFinite(vector[d])) {
        throw createError('RAGWAY_ERR_INVALID_REQUEST', `${param} has a non-finite value at index ${d}`, { param });
      }
    }
    if (this.space === 'cosine' && normalizeCosine) normalize(vector);
    return vector;
  }
}

function normalize(vector: Float32Array): void {
  let norm = 0;
  for (let d = 0; d < vector.length; d++) norm += (vector[d] as number) * (vector[d] as number);
  norm = Math.sqrt(norm);
  // A zero vector stays zero (score 0 against everything), exactly as hnswlib treats it.
  if (norm === 0) return;
  for (let d = 0; d < vector.length; d++) vector[d] = (vector[d] as number) / norm;
}
