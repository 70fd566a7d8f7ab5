/**
 * Weighted round robin. update() lays out one cycle of turns, each endpoint getting turns in
 * proportion to its weight, spread out rather than bunched (weights a=3, b=c=d=1 give a b d a c a,
 * not a a a b c d), so a heavy endpoint never takes a burst of consecutive calls; pick() walks the
 * cycle. Fair and cheap, but blind to load and latency: a slow endpoint gets its full share.
 */
import type { BalancedEndpoint, Balancer, LoadBalancingConfig, PickContext } from './balancer.js';
import type { BalancerOptions, BalancerRegistration } from './balancers.js';
import { Random } from './random.js';
import { WeightedSampler, weightOf } from './weighted-sampler.js';

/** Bounds a cycle (and update()'s work) when weights are large: they are scaled down to fit. */
const MAX_CYCLE = 4096;
/** Fractional part of the golden ratio: successive multiples are as far apart as possible mod 1. */
const GOLDEN = 0.6180339887498949;

export class RoundRobinBalancer<E extends BalancedEndpoint = BalancedEndpoint> implements Balancer<E> {
  private endpoints: readonly E[] = [];
  /** Endpoint indices in turn order. */
  private cycle: Int32Array = new Int32Array(0);
  private cursor = 0;
  private readonly sampler: WeightedSampler<E>;

  constructor(private readonly random: Random = new Random()) {
    this.sampler = new WeightedSampler<E>(random);
  }

  update(endpoints: readonly E[]): void {
    this.endpoints = [...endpoints];
    this.sampler.update(this.endpoints);
    this.cycle = buildCycle(this.endpoints);
    // Sidecars started together would otherwise all send their first calls to the same endpoint.
    const n = this.cycle.length;
    this.cursor = n === 0 ? 0 : Math.min(n - 1, Math.floor(this.random.next() * n));
  }

  pick(ctx: PickContext): E | undefined {
    const cycle = this.cycle;
    const n = cycle.length;
    if (n === 0) return undefined;
    const e = this.endpoints[cycle[this.cursor]!]!;
    this.cursor = this.cursor + 1 === n ? 0 : this.cursor + 1;
    if (e.available(ctx.now)) return e;
    // Handing the turn to the next endpoint in the cycle would give that one double share while
    // this one is backed off; a weighted draw spreads the turn over the others in proportion.
    const i = this.sampler.pickAvailable(ctx.now);
    return i < 0 ? undefined : this.endpoints[i];
  }
}

/**
 * One cycle of turns. Endpoint i with t_i turns is given the points (k + phase_i) / t_i of [0, 1),
 * k = 0..t_i-1, evenly spaced; all points sorted make the cycle. The phase (golden-ratio multiples)
 * differs per endpoint so light endpoints do not all land on the same point and bunch together.
 */
function buildCycle(endpoints: readonly BalancedEndpoint[]): Int32Array {
  const n = endpoints.length;
  const turns = new Float64Array(n);
  let divisor = 0;
  for (let i = 0; i < n; i++) {
    turns[i] = Math.max(1, Math.round(weightOf(endpoints[i]!)));
    divisor = gcd(divisor, turns[i]!);
  }
  let total = 0;
  let equal = true;
  for (let i = 0; i < n; i++) {
    turns[i] = turns[i]! / divisor;
    total += turns[i]!;
    if (turns[i] !== turns[0]) equal = false;
  }
  if (equal) {
    const identity = new Int32Array(n);
    for (let i = 0; i < n; i++) identity[i] = i;
    return identity;
  }
  if (total > MAX_CYCLE) {
    const scale = MAX_CYCLE / total;
    total = 0;
    for (let i = 0; i < n; i++) {
      turns[i] = Math.max(1, Math.floor(turns[i]! * scale));
      total += turns[i]!;
    }
  }
  const owner = new Int32Array(total);
  const point = new Float64Array(total);
  let t = 0;
  for (let i = 0; i < n; i++) {
    const phase = ((i + 1) * GOLDEN) % 1;
    for (let k = 0; k < turns[i]!; k++, t++) {
      owner[t] = i;
      point[t] = (k + phase) / turns[i]!;
    }
  }
  const order = new Int32Array(total);
  for (let j = 0; j < total; j++) order[j] = j;
  order.sort((a, b) => point[a]! - point[b]! || owner[a]! - owner[b]!);
  const result = new Int32Array(total);
  for (let j = 0; j < total; j++) result[j] = owner[order[j]!]!;
  return result;
}

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const r = a % b;
    a = b;
    b = r;
  }
  return a;
}

export const roundRobinRegistration: BalancerRegistration = {
  policy: 'ROUND_ROBIN',
  create: <E extends BalancedEndpoint>(_config: LoadBalancingConfig, options: BalancerOptions) =>
    new RoundRobinBalancer<E>(new Random(options.seed)),
};
