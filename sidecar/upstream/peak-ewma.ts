/**
 * A peak-sensitive, time-weighted moving average of an endpoint's response times (after Finagle and
 * Linkerd). Peak-sensitive: a response slower than the estimate replaces it at once, so a
 * degrading endpoint is avoided from its first slow answer. Faster responses only pull it down
 * gradually, with weight 1 - exp(-elapsed / tau) where elapsed is the time since the previous
 * response: the weight depends on time, not on how many responses there were, so a busy and a quiet
 * endpoint forget at the same speed.
 *
 * Reading is optimistic about silence: the time since the last response counts as if it had been
 * served instantly, so an endpoint nobody has called lately looks cheaper and cheaper until a
 * balancer tries it again. Without that, an endpoint avoided for being slow would never get the
 * call that shows it has recovered. The next response then covers that time with its real latency.
 */

export interface PeakEwmaOptions {
  /** Estimate of an endpoint that has not answered yet: a guess near typical, so it is neither starved nor flooded. */
  readonly defaultRttMs?: number;
  /** tau: how fast old samples are forgotten (after tau, an old estimate keeps 1/e of its weight). */
  readonly decayMs?: number;
}

export const DEFAULT_RTT_MS = 30;
/** Linkerd's default: long enough to ride out one fast answer from a struggling endpoint. */
export const DEFAULT_DECAY_MS = 10_000;

export class PeakEwma {
  /** The estimate as of `stamp` (the last observation, or creation). */
  private value: number;
  private stamp: number;
  private readonly decayMs: number;

  constructor(now: number, options: PeakEwmaOptions = {}) {
    const rtt = options.defaultRttMs ?? DEFAULT_RTT_MS;
    const decay = options.decayMs ?? DEFAULT_DECAY_MS;
    if (!(rtt >= 0 && Number.isFinite(rtt))) throw new RangeError(`defaultRttMs must be a finite number >= 0, got ${rtt}`);
    if (!(decay > 0 && Number.isFinite(decay))) throw new RangeError(`decayMs must be a finite number > 0, got ${decay}`);
    this.value = rtt;
    this.stamp = now;
    this.decayMs = decay;
  }

  /** Records one response time. Nonsense samples (negative, NaN, infinite) are ignored rather than poison the estimate. */
  observe(rttMs: number, now: number): void {
    if (!(rttMs >= 0 && Number.isFinite(rttMs))) return;
    if (rttMs >= this.value) {
      this.value = rttMs;
    } else {
      const w = Math.exp(-this.elapsed(now) / this.decayMs);
      this.value = this.value * w + rttMs * (1 - w);
    }
    if (now > this.stamp) this.stamp = now;
  }

  /** The estimate in milliseconds at `now`; reading changes nothing. */
  estimate(now: number): number {
    return this.value * Math.exp(-this.elapsed(now) / this.decayMs);
  }

  /** Clocks are monotonic, but observe() and estimate() may be handed slightly stale times. */
  private elapsed(now: number): number {
    return now > this.stamp ? now - this.stamp : 0;
  }
}
