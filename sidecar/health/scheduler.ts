/**
 * Timers behind a tiny interface, so the health checker and the outlier detector can be driven by
 * a fake clock in tests and by unref'd node timers in the sidecar.
 */

export interface TimerHandle {
  cancel(): void;
}

export interface Scheduler {
  /** Runs fn once after delayMs. */
  setTimer(fn: () => void, delayMs: number): TimerHandle;
}

/**
 * node timers, unref'd: a pending health check or re-admission must never be what keeps a
 * sidecar (or a test process) from exiting.
 */
export const nodeScheduler: Scheduler = {
  setTimer(fn, delayMs) {
    const t = setTimeout(fn, delayMs);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};
