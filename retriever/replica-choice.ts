// Which replica a read goes to: "power of two choices" — two random candidates among the
// readable replicas, the one with the lower EWMA latency × (in-flight + 1) wins. That keeps
// load off a replica that is slow or busy without herding every request onto the single
// fastest one (which pure least-latency does). Replicas that are ejected, catching up, or
// whose /readyz says 503 are not candidates.
import type { Replica } from './replica.js';

/** Power of two choices among the readable replicas not in `exclude`. */
export function pickReplica(replicas: readonly Replica[], exclude: ReadonlySet<Replica>, random: () => number): Replica | undefined {
  const candidates = replicas.filter((replica) => replica.readable && !exclude.has(replica));
  if (candidates.length <= 1) return candidates[0];
  const first = Math.floor(random() * candidates.length);
  let second = Math.floor(random() * (candidates.length - 1));
  if (second >= first) second += 1;
  const a = candidates[first] as Replica;
  const b = candidates[second] as Replica;
  const now = performance.now();
  return b.score(now) < a.score(now) ? b : a;
}
