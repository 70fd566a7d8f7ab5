/**
 * A breaker per endpoint that tracks only that endpoint's failures (Linkerd's model): after
 * failureThreshold consecutive failures it opens and calls skip the endpoint; after openMs one probe
 * call is let through (half-open); the probe's success closes it, its failure opens it again for
 * twice as long, up to maxOpenMs. Pure and lazy: every method takes the caller's clock, no timers.
 *
 * Callers pass each call's start time (the `now` given to tryAcquire) to record(). Outcomes of calls
 * that began before the breaker's last change of state describe the endpoint as it was, so they are
 * ignored; this is also how the half-open probe's outcome is told from a straggler's.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

/** 'cancelled': the call ended without a verdict on the endpoint (the caller gave up first). */
export type BreakerOutcome = 'success' | 'failure' | 'cancelled';

export interface EndpointBreakerConfig {
  readonly failureThreshold: number;
  readonly openMs: number;
  readonly maxOpenMs: number;
  /** A probe not reported within this long is presumed lost, and the next caller may probe. */
  readonly probeTimeoutMs: number;
}

export const DEFAULT_ENDPOINT_BREAKER: EndpointBreakerConfig = Object.freeze({
  failureThreshold: 5,
  openMs: 1_000,
  maxOpenMs: 30_000,
  probeTimeoutMs: 10_000,
});

export class EndpointBreaker {
  private failures = 0;
  /** True while open or half-open: state() tells them apart by the clock. */
  private tripped = false;
  private openUntil = 0;
  private currentOpenMs: number;
  private closedAt = Number.NEGATIVE_INFINITY;
  private probeOut = false;
  private probeStartedAt = 0;

  constructor(private readonly config: EndpointBreakerConfig = DEFAULT_ENDPOINT_BREAKER) {
    this.currentOpenMs = config.openMs;
  }

  state(now: number): BreakerState {
    if (!this.tripped) return 'closed';
    return now < this.openUntil ? 'open' : 'half-open';
  }

  /** Milliseconds until a probe may go out (0 when closed or half-open), for error messages. */
  openRemainingMs(now: number): number {
    return this.tripped ? Math.max(0, this.openUntil - now) : 0;
  }

  /** May a call go to this endpoint now? In half-open, true for exactly one caller: the probe. */
  tryAcquire(now: number): boolean {
    if (!this.tripped) return true;
    if (now < this.openUntil) return false;
    if (this.probeOut && now - this.probeStartedAt < this.config.probeTimeoutMs) return false;
    this.probeOut = true;
    this.probeStartedAt = now;
    return true;
  }

  record(outcome: BreakerOutcome, startedAt: number, now: number): void {
    if (!this.tripped) {
      if (startedAt < this.closedAt || outcome === 'cancelled') return;
      if (outcome === 'success') {
        this.failures = 0;
      } else if (++this.failures >= this.config.failureThreshold) {
        this.currentOpenMs = this.config.openMs;
        this.open(now);
      }
      return;
    }
    if (!this.probeOut || startedAt < this.probeStartedAt) return;
    this.probeOut = false;
    if (outcome === 'cancelled') return;
    if (outcome === 'success') {
      this.tripped = false;
      this.failures = 0;
      this.closedAt = now;
      this.currentOpenMs = this.config.openMs;
    } else {
      this.currentOpenMs = Math.min(this.currentOpenMs * 2, this.config.maxOpenMs);
      this.open(now);
    }
  }

  private open(now: number): void {
    this.tripped = true;
    this.failures = 0;
    this.probeOut = false;
    this.openUntil = now + this.currentOpenMs;
  }
}
