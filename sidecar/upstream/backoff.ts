/** Exponential backoff with full jitter (AWS architecture blog's "full jitter"): random in [0, min(cap, base*2^n)). */
export function fullJitterBackoff(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
