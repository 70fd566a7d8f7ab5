/**
 * Active health checking of a set of targets (a cluster's endpoints, or the sidecar's own app).
 * Each target is probed on its own timer; thresholds of consecutive results turn it healthy or
 * unhealthy, and onChange hears about every transition so the balancer can be given a new set.
 *
 * Decisions:
 * - New targets start HEALTHY by default. Issue 4 asks that new endpoints take traffic at once, and
 *   an endpoint the mesh just learned of registered moments ago, so it most likely works. Holding it
 *   back until a check passes would delay every scale-up by a check round trip. The sidecar's own
 *   app is the opposite case (readiness must not claim an app that has not answered yet), so
 *   `initiallyHealthy: false` is an option.
 * - The starting state is a guess, not an observation, so the FIRST check's result replaces it
 *   outright; the thresholds only damp flapping of a state that was observed. A new endpoint that is
 *   dead therefore leaves after one check (run at once), not after unhealthyThreshold intervals.
 * - The next probe is scheduled when the previous one settles (intervalMs + 0..jitterMs later), so
 *   probes for one target never overlap and a slow target is not probed harder. The probe must
 *   settle on its own: probeGrpcHealth does within its timeoutMs.
 */
import { nodeScheduler, type Scheduler, type TimerHandle } from './scheduler.js';
import type { HealthProbeResult } from './grpc-health-probe.js';
import type { HealthCheckSpec } from '../config/model.js';

/** What a probe reports: only SERVING counts as a pass. */
export type ProbeResult = HealthProbeResult;

export type HealthCheckTiming = Pick<HealthCheckSpec, 'intervalMs' | 'jitterMs' | 'healthyThreshold' | 'unhealthyThreshold'>;

export interface HealthCheckerOptions {
  /** Health of a target before its first check; default true (see the decisions above). */
  readonly initiallyHealthy?: boolean;
  readonly scheduler?: Scheduler;
}

interface TargetState {
  healthy: boolean;
  checked: boolean;
  successes: number;
  failures: number;
  probing: boolean;
  /** False once the target was removed or the checker stopped: a late probe result is dropped. */
  active: boolean;
  timer: TimerHandle | undefined;
  lastResult: string | undefined;
}

function describe(result: ProbeResult): string {
  return typeof result === 'string' ? result : result.failure;
}

export class HealthChecker<T> {
  private readonly states = new Map<T, TargetState>();
  /** Removed targets whose probe is still in flight: re-adding one waits for that probe. */
  private readonly retiring = new Map<T, TargetState>();
  private readonly scheduler: Scheduler;
  private readonly initiallyHealthy: boolean;
  private stopped = false;

  constructor(
    private readonly spec: HealthCheckTiming,
    private readonly probe: (target: T) => Promise<ProbeResult>,
    private readonly onChange: (target: T, healthy: boolean, why: string) => void,
    private readonly random: () => number = Math.random,
    options: HealthCheckerOptions = {},
  ) {
    this.scheduler = options.scheduler ?? nodeScheduler;
    this.initiallyHealthy = options.initiallyHealthy ?? true;
  }

  /** Keeps the state of targets that stay, checks new ones at once, stops checking removed ones. */
  setTargets(targets: readonly T[]): void {
    if (this.stopped) return;
    const keep = new Set(targets);
    for (const [target, state] of this.states) {
      if (keep.has(target)) continue;
      this.deactivate(state);
      this.states.delete(target);
      if (state.probing) this.retiring.set(target, state);
    }
    for (const target of targets) {
      if (this.states.has(target)) continue;
      const retiring = this.retiring.get(target);
      if (retiring) {
        // Back before its last probe settled: start afresh, but let that probe count as the first
        // check rather than start a second one beside it.
        this.retiring.delete(target);
        this.states.set(target, this.fresh(retiring));
        continue;
      }
      const state = this.fresh({
        healthy: true, checked: false, successes: 0, failures: 0, probing: false, active: true, timer: undefined, lastResult: undefined,
      });
      this.states.set(target, state);
      this.runProbe(target, state);
    }
  }

  /** False for a target this checker does not know. */
  isHealthy(target: T): boolean {
    return this.states.get(target)?.healthy ?? false;
  }

  /** The last probe's answer ("SERVING", "timeout after 1000 ms"...), for admin pages and logs. */
  lastResult(target: T): string | undefined {
    return this.states.get(target)?.lastResult;
  }

  /** Final: clears every timer; probes in flight finish but their results are dropped. */
  stop(): void {
    this.stopped = true;
    for (const state of this.states.values()) this.deactivate(state);
    this.states.clear();
    this.retiring.clear();
  }

  /** Resets what a new target must not inherit; `probing` and `timer` are left as they are. */
  private fresh(state: TargetState): TargetState {
    state.healthy = this.initiallyHealthy;
    state.checked = false;
    state.successes = 0;
    state.failures = 0;
    state.active = true;
    state.lastResult = undefined;
    return state;
  }

  private deactivate(state: TargetState): void {
    state.active = false;
    state.timer?.cancel();
    state.timer = undefined;
  }

  private runProbe(target: T, state: TargetState): void {
    state.timer = undefined;
    if (!state.active || state.probing) return;
    state.probing = true;
    let pending: Promise<ProbeResult>;
    try {
      pending = this.probe(target);
    } catch (err) {
      pending = Promise.resolve({ failure: `probe threw: ${err instanceof Error ? err.message : String(err)}` });
    }
    pending.then(
      (result) => this.settle(target, state, result),
      (err: unknown) => this.settle(target, state, { failure: `probe failed: ${err instanceof Error ? err.message : String(err)}` }),
    );
  }

  private settle(target: T, state: TargetState, result: ProbeResult): void {
    state.probing = false;
    if (!state.active) {
      if (this.retiring.get(target) === state) this.retiring.delete(target);
      return;
    }
    // Scheduled before onChange runs: a callback that throws must not end this target's checks,
    // and one that removes the target or stops the checker cancels this timer with it.
    const jitter = Math.floor(this.random() * (this.spec.jitterMs + 1));
    state.timer = this.scheduler.setTimer(() => this.runProbe(target, state), this.spec.intervalMs + jitter);
    this.record(target, state, result);
  }

  private record(target: T, state: TargetState, result: ProbeResult): void {
    const why = describe(result);
    state.lastResult = why;
    const first = !state.checked;
    state.checked = true;
    if (result === 'SERVING') {
      state.failures = 0;
      state.successes++;
      if (!state.healthy && (first || state.successes >= this.spec.healthyThreshold)) {
        state.healthy = true;
        this.onChange(target, true, first ? 'SERVING (first check)' : `SERVING (${state.successes} consecutive checks)`);
      }
    } else {
      state.successes = 0;
      state.failures++;
      if (state.healthy && (first || state.failures >= this.spec.unhealthyThreshold)) {
        state.healthy = false;
        this.onChange(target, false, first ? `${why} (first check)` : `${why} (${state.failures} consecutive checks)`);
      }
    }
  }
}
