/**
 * The balancer registry: the one place a LoadBalancingConfig becomes a Balancer. Each policy's file
 * exports its registration (policy name + factory), after grpc-js's registerLoadBalancerType; they
 * are registered here rather than on import so there is no import cycle and no import-order trap.
 */
import type { BalancedEndpoint, Balancer, LoadBalancingConfig, LoadBalancingPolicy } from './balancer.js';
import { leastRequestRegistration } from './balancer-least-request.js';
import { peakEwmaRegistration } from './balancer-peak-ewma.js';
import { randomRegistration } from './balancer-random.js';
import { ringHashRegistration } from './balancer-ring-hash.js';
import { roundRobinRegistration } from './balancer-round-robin.js';
import { BalancerConfigError } from './lb-config-error.js';

export { BalancerConfigError };

export interface BalancerOptions {
  /** Seeds the balancer's random numbers, for reproducible tests; by default each balancer seeds itself. */
  readonly seed?: number;
}

export interface BalancerRegistration {
  readonly policy: LoadBalancingPolicy;
  /** May throw BalancerConfigError for a config the policy cannot use. */
  create<E extends BalancedEndpoint>(config: LoadBalancingConfig, options: BalancerOptions): Balancer<E>;
}

/**
 * Peak EWMA when a cluster names no policy. It is the only policy that sees latency: it routes
 * around a slow or degrading instance from its first slow response, before a queue builds there,
 * and spreads bursts by calls in flight as well; that is why Linkerd made it its default. Round
 * robin and random ignore load entirely (a slow instance keeps its full share); least request sees
 * queues but not latency, so it only reacts once calls have piled up.
 */
export const DEFAULT_LOAD_BALANCING: LoadBalancingConfig = Object.freeze({ policy: 'PEAK_EWMA' });

const registry = new Map<string, BalancerRegistration>();

/** Adds or replaces a policy (tests and future policies). */
export function registerBalancer(registration: BalancerRegistration): void {
  registry.set(registration.policy, registration);
}

export function createBalancer<E extends BalancedEndpoint = BalancedEndpoint>(
  config: LoadBalancingConfig = DEFAULT_LOAD_BALANCING,
  options: BalancerOptions = {},
): Balancer<E> {
  const registration = registry.get(config.policy);
  if (registration === undefined) {
    throw new BalancerConfigError(`unknown load balancing policy ${JSON.stringify(config.policy)}; known: ${[...registry.keys()].join(', ')}`);
  }
  return registration.create<E>(config, options);
}

for (const registration of [
  roundRobinRegistration,
  randomRegistration,
  leastRequestRegistration,
  peakEwmaRegistration,
  ringHashRegistration,
]) {
  registerBalancer(registration);
}
