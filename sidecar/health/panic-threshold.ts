/**
 * Envoy's healthy panic threshold. Health checks and outlier detection only ever see symptoms; when
 * they take out most of a cluster at once, the likelier story is that the checks are wrong (a
 * starved CPU timing out probes, a shared dependency blipping) rather than that most replicas died
 * together. Below the threshold the cluster stops trusting them and balances over every endpoint:
 * some calls may fail, but none fail for want of trying. Endpoints in connect backoff or with an
 * open breaker are still skipped by the balancer, so a truly dead one is not hammered.
 */

/** Envoy's default healthy_panic_threshold. */
export const DEFAULT_PANIC_THRESHOLD_PERCENT = 50;

export interface ServingSet<E> {
  /** What the balancer gets. */
  readonly endpoints: readonly E[];
  /** The endpoints that pass health checks and are not ejected. */
  readonly healthy: readonly E[];
  /** True when `endpoints` is every endpoint because too few were healthy. */
  readonly panic: boolean;
}

/**
 * Panics when the healthy share falls strictly below `thresholdPercent` of all endpoints (so with
 * the default 50, one healthy of two is not a panic and one of three is); 0 never panics. A
 * cluster with no endpoints has nothing to panic over.
 */
export function servingSet<E>(all: readonly E[], isHealthy: (e: E) => boolean, thresholdPercent: number): ServingSet<E> {
  const healthy = all.filter(isHealthy);
  const panic = thresholdPercent > 0 && all.length > 0 && healthy.length * 100 < thresholdPercent * all.length;
  return { endpoints: panic ? all : healthy, healthy, panic };
}
