// What "ready" means for a gateway, computed in one place so /readyz and the `ragway start`
// banner can never disagree: the embedding model is loaded, every shard has a replica that
// answers with the right protocol and dimension, and no start-up task (the first-run ingest
// of `ragway start`) still holds readiness. Anything that waits on readiness — a Kubernetes
// probe, a compose healthcheck, a k6 setup(), a CI script — then sees the whole system.
import type { FastifyInstance } from 'fastify';
import { checkShard } from '../retriever/check-shard.js';

/** How far a start-up task is, e.g. {detail: "ingesting sample corpus: 120/205 documents", done: 120, total: 205}. */
export interface HoldProgress {
  detail: string;
  done?: number;
  total?: number;
}

export interface WaitingFor extends HoldProgress {
  /** What is not ready: a hold's name ("first-run-ingest") or a shard's ("shard-1"). */
  name: string;
}

/** Start-up tasks that keep the gateway not ready while they run. */
export class ReadinessHolds {
  readonly #holds = new Map<string, () => HoldProgress>();

  /** Not ready until the returned release is called; `progress` is read at every probe. */
  hold(name: string, progress: () => HoldProgress): () => void {
    if (this.#holds.has(name)) throw new Error(`readiness is already held by "${name}"`);
    this.#holds.set(name, progress);
    return () => {
      this.#holds.delete(name);
    };
  }

  pending(): WaitingFor[] {
    return [...this.#holds].map(([name, progress]) => ({ name, ...progress() }));
  }
}

export interface ShardReadiness {
  name: string;
  ok: boolean;
  /** Chunks. */
  count?: number;
  documents?: number;
  epoch?: number;
  error?: string;
}

export interface Readiness {
  ready: boolean;
  model: { id: string; dimensions: number; loaded: boolean };
  shards: ShardReadiness[];
  /** Empty when ready. */
  waiting_for: WaitingFor[];
  /** One line: what it waits for, or "ready". */
  summary: string;
}

export async function evaluateReadiness(app: FastifyInstance, signal: AbortSignal): Promise<Readiness> {
  const { backend } = app.embedder;
  const shards = await Promise.all(
    app.scatter.shards.map(async (client): Promise<ShardReadiness> => {
      try {
        const stats = await checkShard(client, backend.dimensions, signal);
        return { name: client.name, ok: true, count: stats.count, documents: stats.documents, epoch: stats.epoch };
      } catch (err) {
        return { name: client.name, ok: false, error: err instanceof Error ? err.message : String(err) };
      }
    }),
  );
  const waiting: WaitingFor[] = [...app.lifecycle.holds.pending()];
  const failing = shards.filter((shard) => !shard.ok);
  if (failing.length > 0) {
    waiting.push({
      name: 'shards',
      detail: `${failing.length} of ${shards.length} shards have no ready replica: ${failing.map((s) => `${s.name}: ${s.error}`).join('; ')}`,
      done: shards.length - failing.length,
      total: shards.length,
    });
  }
  // The backend is loaded before the app exists (the embedder plugin awaits it), so a gateway
  // that answers at all has its model; it is reported so the body says so.
  const model = { id: backend.modelId, dimensions: backend.dimensions, loaded: true };
  return {
    ready: waiting.length === 0,
    model,
    shards,
    waiting_for: waiting,
    summary: waiting.length === 0 ? 'ready' : waiting.map((entry) => entry.detail).join('; '),
  };
}
