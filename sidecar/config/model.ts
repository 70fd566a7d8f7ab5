/**
 * The sidecar's typed view of its configuration: what the static file holds today and what the
 * control plane will push later. Everything here is plain data, validated once and then frozen.
 */
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
}

export interface RouteMatch {
  /** Service name the caller's `:authority` must name (port and `.ns.svc...` suffix ignored). */
  readonly service: string;
}

export interface RouteConfig {
  readonly name: string;
  readonly match: RouteMatch;
  readonly cluster: string;
}

export interface MeshConfig {
  readonly version: string;
  readonly clusters: readonly ClusterConfig[];
  readonly routes: readonly RouteConfig[];
}
