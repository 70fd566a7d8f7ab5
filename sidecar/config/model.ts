/**
 * The sidecar's typed view of its configuration, from the static file or pushed by the control
 * plane. Plain data, validated once and then frozen. The policy blocks share their schema with the
 * control plane's Cluster resource.
 */
import type { CircuitBreakersSpec, HealthCheckSpec, LoadBalancingSpec, OutlierDetectionSpec } from '../../control-plane/resources/types.js';

export type { CircuitBreakersSpec, HealthCheckSpec, LoadBalancingSpec, OutlierDetectionSpec };
export interface EndpointConfig {
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly labels: Readonly<Record<string, string>>;
}

export interface ClusterConfig {
  readonly name: string;
  readonly endpoints: readonly EndpointConfig[];
  /** Milliseconds to wait for a TCP (and later TLS) connection before failing the call. */
  readonly connectTimeoutMs: number;
  /** Recycle an upstream HTTP/2 session after this age so rebalancing and rotation take effect. */
  readonly maxSessionAgeMs: number;
  /** Absent: the default policy (balancers.ts). */
  readonly loadBalancing?: LoadBalancingSpec;
  readonly healthCheck?: HealthCheckSpec;
  readonly outlierDetection?: OutlierDetectionSpec;
  readonly circuitBreakers?: CircuitBreakersSpec;
}

export interface RouteMatch {
  /** Service name the caller's `:authority` must name (port and `.ns.svc...` suffix ignored). */
  readonly service: string;
}

export interface RouteConfig {
  readonly name: string;
  readonly match: RouteMatch;
  readonly cluster: string;
  /** Used when `cluster` has no endpoint that can take the call. */
  readonly failover?: string;
}

export interface MeshConfig {
  readonly version: string;
  readonly clusters: readonly ClusterConfig[];
  readonly routes: readonly RouteConfig[];
}
