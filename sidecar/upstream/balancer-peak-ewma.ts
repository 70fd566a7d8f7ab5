/**
 * Peak EWMA, Linkerd's default: power of two choices over cost = latency estimate x (calls in
 * flight + 1) / weight. The latency term steers calls away from a slow endpoint before a queue
 * forms there; the in-flight term spreads a burst across endpoints of equal latency; the +1 keeps
 * an idle endpoint's latency in the comparison. The estimate is the endpoint's PeakEwma
 * (peak-ewma.ts): it jumps up on a slow response at once and decays back over seconds.
 */
import type { BalancedEndpoint, LoadBalancingConfig } from './balancer.js';
import type { BalancerOptions, BalancerRegistration } from './balancers.js';
import { PowerOfTwoChoicesBalancer } from './power-of-two-choices.js';
import { Random } from './random.js';
import { weightOf } from './weighted-sampler.js';

export class PeakEwmaBalancer<E extends BalancedEndpoint = BalancedEndpoint> extends PowerOfTwoChoicesBalancer<E> {
  constructor(random: Random = new Random()) {
    super(random);
  }

  /** Written out rather than a cost() helper: a helper's fractional result could come back boxed. */
  protected override cheaper(b: E, a: E, now: number): boolean {
    const costB = (b.latencyEstimateMs(now) * (b.activeRequests + 1)) / weightOf(b);
    const costA = (a.latencyEstimateMs(now) * (a.activeRequests + 1)) / weightOf(a);
    return costB < costA;
  }
}

export const peakEwmaRegistration: BalancerRegistration = {
  policy: 'PEAK_EWMA',
  create: <E extends BalancedEndpoint>(_config: LoadBalancingConfig, options: BalancerOptions) =>
    new PeakEwmaBalancer<E>(new Random(options.seed)),
};
