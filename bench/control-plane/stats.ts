/**
 * Exact percentiles over every sample. The control-plane bench has at most sidecars × changes
 * samples (20,000 by default), so sorting them all is cheap and avoids histogram rounding.
 */
import type { Percentiles } from './types.js';

/** Nearest-rank percentile of an ascending list; NaN when empty. */
function rank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function percentiles(values: readonly number[]): Percentiles {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const sum = sorted.reduce((s, v) => s + v, 0);
  return {
    count: sorted.length,
    p50Ms: rank(sorted, 50),
    p90Ms: rank(sorted, 90),
    p99Ms: rank(sorted, 99),
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    meanMs: sorted.length ? sum / sorted.length : NaN,
  };
}

/** Mean of the finite values; NaN when there are none. */
export function mean(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v));
  return finite.length ? finite.reduce((s, v) => s + v, 0) / finite.length : NaN;
}
