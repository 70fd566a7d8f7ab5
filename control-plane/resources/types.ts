/**
 * User-written mesh resources, as `remora apply -f` reads them and as they are stored in etcd under
 * `<prefix>config/<kind>/<namespace>/<name>` (JSON). Kubernetes-like envelope:
 *
 *   kind: Route
 *   metadata: { name: catalog-canary, namespace: shop }
 *   spec: { ... }
 */
export const RESOURCE_KINDS = ['Route', 'Cluster', 'AuthorizationPolicy', 'MeshConfig'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

export interface ResourceMetadata {
  readonly name: string;
  /** Defaults to "default". */
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** gRPC status codes by name, as route retry and outlier-detection policies list them. */
export const GRPC_STATUS_NAMES = [
  'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
] as const;
export type GrpcStatusName = (typeof GRPC_STATUS_NAMES)[number];

/** Retries of a route (sidecar/policy/policy-call.ts). */
export interface RetrySpec {
  /** Attempts in all, the first one included (gRPC's retryPolicy counts the same way). */
  readonly maxAttempts: number;
  /** Statuses worth another attempt (default UNAVAILABLE); connect failures and refused streams always are. */
  readonly retryOn: readonly GrpcStatusName[];
  readonly perTryTimeoutMs?: number;
  /** Exponential backoff with full jitter between attempts. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Retries may add at most this percentage of the route's calls (default 20)... */
  readonly budgetPercent?: number;
  /** ...but at least this many retries per second are always allowed (default 10). */
  readonly minRetriesPerSecond?: number;
  /** Retry methods not marked idempotent after their request reached the server (default false). */
  readonly retryNonIdempotent?: boolean;
  /** Requests (all messages) larger than this are not retried (default 65536). */
  readonly replayBufferBytes?: number;
}
/** `/pkg.Service/Method`: exact, or a prefix such as `/pkg.Service/`. */
export interface MethodMatch {
  readonly exact?: string;
  readonly prefix?: string;
}

/** Exactly one of exact, regex (whole value), present. Header names are lower case. */
export interface HeaderMatch {
  readonly name: string;
  readonly exact?: string;
  readonly regex?: string;
  readonly present?: boolean;
}

export interface WeightedDestination {
  readonly cluster: string;
  readonly weight: number;
}

/** Chaos drills: delay and/or abort a percentage of calls, optionally only those carrying a header. */
export interface FaultSpec {
  readonly delay?: { readonly fixedMs: number; /** default 100 */ readonly percent?: number };
  readonly abort?: { readonly status: GrpcStatusName; /** default 100 */ readonly percent?: number; readonly message?: string };
  readonly onlyWithHeader?: { readonly name: string; readonly exact?: string };
}

/**
 * Route: which calls to a service it takes (method, headers) and where they go (one cluster, or a
 * weighted split), with its timeout, retry and fault policy. A service may have several routes:
 * the most specific match wins (see the sidecar's route table).
 */
export interface RouteSpec {
  readonly match: { readonly service: string; readonly method?: MethodMatch; readonly headers?: readonly HeaderMatch[] };
  /** Exactly one of cluster and destinations. */
  readonly cluster?: string;
  readonly destinations?: readonly WeightedDestination[];
  /** Used when the chosen cluster has no healthy endpoint (all unhealthy, ejected or backing off). */
  readonly failover?: string;
  /** Whole-call timeout, retries included. */
  readonly timeoutMs?: number;
  /** The caller's grpc-timeout: CAP it at timeoutMs (default), HONOR it as is, or IGNORE it. */
  readonly grpcTimeout?: 'CAP' | 'HONOR' | 'IGNORE';
  /** Streams idle (no message either way) this long are cancelled. */
  readonly idleTimeoutMs?: number;
  readonly retries?: RetrySpec;
  readonly fault?: FaultSpec;
  /** Copy a percentage of calls (default 100) to another cluster; its answers are dropped. */
  readonly mirror?: { readonly cluster: string; readonly percent?: number };
}
export const LOAD_BALANCING_POLICIES = ['ROUND_ROBIN', 'RANDOM', 'LEAST_REQUEST', 'PEAK_EWMA', 'RING_HASH'] as const;
export type LoadBalancingPolicy = (typeof LOAD_BALANCING_POLICIES)[number];

/** The cluster's load-balancing policy (sidecar/upstream/balancers.ts; PEAK_EWMA when absent). */
export interface LoadBalancingSpec {
  readonly policy: LoadBalancingPolicy;
  /** RING_HASH only (and required there): the request header whose value is hashed. */
  readonly hashHeader?: string;
}

/** Active grpc.health.v1 checks (sidecar/health/health-checker.ts). */
export interface HealthCheckSpec {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  /** Up to this much is added at random to each interval, so checks from many sidecars spread out. */
  readonly jitterMs: number;
  /** The service name sent in `Check`; "" asks about the server as a whole. */
  readonly serviceName: string;
}

/** Passive ejection on consecutive failures (sidecar/health/outlier-detector.ts). */
export interface OutlierDetectionSpec {
  readonly consecutiveFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
  /** Statuses that count as failures (connect failures always do). */
  readonly statusCodes: readonly GrpcStatusName[];
}

/** Per-cluster thresholds like Envoy's (sidecar/health/circuit-breakers.ts). */
export interface CircuitBreakersSpec {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

/**
 * Cluster: policy for calls to one service, optionally a subset of its instances by labels
 * (e.g. version: v2), or a fixed endpoint list for something outside the mesh.
 */
/** An endpoint given by address (a Cluster's fixed endpoints; every endpoint the sidecar sees). */
export interface StaticEndpoint {
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly labels: Readonly<Record<string, string>>;
  /** Dial with mTLS and require this SPIFFE ID of the server; absent: plaintext. */
  readonly identity?: string;
}

/** Connection and policy settings a Cluster resource and the sidecar's cluster config share. */
export interface ClusterPolicy {
  readonly connectTimeoutMs: number;
  readonly maxSessionAgeMs: number;
  /** The policy blocks below are optional: absent means the sidecar's defaults. */
  readonly loadBalancing?: LoadBalancingSpec;
  readonly healthCheck?: HealthCheckSpec;
  readonly outlierDetection?: OutlierDetectionSpec;
  readonly circuitBreakers?: CircuitBreakersSpec;
  /** Below this share of healthy endpoints, balance over all of them (Envoy's panic threshold). */
  readonly panicThresholdPercent?: number;
}

export interface ClusterSpec extends ClusterPolicy {
  /** Service whose registered instances are the endpoints; defaults to metadata.name. */
  readonly service: string;
  /** Only instances whose labels include all of these. */
  readonly subset: Readonly<Record<string, string>>;
  /** Static endpoints (then no registered instances are used). */
  readonly endpoints: readonly StaticEndpoint[];
}

/** Who may call a service's methods; enforced by the service's sidecars on inbound calls. */
export interface AuthorizationPolicySpec {
  /** The service the policy protects. */
  readonly service: string;
  readonly action: 'ALLOW' | 'DENY';
  readonly rules: readonly {
    /** SPIFFE IDs, `ns/<ns>/*`, or `*`. */
    readonly from: readonly string[];
    /** gRPC methods `/pkg.Service/Method` or `/pkg.Service/*`; empty = all. */
    readonly methods: readonly string[];
  }[];
}

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLED';

/** mTLS settings for the whole mesh (root namespace), one namespace, or one service in it. */
export interface MeshConfigSpec {
  /** Read from the mesh-wide MeshConfig only. */
  readonly trustDomain: string;
  readonly mtlsMode: MtlsMode;
  /** Only this service of the resource's namespace. */
  readonly service?: string;
}

export type SpecOf<K extends ResourceKind> = K extends 'Route'
  ? RouteSpec
  : K extends 'Cluster'
    ? ClusterSpec
    : K extends 'AuthorizationPolicy'
      ? AuthorizationPolicySpec
      : MeshConfigSpec;

export interface Resource<K extends ResourceKind = ResourceKind> {
  readonly kind: K;
  readonly metadata: ResourceMetadata;
  readonly spec: SpecOf<K>;
}

/** A resource as read back from the store, with the etcd revision that last changed it. */
export interface StoredResource<K extends ResourceKind = ResourceKind> extends Resource<K> {
  readonly modRevision: string;
}

/** A value found in the store that does not validate: reported, skipped, never applied. */
export interface InvalidStoredResource {
  readonly key: string;
  readonly problems: readonly string[];
}

/** A registered service instance, stored under `<prefix>endpoints/<ns>/<service>/<instance>`. */
export interface InstanceRecord {
  readonly service: string;
  readonly namespace: string;
  readonly instanceId: string;
  /** Where peers reach the instance's sidecar (inbound listener). */
  readonly address: string;
  readonly port: number;
  readonly zone: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  readonly health: 'SERVING' | 'NOT_SERVING';
  /** Which control-plane replica holds the registration (its lease). */
  readonly controlPlane: string;
}

/** What `remora status` shows for one connected sidecar, stored under `<prefix>status/<ns>/<service>/<instance>`. */
export interface SidecarStatus {
  readonly service: string;
  readonly namespace: string;
  readonly instanceId: string;
  readonly controlPlane: string;
  readonly connectedAt: string;
  readonly appliedVersion: string;
  readonly lastNack: { readonly version: string; readonly at: string; readonly errors: readonly string[] } | null;
}
