/**
 * Least request by power of two choices: of two weighted-random endpoints, the one with fewer calls
 * in flight per unit of weight. Routes around an endpoint that is backing up, but only once calls
 * pile up there: it cannot tell a fast endpoint from a slow one at equal concurrency (PEAK_EWMA can).
 */
import type { BalancedEndpoint, LoadBalancingConfig } from './balancer.js';
import type { BalancerOptions, BalancerRegistration } from './balancers.js';
import { PowerOfTwoChoicesBalancer } from './power-of-two-choices.js';
import { Random } from './random.js';
import { weightOf } from './weighted-sampler.js';

export class LeastRequestBalancer<E extends BalancedEndpoint = BalancedEndpoint> extends PowerOfTwoChoicesBalancer<E> {
  constructor(random: Random = new Random()) {
    super(random);
  }

  /** b.active / b.weight < a.active / a.weight, multiplied out. */
  protected override cheaper(b: E, a: E): boolean {
    return b.activeRequests * weightOf(a) < a.activeRequests * weightOf(b);
  }
}

export const leastRequestRegistration: BalancerRegistration = {
  policy: 'LEAST_REQUEST',
  create: <E extends BalancedEndpoint>(_config: LoadBalancingConfig, options: BalancerOptions) =>
    new LeastRequestBalancer<E>(new Random(options.seed)),
};
