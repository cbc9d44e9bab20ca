// Seeded pseudo-random data for tests: the same seed gives the same vectors on every run
// and machine, so a failing search assertion can be replayed exactly.

/** mulberry32: a tiny 32-bit PRNG; returns a function yielding floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Unit vectors uniformly distributed on the sphere (normalized Gaussian samples). */
export function randomUnitVectors(count: number, dim: number, seed: number): Float32Array[] {
  const random = mulberry32(seed);
  const gaussian = (): number => {
    // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const vectors: Float32Array[] = [];
  for (let i = 0; i < count; i++) {
    const vector = new Float32Array(dim);
    let norm = 0;
    for (let d = 0; d < dim; d++) {
      const x = gaussian();
      vector[d] = x;
      norm += x * x;
    }
    norm = Math.sqrt(norm);
    for (let d = 0; d < dim; d++) vector[d] = (vector[d] as number) / norm;
    vectors.push(vector);
  }
  return vectors;
}
