/**
 * Weighted random choice over a balancer's endpoints, shared by RANDOM, the two power-of-two-choices
 * policies, and as the fallback of ROUND_ROBIN and RING_HASH. Everything is precomputed in update()
 * so a draw is a random number and a binary search, with no allocation.
 */
import type { BalancedEndpoint } from './balancer.js';
import { INT30_UNIT, type Random } from './random.js';

/**
 * Draws that land on an unavailable endpoint before giving up on rejection sampling. A handful is
 * enough while most endpoints are up; past that one exact pass over the set is cheaper than luck.
 */
const REJECTION_DRAWS = 4;

/** The contract promises weight >= 1; anything else (NaN, 0, Infinity) counts as 1 rather than break the sums. */
export function weightOf(e: BalancedEndpoint): number {
  const w = e.weight;
  return Number.isFinite(w) && w > 0 ? w : 1;
}

export class WeightedSampler<E extends BalancedEndpoint> {
  private endpoints: readonly E[] = [];
  private weights = new Float64Array(0);
  /** cumulative[i] = weights[0] + ... + weights[i]. */
  private cumulative = new Float64Array(0);
  private total = 0;
  /** All weights equal: a draw is floor(r * n), no search. */
  private uniform = true;

  constructor(private readonly random: Random) {}

  /** `endpoints` must not change afterwards: callers pass their own copy. */
  update(endpoints: readonly E[]): void {
    const n = endpoints.length;
    const weights = new Float64Array(n);
    const cumulative = new Float64Array(n);
    let total = 0;
    let uniform = true;
    for (let i = 0; i < n; i++) {
      const w = weightOf(endpoints[i]!);
      weights[i] = w;
      total += w;
      cumulative[i] = total;
      if (w !== weights[0]) uniform = false;
    }
    this.endpoints = endpoints;
    this.weights = weights;
    this.cumulative = cumulative;
    this.total = total;
    this.uniform = uniform;
  }

  /**
   * Index of a weighted-random available endpoint other than `exclude` (-1: exclude nothing), or -1
   * if there is none. Exact: rejection sampling and the fallback pass both draw in proportion to
   * weight among the available endpoints, so skipping an endpoint spreads its share fairly.
   */
  pickAvailable(now: number, exclude = -1): number {
    const endpoints = this.endpoints;
    const n = endpoints.length;
    if (n === 0 || (n === 1 && exclude === 0)) return -1;
    for (let k = 0; k < REJECTION_DRAWS; k++) {
      const i = this.draw(exclude);
      if (i !== exclude && endpoints[i]!.available(now)) return i;
    }
    // Weighted reservoir sampling: keep the i-th available endpoint with probability w_i / (sum so far).
    let seen = 0;
    let chosen = -1;
    for (let i = 0; i < n; i++) {
      if (i === exclude || !endpoints[i]!.available(now)) continue;
      const w = this.weights[i]!;
      seen += w;
      if (this.random.nextInt30() * INT30_UNIT * seen < w) chosen = i;
    }
    return chosen;
  }

  /**
   * A weighted draw over all endpoints but `exclude`: drawing in [0, total - w_excluded) and stepping
   * over the excluded interval makes "two distinct candidates" one draw each, never a retry loop.
   * Float rounding can still return `exclude` in a corner case; pickAvailable() treats that as a miss.
   */
  private draw(exclude: number): number {
    const n = this.endpoints.length;
    if (this.uniform) {
      if (exclude < 0) return Math.min(n - 1, Math.floor(this.random.nextInt30() * INT30_UNIT * n));
      const i = Math.min(n - 2, Math.floor(this.random.nextInt30() * INT30_UNIT * (n - 1)));
      return i >= exclude ? i + 1 : i;
    }
    const cumulative = this.cumulative;
    let r: number;
    if (exclude < 0) {
      r = this.random.nextInt30() * INT30_UNIT * this.total;
    } else {
      const end = cumulative[exclude]!;
      const start = exclude === 0 ? 0 : cumulative[exclude - 1]!;
      r = this.random.nextInt30() * INT30_UNIT * (this.total - (end - start));
      if (r >= start) r = r - start + end;
    }
    // Smallest i with cumulative[i] > r.
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
