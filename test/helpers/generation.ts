// Reading a generator's event stream in tests.
import assert from 'node:assert/strict';
import { isRagwayError, type RagwayError } from '../../core/errors.js';
import type { GenerationEvent } from '../../gateway/providers/provider.js';

/** Events until the iterator ends or throws; the error (if any) comes back beside them. */
export async function drain(iterable: AsyncIterable<GenerationEvent>): Promise<{ events: GenerationEvent[]; error?: RagwayError }> {
  const events: GenerationEvent[] = [];
  try {
    for await (const event of iterable) events.push(event);
    return { events };
  } catch (err) {
    assert.ok(isRagwayError(err), `expected a RagwayError, got ${String(err)}`);
    return { events, error: err };
  }
}
