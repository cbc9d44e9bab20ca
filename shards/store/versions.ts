// Last-writer-wins bookkeeping (the rules are in index-store.ts's header): the highest
// version seen, and each document's floor — the version of its newest replace or delete —
// kept after its chunks are gone as a tombstone.
import type { FloorLine } from '../snapshot.js';

/** protocol.ts `Version`: wall-clock milliseconds × 1024 plus a counter. */
const VERSION_TICKS_PER_MS = 1024;

interface Floor {
  version: number;
  /** When this store set it (ms since the epoch): tombstones are pruned by this age. */
  at: number;
}

export class VersionFloors {
  /** namespace → document id → floor (kept when the document has no chunk: a tombstone). */
  private readonly floors = new Map<string, Map<string, Floor>>();
  private max = 0;

  get maxVersion(): number {
    return this.max;
  }

  /** A version above everything this store holds, from the wall clock when it is ahead (like the gateway's clock). */
  nextLocal(): number {
    const version = Math.max(Date.now() * VERSION_TICKS_PER_MS, this.max + 1);
    this.max = version;
    return version;
  }

  observe(version: number): void {
    if (version > this.max) this.max = version;
  }

  floorOf(namespace: string, documentId: string): number {
    return this.floors.get(namespace)?.get(documentId)?.version ?? 0;
  }

  raise(namespace: string, documentId: string, version: number, at = Date.now()): boolean {
    if (version <= this.floorOf(namespace, documentId)) return false;
    let floors = this.floors.get(namespace);
    if (floors === undefined) {
      floors = new Map();
      this.floors.set(namespace, floors);
    }
    floors.set(documentId, { version, at });
    return true;
  }

  /** Whether a chunk write at `version` wins, given the chunk's current version (undefined: absent). */
  accepts(namespace: string, documentId: string, held: number | undefined, version: number): boolean {
    if (version < this.floorOf(namespace, documentId)) return false;
    return held === undefined || held < version;
  }

  /** Every (namespace, document) with a floor whose document has no live chunk: the tombstones. */
  *tombstoned(isLive: (namespace: string, documentId: string) => boolean): Generator<[string, string]> {
    for (const [name, floors] of this.floors) {
      for (const documentId of floors.keys()) if (!isLive(name, documentId)) yield [name, documentId];
    }
  }

  /**
   * Drops floors of documents without chunks (tombstones) set longer ago than the retention.
   * Age is local time since the floor was set, not the version: versions need not be clocks.
   */
  prune(retentionMs: number, isLive: (namespace: string, documentId: string) => boolean): void {
    if (retentionMs <= 0) return;
    const horizon = Date.now() - retentionMs;
    for (const [name, floors] of this.floors) {
      for (const [documentId, floor] of floors) {
        if (floor.at < horizon && !isLive(name, documentId)) floors.delete(documentId);
      }
      if (floors.size === 0) this.floors.delete(name);
    }
  }

  *lines(): Generator<FloorLine> {
    for (const [namespace, floors] of this.floors) {
      for (const [documentId, floor] of floors) yield [namespace, documentId, floor.version, floor.at];
    }
  }
}
