/**
 * Power of two choices: draw two distinct endpoints at random (by weight) and send the call to the
 * cheaper one. Nearly as good as asking every endpoint for its cost, at the price of two, and unlike
 * "always the cheapest" it does not stampede: every sidecar seeing the same idle endpoint would pile
 * onto it at once. LEAST_REQUEST and PEAK_EWMA differ only in what "cost" means.
 */
import type { BalancedEndpoint, Balancer, PickContext } from './balancer.js';
import type { Random } from './random.js';
import { WeightedSampler } from './weighted-sampler.js';

export abstract class PowerOfTwoChoicesBalancer<E extends BalancedEndpoint> implements Balancer<E> {
  private endpoints: readonly E[] = [];
  private readonly sampler: WeightedSampler<E>;

  constructor(random: Random) {
    this.sampler = new WeightedSampler<E>(random);
  }

  /**
   * Whether `b` costs strictly less than `a`. A yes/no rather than a cost per endpoint because a
   * fractional number returned from a call the JIT does not inline (this one has one target per
   * policy) is boxed on the heap, and pick() must not allocate.
   */
  protected abstract cheaper(b: E, a: E, now: number): boolean;

  update(endpoints: readonly E[]): void {
    this.endpoints = [...endpoints];
    this.sampler.update(this.endpoints);
  }

  pick(ctx: PickContext): E | undefined {
    const now = ctx.now;
    const first = this.sampler.pickAvailable(now);
    if (first < 0) return undefined;
    const a = this.endpoints[first]!;
    const second = this.sampler.pickAvailable(now, first);
    if (second < 0) return a;
    const b = this.endpoints[second]!;
    // On a tie keep the first: it is a weighted draw over the whole set, so an idle cluster's
    // shares stay exactly proportional to weight (a coin flip between the two would pull them
    // towards equal, since the second draw excludes the first).
    return this.cheaper(b, a, now) ? b : a;
  }
}
