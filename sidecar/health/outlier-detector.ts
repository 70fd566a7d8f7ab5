/**
 * Passive outlier detection: the request path reports each call's outcome per endpoint, and an
 * endpoint with `consecutiveFailures` failures in a row is ejected (taken out of the balancer's set)
 * for a while. Classify statuses with classifyStatus (failure-codes.ts); connect failures and
 * resets are failures without a status.
 *
 * Decisions:
 * - Ejection time is baseEjectionMs x (the number of times this endpoint was ejected, this one
 *   included), capped at maxEjectionMs, so a flapping endpoint stays out longer each time.
 * - That ejection count decays: it drops by one for each whole maxEjectionMs the endpoint spends
 *   without being ejected, counted from its last re-admission. Computed when the next ejection
 *   happens, so no timer is needed for it.
 * - At most floor(targets x maxEjectionPercent / 100) endpoints are ejected at once, but at least
 *   one when there are two or more targets and the percent is above 0: otherwise the common
 *   small cluster (10% of 3 endpoints rounds to 0) could never eject its one bad endpoint. A lone
 *   target is never ejected unless the percent is 100: ejecting it turns "some calls fail" into
 *   "every call fails" (the endpoint breaker still fails it fast). An ejection over the cap is
 *   skipped and counted; the endpoint's next failure tries again.
 * - Re-admission is timer-driven and calls onChange, so the balancer gets the endpoint back the
 *   moment its time is up, not at the next call that happens to look. record() also re-admits when
 *   it sees the time is up, in case the timer runs late.
 * - Outcomes reported for an ejected endpoint (calls that began before the ejection) are ignored.
 * - Shrinking the target set does not cut short ejections already made; they run out normally.
 */
import { failureCodesFor, type CallOutcome } from './failure-codes.js';
import { nodeScheduler, type Scheduler, type TimerHandle } from './scheduler.js';
import type { OutlierDetectionSpec } from '../config/model.js';

interface OutlierState {
  consecutiveFailures: number;
  ejected: boolean;
  /** In record()'s clock. */
  ejectedUntil: number;
  /** Ejections so far, after decay: the multiplier of the next ejection time. */
  ejections: number;
  /** When the last ejection ended, in record()'s clock; decay counts from here. */
  readmittedAt: number;
  timer: TimerHandle | undefined;
}

export class OutlierDetector<T> {
  /** The statuses that count as failures: the defaults plus spec.statusCodes. */
  readonly failureCodes: ReadonlySet<number>;
  private readonly states = new Map<T, OutlierState>();
  private ejectedNow = 0;
  private ejectionsTotal = 0;
  private skippedTotal = 0;

  constructor(
    private readonly spec: OutlierDetectionSpec,
    private readonly onChange: (target: T, ejected: boolean, why: string) => void,
    private readonly scheduler: Scheduler = nodeScheduler,
  ) {
    this.failureCodes = failureCodesFor(spec.statusCodes);
  }

  /** Keeps the state (and ejections) of targets that stay; new targets start admitted. */
  setTargets(targets: readonly T[]): void {
    const keep = new Set(targets);
    for (const [target, state] of this.states) {
      if (keep.has(target)) continue;
      state.timer?.cancel();
      if (state.ejected) this.ejectedNow--;
      this.states.delete(target);
    }
    for (const target of targets) {
      if (this.states.has(target)) continue;
      this.states.set(target, { consecutiveFailures: 0, ejected: false, ejectedUntil: 0, ejections: 0, readmittedAt: 0, timer: undefined });
    }
  }

  record(target: T, outcome: CallOutcome, now: number): void {
    const state = this.states.get(target);
    if (!state) return;
    if (state.ejected) {
      if (now < state.ejectedUntil) return;
      this.readmit(target, state);
    }
    if (outcome === 'success') {
      state.consecutiveFailures = 0;
      return;
    }
    state.consecutiveFailures++;
    if (state.consecutiveFailures >= this.spec.consecutiveFailures) this.eject(target, state, now);
  }

  isEjected(target: T): boolean {
    return this.states.get(target)?.ejected ?? false;
  }

  /** How many targets may be ejected at once with the current set (see the decisions above). */
  maxEjected(): number {
    const n = this.states.size;
    const percent = this.spec.maxEjectionPercent;
    if (percent <= 0) return 0;
    const byPercent = Math.floor((n * percent) / 100);
    return byPercent === 0 && n >= 2 ? 1 : byPercent;
  }

  /** Counters for metrics: ejections made, ejections skipped over the cap, targets ejected now. */
  stats(): { readonly ejections: number; readonly skipped: number; readonly ejected: number } {
    return { ejections: this.ejectionsTotal, skipped: this.skippedTotal, ejected: this.ejectedNow };
  }

  /** Cancels every re-admission timer; no further onChange calls. */
  stop(): void {
    for (const state of this.states.values()) state.timer?.cancel();
    this.states.clear();
    this.ejectedNow = 0;
  }

  private eject(target: T, state: OutlierState, now: number): void {
    if (this.ejectedNow >= this.maxEjected()) {
      this.skippedTotal++;
      return;
    }
    const { baseEjectionMs, maxEjectionMs } = this.spec;
    if (state.ejections > 0) {
      const quietPeriods = Math.floor((now - state.readmittedAt) / maxEjectionMs);
      state.ejections = Math.max(0, state.ejections - quietPeriods);
    }
    state.ejections++;
    const durationMs = Math.min(baseEjectionMs * state.ejections, maxEjectionMs);
    const failures = state.consecutiveFailures;
    state.ejected = true;
    state.ejectedUntil = now + durationMs;
    state.consecutiveFailures = 0;
    this.ejectedNow++;
    this.ejectionsTotal++;
    state.timer = this.scheduler.setTimer(() => {
      if (this.states.get(target) === state) this.readmit(target, state);
    }, durationMs);
    this.onChange(target, true, `${failures} consecutive failures: ejected for ${durationMs} ms (ejection #${state.ejections})`);
  }

  private readmit(target: T, state: OutlierState): void {
    if (!state.ejected) return;
    state.timer?.cancel();
    state.timer = undefined;
    state.ejected = false;
    state.readmittedAt = state.ejectedUntil;
    state.consecutiveFailures = 0;
    this.ejectedNow--;
    this.onChange(target, false, 'ejection time over');
  }
}
