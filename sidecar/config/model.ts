/**
 * The sidecar's typed view of its configuration, from the static file or pushed by the control
 * plane. Plain data, validated once and then frozen. Clusters' policy blocks and routes share their
 * schema with the control plane's Cluster and Route resources.
 */
import type {
  CircuitBreakersSpec,
  ClusterPolicy,
  HealthCheckSpec,
  LoadBalancingSpec,
  OutlierDetectionSpec,
  RouteSpec,
  StaticEndpoint,
} from '../../control-plane/resources/types.js';

import type { SecurityConfig } from './security.js';

export type { SecurityConfig };
export type { CircuitBreakersSpec, HealthCheckSpec, LoadBalancingSpec, OutlierDetectionSpec };
export type EndpointConfig = StaticEndpoint;

export interface ClusterConfig extends ClusterPolicy {
  readonly name: string;
  readonly endpoints: readonly EndpointConfig[];
  /**
   * Below this share of healthy endpoints (passing health checks, not ejected) the cluster
   * balances over all of them (sidecar/health/panic-threshold.ts). 0 disables; absent means 50.
   */
  readonly panicThresholdPercent?: number;
}

/**
 * Clusters a route with retries sends calls to, as validateMeshConfig found them. Kept beside the
 * frozen configs rather than in them, so a config stays exactly what was written and validates
 * again from its own JSON (/config_dump). Such a cluster learns its methods' idempotency and
 * kinds as soon as it is applied, so its first failed call can already be retried.
 */
const retried = new WeakSet<ClusterConfig>();

export function markRetried(cluster: ClusterConfig): void {
  retried.add(cluster);
}

export function isRetried(cluster: ClusterConfig): boolean {
  return retried.has(cluster);
}

/**
 * Clusters a route sends calls to with a `failover` behind them. Such a cluster does not panic:
 * when it has no healthy endpoint the failover cluster takes the calls, as Envoy spills traffic to
 * a healthy lower priority before it panics (its panic threshold counts all priorities).
 */
const failoverBacked = new WeakSet<ClusterConfig>();

export function markFailoverBacked(cluster: ClusterConfig): void {
  failoverBacked.add(cluster);
}

export function hasFailover(cluster: ClusterConfig): boolean {
  return failoverBacked.has(cluster);
}

/** Which calls a route takes: the service `:authority` names (port and `.ns.svc...` suffix ignored), method, headers. */
export type RouteMatch = RouteSpec['match'];

/** A Route resource's spec under a name (`<namespace>/<name>` when pushed by the control plane). */
export interface RouteConfig extends RouteSpec {
  readonly name: string;
}

export interface MeshConfig {
  readonly version: string;
  readonly clusters: readonly ClusterConfig[];
  readonly routes: readonly RouteConfig[];
  /** Absent: no mTLS settings pushed (plaintext, no authorization policies). */
  readonly security?: SecurityConfig;
}
