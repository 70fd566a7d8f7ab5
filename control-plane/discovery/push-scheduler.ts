/**
 * Coalesces bursts of changes into one push without delaying a lone change: a push goes out once
 * changes have been quiet for `quietMs`, and never later than `maxDelayMs` after the first change
 * of a burst.
 */
export class PushScheduler {
  private timer: NodeJS.Timeout | undefined;
  private firstChangeAt: number | undefined;

  constructor(
    private readonly push: () => void,
    private readonly quietMs = 2,
    private readonly maxDelayMs = 50,
  ) {}

  changed(): void {
    const now = Date.now();
    this.firstChangeAt ??= now;
    if (this.timer) clearTimeout(this.timer);
    const wait = Math.min(this.quietMs, Math.max(0, this.firstChangeAt + this.maxDelayMs - now));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.firstChangeAt = undefined;
      this.push();
    }, wait);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
