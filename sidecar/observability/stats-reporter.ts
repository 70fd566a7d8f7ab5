/**
 * Turns the outbound per-destination totals into the deltas a StatsReport carries (what happened
 * since the previous report), for the control plane's dashboard. Runs every few seconds, never per call.
 */
import type { DestinationStats, StatsReport } from '../../protos/gen/remora/mesh/v1/discovery.js';
import { DURATION_BUCKETS, type RequestMetrics } from './request-metrics.js';

const BOUNDS: number[] = [...DURATION_BUCKETS];

export class StatsReporter {
  private last = new Map<string, { requests: number; failures: number; buckets: number[] }>();
  private lastAt = Date.now();

  constructor(private readonly metrics: RequestMetrics, private readonly certificateExpiry: () => number | undefined) {}

  next(now = Date.now()): StatsReport {
    const destinations: DestinationStats[] = [];
    const seen = new Map<string, { requests: number; failures: number; buckets: number[] }>();
    for (const [destination, t] of this.metrics.outboundTotals) {
      const buckets = [...t.buckets];
      seen.set(destination, { requests: t.requests, failures: t.failures, buckets });
      const prev = this.last.get(destination);
      const requests = t.requests - (prev?.requests ?? 0);
      if (requests === 0) continue;
      destinations.push({
        destination,
        requests,
        failures: t.failures - (prev?.failures ?? 0),
        latencyBuckets: buckets.map((n, i) => n - (prev?.buckets[i] ?? 0)),
        latencyBoundsSeconds: BOUNDS,
      });
    }
    const intervalMs = now - this.lastAt;
    this.last = seen;
    this.lastAt = now;
    return { intervalMs, destinations, certificateExpiryMs: this.certificateExpiry() ?? 0 };
  }
}
