// Which replica a read goes to: "power of two choices" — two random candidates among the
// readable replicas, the one with the lower EWMA latency × (in-flight + 1) wins. That keeps
// load off a replica that is slow or busy without herding every request onto the single
// fastest one (which pure least-latency does). Replicas that are ejected, catching up, or
// whose /readyz says 503 are not candidates — until none is left (panicCandidates).
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

/**
 * Panic routing (Envoy's name for it): when no replica is readable, the replicas out of
 * rotation are still asked, best first, before the shard is declared down — membership is
 * only as fresh as its last probe, and a replica that was ejected or catching up a moment ago
 * may be ready now. Best: the one whose last contact answered, then the shortest failure
 * streak, then the lowest latency score.
 */
export function panicCandidates(replicas: readonly Replica[], exclude: ReadonlySet<Replica>): Replica[] {
  const now = performance.now();
  return replicas
    .filter((replica) => !replica.readable && !exclude.has(replica))
    .sort(
      (a, b) =>
        Number(a.contactFailed) - Number(b.contactFailed) ||
        a.consecutiveFailures - b.consecutiveFailures ||
        a.score(now) - b.score(now),
    );
}
