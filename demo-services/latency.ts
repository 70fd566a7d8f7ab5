/**
 * Log-bucketed latency histogram: constant memory however long the client runs, about 1% relative
 * error, which is plenty for a once-a-second p50/p99 line.
 */
const MIN_MS = 0.01;
const GROWTH = Math.log(1.02);

export class LatencyHistogram {
  private readonly buckets = new Map<number, number>();
  private n = 0;
  private maxMs = 0;

  get count(): number {
    return this.n;
  }

  get max(): number {
    return this.maxMs;
  }

  record(ms: number): void {
    const b = Math.max(0, Math.floor(Math.log(Math.max(ms, MIN_MS) / MIN_MS) / GROWTH));
    this.buckets.set(b, (this.buckets.get(b) ?? 0) + 1);
    this.n++;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  /** p in [0, 100]; NaN when empty. Reports the bucket's midpoint, capped at the true maximum. */
  percentile(p: number): number {
    if (this.n === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    for (const b of [...this.buckets.keys()].sort((x, y) => x - y)) {
      seen += this.buckets.get(b)!;
      if (seen >= rank) return Math.min(MIN_MS * Math.exp((b + 0.5) * GROWTH), this.maxMs);
    }
    return this.maxMs;
  }

  reset(): void {
    this.buckets.clear();
    this.n = 0;
    this.maxMs = 0;
  }
}
