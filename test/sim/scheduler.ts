/**
 * The simulation's virtual time: one queue of callbacks ordered by (time,
 * sequence), so a seed always replays the same interleaving. A callback may
 * belong to a node: it is dropped once that node's process has died (its
 * generation moved on), and while the node is stalled (SIGSTOP) it waits for
 * the stall to end, like a stopped process's timers and socket buffers.
 */
import type { Clock, Timer } from '../../lib/runtime/ports';

export interface Owner {
  generation: number;
  stalledUntil: number;
}

interface Entry {
  time: number;
  seq: number;
  owner: Owner | null;
  generation: number;
  fn: () => void;
  cancelled: boolean;
}

export class Scheduler {
  now = 0;
  steps = 0;
  private seq = 0;
  private readonly heap: Entry[] = [];

  at(time: number, owner: Owner | null, fn: () => void): Timer {
    const entry: Entry = { time: Math.max(time, this.now), seq: this.seq++, owner, generation: owner?.generation ?? 0, fn, cancelled: false };
    this.push(entry);
    return { cancel: () => void (entry.cancelled = true) };
  }

  after(ms: number, owner: Owner | null, fn: () => void): Timer {
    return this.at(this.now + Math.max(0, ms), owner, fn);
  }

  /** Runs the next callback due at or before `until`; false when there is none. */
  runOne(until: number): boolean {
    for (;;) {
      const top = this.heap[0];
      if (!top || top.time > until) return false;
      this.pop();
      if (top.cancelled || (top.owner && top.owner.generation !== top.generation)) continue;
      if (top.owner && top.owner.stalledUntil > top.time) {
        // Stopped: the callback runs when the process runs again, in its original order.
        top.time = top.owner.stalledUntil;
        this.push(top);
        continue;
      }
      this.now = top.time;
      this.steps++;
      top.fn();
      return true;
    }
  }

  /** The clock one node's code sees. */
  clockFor(owner: Owner, wallBase: number): Clock {
    return {
      now: () => this.now,
      wall: () => wallBase + this.now,
      after: (ms, fn) => this.after(ms, owner, fn),
      soon: (fn) => void this.after(0, owner, fn),
      sleep: (ms) => new Promise((resolve) => this.after(ms, owner, () => resolve())),
    };
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i] as Entry, heap[parent] as Entry)) break;
      [heap[i], heap[parent]] = [heap[parent] as Entry, heap[i] as Entry];
      i = parent;
    }
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop() as Entry;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l] as Entry, heap[m] as Entry)) m = l;
      if (r < heap.length && before(heap[r] as Entry, heap[m] as Entry)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m] as Entry, heap[i] as Entry];
      i = m;
    }
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
