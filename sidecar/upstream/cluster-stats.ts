/**
 * Counters of what happened to a cluster's calls beyond their status: plain numbers bumped where
 * the event happens (no label lookups on the request path), read at scrape time by the metrics
 * endpoint and /clusters.
 */
export class ClusterStats {
  retries = 0;
  retryBudgetExhausted = 0;
  /** Deadlines and idle timeouts the sidecar enforced, and per-try timeouts. */
  timeouts = 0;
  perTryTimeouts = 0;
  ejections = 0;
  healthChecksHealthy = 0;
  healthChecksUnhealthy = 0;
  /** Calls refused by a circuit breaker, by breaker name. */
  readonly overflows = new Map<string, number>();

  overflow(breaker: string): void {
    this.overflows.set(breaker, (this.overflows.get(breaker) ?? 0) + 1);
  }
}
