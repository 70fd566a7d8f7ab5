/**
 * The load-balancer contract, after grpc-js: a balancer is told the set of endpoints it may use
 * whenever that set changes (added, removed, health or ejection changed) and picks one endpoint
 * per call (never per connection: HTTP/2 multiplexes, so per-connection balancing pins traffic).
 * Each policy lives in its own `balancer-<policy>.ts` and registers in `balancers.ts`.
 */
import type { IncomingHttpHeaders } from 'node:http2';

/** What a balancer may read about an endpoint. `Endpoint` implements it; tests can fake it. */
export interface BalancedEndpoint {
  /** "address:port", unique in a cluster. */
  readonly key: string;
  /** Relative share of traffic, >= 1. */
  readonly weight: number;
  /** Calls in flight to this endpoint right now. */
  readonly activeRequests: number;
  /** Peak-EWMA latency estimate in milliseconds at `now` (see peak-ewma.ts). */
  latencyEstimateMs(now: number): number;
  /** False while a connect failure backs this endpoint off: pick another if there is one. */
  available(now: number): boolean;
}

export interface PickContext {
  readonly now: number;
  /** The call's request headers (ring hash reads its hash header here). */
  readonly headers: IncomingHttpHeaders;
}

export interface Balancer<E extends BalancedEndpoint = BalancedEndpoint> {
  /** The full set of endpoints calls may go to now (healthy and not ejected), in a stable order. */
  update(endpoints: readonly E[]): void;
  /** An endpoint for one call, or undefined when none can take it. Must not allocate per call. */
  pick(ctx: PickContext): E | undefined;
}

export const LOAD_BALANCING_POLICIES = ['ROUND_ROBIN', 'RANDOM', 'LEAST_REQUEST', 'PEAK_EWMA', 'RING_HASH'] as const;
export type LoadBalancingPolicy = (typeof LOAD_BALANCING_POLICIES)[number];

export interface LoadBalancingConfig {
  readonly policy: LoadBalancingPolicy;
  /** RING_HASH: the request header whose value picks the endpoint. */
  readonly hashHeader?: string;
}
