// The generation models this gateway serves, by the id clients use: the configured LLM
// upstreams and the built-in extractive generator. Listed by /v1/models; looked up by every
// answer request (an unknown id is a 404 naming the ones that exist).
import { createError } from '../../core/errors.js';
import type { Generator } from './provider.js';

export class GeneratorRegistry {
  readonly #generators = new Map<string, Generator>();
  readonly #defaultId: string;

  constructor(generators: readonly Generator[], defaultId?: string) {
    for (const generator of generators) {
      if (this.#generators.has(generator.id)) throw new Error(`generation model "${generator.id}" is registered twice`);
      this.#generators.set(generator.id, generator);
    }
    const fallback = generators[0];
    if (fallback === undefined) throw new Error('at least one generation model is needed');
    this.#defaultId = defaultId !== undefined && defaultId !== '' ? defaultId : fallback.id;
    if (!this.#generators.has(this.#defaultId)) {
      throw new Error(`the default model "${this.#defaultId}" is not one of: ${this.ids().join(', ')}`);
    }
  }

  get defaultId(): string {
    return this.#defaultId;
  }

  ids(): string[] {
    return [...this.#generators.keys()];
  }

  list(): Generator[] {
    return [...this.#generators.values()];
  }

  /** The generator for `id` (the default when undefined); 404 RAGWAY_ERR_MODEL_NOT_FOUND otherwise. */
  get(id: string | undefined): Generator {
    const generator = this.#generators.get(id ?? this.#defaultId);
    if (generator === undefined) {
      throw createError('RAGWAY_ERR_MODEL_NOT_FOUND', `the model "${id}" does not exist; available: ${this.ids().join(', ')}`, {
        param: 'model',
      });
    }
    return generator;
  }
}
