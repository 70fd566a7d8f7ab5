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
