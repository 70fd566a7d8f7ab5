/**
 * Is the mesh leaking? The first third of a soak is warm-up (JIT, pools, heaps growing to their
 * working size), so it is left out: a series is flat when the last third's mean is within the
 * tolerance of the middle third's AND the second two thirds show no steady climb (four
 * consecutive quarter means each higher than the one before, by a visible total). The second
 * rule catches a slow leak that a long warm-up would otherwise hide inside the tolerance.
 */
export interface SeriesVerdict {
  readonly series: string;
  readonly middleMean: number;
  readonly lastMean: number;
  readonly changePct: number;
  readonly steadyClimb: boolean;
  readonly flat: boolean;
}

export interface Tolerance {
  /** Allowed rise of the last third's mean over the middle third's, percent. */
  readonly pct: number;
  /** Allowed rise in absolute units on top of pct (file descriptors come in small integers). */
  readonly abs: number;
}

export const MIN_SAMPLES = 9;
/** A climb smaller than this share of its start is noise, not a leak. */
const CLIMB_MIN_PCT = 3;

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

function thirds<T>(xs: readonly T[]): [T[], T[], T[]] {
  const n = Math.floor(xs.length / 3);
  return [xs.slice(0, n), xs.slice(n, xs.length - n), xs.slice(xs.length - n)];
}

function steadyClimb(xs: readonly number[], tol: Tolerance): boolean {
  if (xs.length < 4) return false;
  const q = [0, 1, 2, 3].map((i) => mean(xs.slice(Math.floor((i * xs.length) / 4), Math.floor(((i + 1) * xs.length) / 4))));
  const rising = q[1]! > q[0]! && q[2]! > q[1]! && q[3]! > q[2]!;
  return rising && q[3]! - q[0]! > Math.max((q[0]! * CLIMB_MIN_PCT) / 100, tol.abs);
}

export function judgeSeries(series: string, values: readonly number[], tol: Tolerance): SeriesVerdict {
  const [, middle, last] = thirds(values);
  const middleMean = mean(middle);
  const lastMean = mean(last);
  const changePct = middleMean === 0 ? 0 : ((lastMean - middleMean) / middleMean) * 100;
  const climb = steadyClimb([...middle, ...last], tol);
  const flat = lastMean <= middleMean * (1 + tol.pct / 100) + tol.abs && !climb;
  return { series, middleMean, lastMean, changePct, steadyClimb: climb, flat };
}

export interface ErrorVerdict {
  readonly middle: number;
  readonly last: number;
  readonly total: number;
  readonly growing: boolean;
}

/** Errors per sample interval: growth means the last third failed more calls than the middle third. */
export function judgeErrors(perInterval: readonly number[]): ErrorVerdict {
  const [, middle, last] = thirds(perInterval);
  const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
  return { middle: sum(middle), last: sum(last), total: sum(perInterval), growing: sum(last) > sum(middle) };
}
