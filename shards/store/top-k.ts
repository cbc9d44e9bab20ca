// Bounded top-k selection shared by the exact vector scan and the lexical scorer: results
// never depend on scan order because equal scores fall back to the label.

export interface Scored {
  label: number;
  score: number;
}

/** Best first; equal scores fall back to the label so results never depend on scan order. */
export function compareScored(a: Scored, b: Scored): number {
  return compareParts(a.label, a.score, b);
}

/** compareScored for a candidate not yet made into an object. */
function compareParts(label: number, score: number, b: Scored): number {
  return b.score - score || label - b.label;
}

/** Bounded min-heap keeping the k best (score, label) pairs seen. */
export class TopK {
  private readonly heap: Scored[] = [];
  constructor(private readonly k: number) {}

  offer(label: number, score: number): void {
    if (this.heap.length < this.k) {
      this.heap.push({ label, score });
      this.siftUp(this.heap.length - 1);
      return;
    }
    // Compared before anything is allocated: most offers of a long scan lose to the worst kept.
    const worst = this.heap[0];
    if (worst !== undefined && compareParts(label, score, worst) < 0) {
      this.heap[0] = { label, score };
      this.siftDown(0);
    }
  }

  sorted(): Scored[] {
    return [...this.heap].sort(compareScored);
  }

  /** The heap's root is its worst item: "worse" means it would sort later. */
  private worse(i: number, j: number): boolean {
    return compareScored(this.heap[i] as Scored, this.heap[j] as Scored) > 0;
  }

  private swap(i: number, j: number): void {
    const tmp = this.heap[i] as Scored;
    this.heap[i] = this.heap[j] as Scored;
    this.heap[j] = tmp;
  }

  private siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.worse(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(i: number): void {
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let worst = i;
      if (left < this.heap.length && this.worse(left, worst)) worst = left;
      if (right < this.heap.length && this.worse(right, worst)) worst = right;
      if (worst === i) return;
      this.swap(i, worst);
      i = worst;
    }
  }
}
