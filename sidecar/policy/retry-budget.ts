/**
 * A retry budget (Linkerd's idea, Finagle's shape): retries may add at most `percent` of the
 * calls seen over the last `windowSeconds`, plus `minPerSecond` retries a second whatever the
 * traffic, so retries cannot multiply an outage. Counts live in one-second buckets: O(1), no
 * allocation per call.
 */
export class RetryBudget {
  private readonly calls: Int32Array;
  private readonly retries: Int32Array;
  private readonly seconds: Float64Array;
  exhausted = 0;

  constructor(
    private readonly percent: number,
    private readonly minPerSecond: number,
    private readonly windowSeconds = 10,
  ) {
    this.calls = new Int32Array(windowSeconds);
    this.retries = new Int32Array(windowSeconds);
    this.seconds = new Float64Array(windowSeconds).fill(-1);
  }

  private bucket(now: number): number {
    const second = Math.floor(now / 1000);
    const i = second % this.windowSeconds;
    if (this.seconds[i] !== second) {
      this.seconds[i] = second;
      this.calls[i] = 0;
      this.retries[i] = 0;
    }
    return i;
  }

  recordCall(now: number): void {
    this.calls[this.bucket(now)]!++;
  }

  /** Takes one retry from the budget if there is room; false means "don't retry". */
  tryRetry(now: number): boolean {
    const current = this.bucket(now);
    const oldest = Math.floor(now / 1000) - this.windowSeconds + 1;
    let calls = 0;
    let retries = 0;
    for (let i = 0; i < this.windowSeconds; i++) {
      if (this.seconds[i]! < oldest) continue;
      calls += this.calls[i]!;
      retries += this.retries[i]!;
    }
    const allowed = (calls * this.percent) / 100 + this.minPerSecond * this.windowSeconds;
    if (retries >= allowed) {
      this.exhausted++;
      return false;
    }
    this.retries[current]!++;
    return true;
  }
}
