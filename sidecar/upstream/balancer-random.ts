/**
 * Weighted random: each call goes to an available endpoint with probability weight / (sum of the
 * available weights). Stateless between calls, so many sidecars never fall into lockstep, but it
 * ignores load and latency alike: a slow endpoint gets its full share.
 */
import type { BalancedEndpoint, Balancer, LoadBalancingConfig, PickContext } from './balancer.js';
import type { BalancerOptions, BalancerRegistration } from './balancers.js';
import { Random } from './random.js';
import { WeightedSampler } from './weighted-sampler.js';

export class RandomBalancer<E extends BalancedEndpoint = BalancedEndpoint> implements Balancer<E> {
  private endpoints: readonly E[] = [];
  private readonly sampler: WeightedSampler<E>;

  constructor(random: Random = new Random()) {
    this.sampler = new WeightedSampler<E>(random);
  }

  update(endpoints: readonly E[]): void {
    this.endpoints = [...endpoints];
    this.sampler.update(this.endpoints);
  }

  pick(ctx: PickContext): E | undefined {
    const i = this.sampler.pickAvailable(ctx.now);
    return i < 0 ? undefined : this.endpoints[i];
  }
}

export const randomRegistration: BalancerRegistration = {
  policy: 'RANDOM',
  create: <E extends BalancedEndpoint>(_config: LoadBalancingConfig, options: BalancerOptions) =>
    new RandomBalancer<E>(new Random(options.seed)),
};
