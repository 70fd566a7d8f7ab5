/**
 * The balancers' random numbers: xoshiro128** over a Uint32Array. A generator of our own rather
 * than Math.random because a seed makes tests reproducible, and because pick() must not allocate:
 * a function returning a fractional number (Math.random through a stored reference, or any call
 * the JIT does not inline) hands it back boxed on the heap. nextInt30() returns a small integer,
 * which V8 never boxes; callers scale it to [0, 1) themselves.
 */

/** Multiply a nextInt30() by this for a number in [0, 1). */
export const INT30_UNIT = 2 ** -30;

export class Random {
  private readonly s = new Uint32Array(4);

  /** Without a seed each generator starts somewhere else, so sidecars never draw in lockstep. */
  constructor(seed: number = Math.random() * 0x1_0000_0000) {
    // splitmix32 spreads one number over the four words; xoshiro must not start all zero, and
    // splitmix32 never yields four zeros in a row.
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = z ^ (z >>> 16);
    }
  }

  /** Uniform in [0, 1), for code off the hot path. */
  next(): number {
    return this.nextInt30() * INT30_UNIT;
  }

  /** Uniform integer in [0, 2^30): the top 30 bits of xoshiro128**. */
  nextInt30(): number {
    const s = this.s;
    const s1 = s[1] as number;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9);
    const t = s1 << 9;
    s[2] ^= s[0] as number;
    s[3] ^= s1;
    s[1] ^= s[2] as number;
    s[0] ^= s[3] as number;
    s[2] ^= t;
    const s3 = s[3] as number;
    s[3] = (s3 << 11) | (s3 >>> 21);
    return result >>> 2;
  }
}
