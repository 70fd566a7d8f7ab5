/**
 * Ring hash (ketama-style consistent hashing) on one request header, for affinity: calls carrying
 * the same header value go to the same endpoint, from every sidecar, as long as it is there.
 *
 * Each endpoint puts weight x VNODES_PER_WEIGHT points on a ring of 30-bit hashes (hash of
 * "key#n"); a call goes to the owner of the first point at or after the hash of its header value.
 * Many points per endpoint even out the arcs each one owns (an endpoint's share is off its weight's
 * by at most 1/sqrt(its points), relative, one standard deviation). Points depend only on endpoint keys and weights, never on the order of
 * update()'s list, so all sidecars build the same ring; and adding or removing one endpoint of N
 * moves only the keys on its arcs, about 1/N of them.
 *
 * An owner that is not available (connect backoff) hands the call to the next distinct endpoint
 * clockwise, so those keys still agree across sidecars. A call without the header has nothing to
 * be affine to: it goes to a weighted-random endpoint, spreading such calls instead of piling them
 * onto whoever owns the hash of "".
 */
import type { BalancedEndpoint, Balancer, LoadBalancingConfig, PickContext } from './balancer.js';
import type { BalancerOptions, BalancerRegistration } from './balancers.js';
import { BalancerConfigError } from './lb-config-error.js';
import { hashString } from './string-hash.js';
import { Random } from './random.js';
import { WeightedSampler, weightOf } from './weighted-sampler.js';

/** Ketama's count: an endpoint's share is within about 8% (one standard deviation) of its weight's. */
export const VNODES_PER_WEIGHT = 160;
/** Past this (over 400 weight units), points per weight shrink: lookups stay 16 steps, memory 512 KiB. */
export const MAX_RING_SIZE = 65_536;

export class RingHashBalancer<E extends BalancedEndpoint = BalancedEndpoint> implements Balancer<E> {
  private readonly header: string;
  private endpoints: readonly E[] = [];
  /** Point hashes in ascending order, and the index of the endpoint owning each point. */
  private hashes: Uint32Array = new Uint32Array(0);
  private owners: Int32Array = new Int32Array(0);
  /** Marks endpoints already tried during the current walk, stamped with `walk`. */
  private tried = new Uint32Array(0);
  private walk = 0;
  private readonly sampler: WeightedSampler<E>;

  constructor(hashHeader: string, random: Random = new Random()) {
    // node:http2 hands over header names in lower case.
    this.header = hashHeader.toLowerCase();
    this.sampler = new WeightedSampler<E>(random);
  }

  update(endpoints: readonly E[]): void {
    this.endpoints = [...endpoints];
    this.sampler.update(this.endpoints);
    const ring = buildRing(this.endpoints);
    this.hashes = ring.hashes;
    this.owners = ring.owners;
    this.tried = new Uint32Array(this.endpoints.length);
    this.walk = 0;
  }

  pick(ctx: PickContext): E | undefined {
    const raw = ctx.headers[this.header];
    const value = typeof raw === 'string' ? raw : raw?.[0];
    if (value === undefined) {
      const i = this.sampler.pickAvailable(ctx.now);
      return i < 0 ? undefined : this.endpoints[i];
    }
    const size = this.hashes.length;
    if (size === 0) return undefined;
    const at = this.firstPointAtOrAfter(hashString(value));
    const owner = this.endpoints[this.owners[at]!]!;
    if (owner.available(ctx.now)) return owner;
    return this.walkFrom(at, ctx.now);
  }

  /** Clockwise from point `at` (whose owner is unavailable), the first available distinct owner. */
  private walkFrom(at: number, now: number): E | undefined {
    const size = this.hashes.length;
    const n = this.endpoints.length;
    if (this.walk === 0xffffffff) {
      this.tried.fill(0);
      this.walk = 0;
    }
    const walk = ++this.walk;
    this.tried[this.owners[at]!] = walk;
    // Stop once every endpoint has been tried, not after a full lap of up to 64k points.
    for (let tried = 1, steps = 1; tried < n && steps < size; steps++) {
      at = at + 1 === size ? 0 : at + 1;
      const o = this.owners[at]!;
      if (this.tried[o] === walk) continue;
      this.tried[o] = walk;
      tried++;
      const e = this.endpoints[o]!;
      if (e.available(now)) return e;
    }
    return undefined;
  }

  private firstPointAtOrAfter(h: number): number {
    const hashes = this.hashes;
    let lo = 0;
    let hi = hashes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (hashes[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    // Past the last point the ring wraps to the first.
    return lo === hashes.length ? 0 : lo;
  }
}

interface Ring {
  readonly hashes: Uint32Array;
  readonly owners: Int32Array;
}

function buildRing(endpoints: readonly BalancedEndpoint[]): Ring {
  const n = endpoints.length;
  const counts = new Int32Array(n);
  let wanted = 0;
  for (let i = 0; i < n; i++) wanted += weightOf(endpoints[i]!) * VNODES_PER_WEIGHT;
  const scale = wanted > MAX_RING_SIZE ? MAX_RING_SIZE / wanted : 1;
  let size = 0;
  for (let i = 0; i < n; i++) {
    counts[i] = Math.max(1, Math.floor(weightOf(endpoints[i]!) * VNODES_PER_WEIGHT * scale));
    size += counts[i]!;
  }
  const pointHash = new Uint32Array(size);
  const pointOwner = new Int32Array(size);
  for (let i = 0, p = 0; i < n; i++) {
    const key = endpoints[i]!.key;
    for (let v = 0; v < counts[i]!; v++, p++) {
      pointHash[p] = hashString(`${key}#${v}`);
      pointOwner[p] = i;
    }
  }
  const order = new Int32Array(size);
  for (let p = 0; p < size; p++) order[p] = p;
  // Equal hashes are rare but possible: break ties by key, not by list position, so every
  // sidecar orders them the same.
  order.sort((a, b) => {
    const d = pointHash[a]! - pointHash[b]!;
    if (d !== 0) return d;
    const ka = endpoints[pointOwner[a]!]!.key;
    const kb = endpoints[pointOwner[b]!]!.key;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  const hashes = new Uint32Array(size);
  const owners = new Int32Array(size);
  for (let p = 0; p < size; p++) {
    hashes[p] = pointHash[order[p]!]!;
    owners[p] = pointOwner[order[p]!]!;
  }
  return { hashes, owners };
}

export const ringHashRegistration: BalancerRegistration = {
  policy: 'RING_HASH',
  create: <E extends BalancedEndpoint>(config: LoadBalancingConfig, options: BalancerOptions) => {
    // The resource validator requires hashHeader with RING_HASH; this guards hand-built configs.
    if (config.hashHeader === undefined || config.hashHeader === '') {
      throw new BalancerConfigError('RING_HASH needs hashHeader: the request header whose value picks the endpoint');
    }
    return new RingHashBalancer<E>(config.hashHeader, new Random(options.seed));
  },
};
