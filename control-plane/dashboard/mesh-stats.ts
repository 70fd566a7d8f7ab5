/**
 * The golden metrics behind the dashboard: each sidecar reports its outbound calls per
 * destination every few seconds (deltas), and this keeps the reports of the last window and sums
 * them per edge (caller service → callee service). p99 comes from the merged latency buckets,
 * interpolated inside the bucket that holds it (as Prometheus's histogram_quantile does).
 */
import type { StatsReport } from '../../protos/gen/remora/mesh/v1/discovery.js';
import type { MeshEdge } from './mesh-view.js';

interface Report {
  readonly at: number;
  readonly source: string;
  readonly report: StatsReport;
}

export const WINDOW_MS = 30_000;
const MAX_REPORT_DESTINATIONS = 200;

export class MeshStats {
  private reports: Report[] = [];
  /** Per sidecar key: its certificate expiry (ms since the epoch) from its last report. */
  readonly certificateExpiry = new Map<string, number>();

  add(sidecarKey: string, source: string, report: StatsReport, now = Date.now()): void {
    if (report.destinations.length > MAX_REPORT_DESTINATIONS) report = { ...report, destinations: report.destinations.slice(0, MAX_REPORT_DESTINATIONS) };
    this.reports.push({ at: now, source, report });
    if (report.certificateExpiryMs > 0) this.certificateExpiry.set(sidecarKey, report.certificateExpiryMs);
    this.prune(now);
  }

  forget(sidecarKey: string): void {
    this.certificateExpiry.delete(sidecarKey);
  }

  private prune(now: number): void {
    const from = now - WINDOW_MS;
    let i = 0;
    while (i < this.reports.length && this.reports[i]!.at < from) i++;
    if (i > 0) this.reports = this.reports.slice(i);
  }

  edges(now = Date.now()): MeshEdge[] {
    this.prune(now);
    const acc = new Map<string, { source: string; destination: string; requests: number; failures: number; buckets: number[]; bounds: readonly number[] }>();
    // The window actually covered: from the oldest report's start to now.
    let oldest = now;
    for (const { at, source, report } of this.reports) {
      oldest = Math.min(oldest, at - report.intervalMs);
      for (const d of report.destinations) {
        const key = `${source}\u0000${d.destination}`;
        let e = acc.get(key);
        if (!e) acc.set(key, (e = { source, destination: d.destination, requests: 0, failures: 0, buckets: [], bounds: d.latencyBoundsSeconds }));
        e.requests += d.requests;
        e.failures += d.failures;
        d.latencyBuckets.forEach((n, i) => (e!.buckets[i] = (e!.buckets[i] ?? 0) + n));
      }
    }
    const seconds = Math.max(1, (now - oldest) / 1000);
    return [...acc.values()]
      .map((e) => ({
        source: e.source,
        destination: e.destination,
        requests: e.requests,
        rps: Math.round((e.requests / seconds) * 100) / 100,
        successRate: e.requests === 0 ? null : (e.requests - e.failures) / e.requests,
        p99Ms: quantileMs(e.buckets, e.bounds, 0.99),
      }))
      .sort((a, b) => a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination));
  }
}

/** The q-quantile from non-cumulative bucket counts with upper bounds (seconds; the last bucket is +Inf). */
export function quantileMs(buckets: readonly number[], bounds: readonly number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i] ?? 0;
    if (seen + n >= rank && n > 0) {
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      // Past the last bound: report the last bound (as histogram_quantile does).
      if (i >= bounds.length) return Math.round(lower * 1e6) / 1e3;
      const upper = bounds[i]!;
      const value = lower + (upper - lower) * ((rank - seen) / n);
      return Math.round(value * 1e6) / 1e3;
    }
    seen += n;
  }
  return null;
}
