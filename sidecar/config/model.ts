/**
 * The sidecar's typed view of its configuration, from the static file or pushed by the control
 * plane. Plain data, validated once and then frozen. The policy blocks share their schema with the
 * control plane's Cluster resource.
 */
import type {
  CircuitBreakersSpec,
  ClusterPolicy,
  HealthCheckSpec,
  LoadBalancingSpec,
  OutlierDetectionSpec,
  StaticEndpoint,
} from '../../control-plane/resources/types.js';

export type { CircuitBreakersSpec, HealthCheckSpec, LoadBalancingSpec, OutlierDetectionSpec };
export type EndpointConfig = StaticEndpoint;

export interface ClusterConfig extends ClusterPolicy {
  readonly name: string;
  readonly endpoints: readonly EndpointConfig[];
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
