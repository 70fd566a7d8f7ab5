/**
 * Latency histogram for the bench: microsecond integers in an HDR histogram, so percentiles stay
 * accurate to 3 significant digits from 1 µs to a minute without keeping every sample.
 */
import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';

/** Anything slower is clamped: a request that took longer than this already failed the bench. */
export const MAX_TRACKABLE_US = 60_000_000;

export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

function fresh(): Histogram {
  // autoResize off: a fixed range keeps recordValue allocation-free on the load generator's hot path.
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: MAX_TRACKABLE_US, numberOfSignificantValueDigits: 3, autoResize: false });
}

export class LatencyHistogram {
  private readonly h: Histogram;

  constructor(h: Histogram = fresh()) {
    this.h = h;
  }

  static decode(encoded: string): LatencyHistogram {
    const h = fresh();
    h.add(decodeFromCompressedBase64(encoded));
    return new LatencyHistogram(h);
  }

  recordMicros(us: number): void {
    const v = us < 1 ? 1 : us > MAX_TRACKABLE_US ? MAX_TRACKABLE_US : Math.round(us);
    this.h.recordValue(v);
  }

  recordMillis(ms: number): void {
    this.recordMicros(ms * 1000);
  }

  get count(): number {
    return this.h.totalCount;
  }

  /** Value in milliseconds at percentile p (0..100); 0 when empty. */
  percentileMs(p: number): number {
    return this.h.totalCount === 0 ? 0 : this.h.getValueAtPercentile(p) / 1000;
  }

  merge(other: LatencyHistogram): void {
    this.h.add(other.h);
  }

  summary(): LatencySummary {
    const empty = this.h.totalCount === 0;
    return {
      count: this.h.totalCount,
      meanMs: empty ? 0 : this.h.mean / 1000,
      p50Ms: this.percentileMs(50),
      p90Ms: this.percentileMs(90),
      p99Ms: this.percentileMs(99),
      p999Ms: this.percentileMs(99.9),
      maxMs: empty ? 0 : this.h.maxValue / 1000,
    };
  }

  /** Compact form for JSON results, so runs can be merged later instead of averaging percentiles. */
  encode(): string {
    return encodeIntoCompressedBase64(this.h);
  }
}

/** Median of a list (mean of the middle two for even lengths); NaN for an empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
