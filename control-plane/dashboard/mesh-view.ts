/**
 * What the dashboard shows, as served at GET :15014/api/mesh: the golden metrics of every edge
 * between services over the last window (from the stats sidecars report on their discovery
 * stream), and each connected sidecar's config and certificate state.
 */
export interface MeshEdge {
  /** Caller service (the sidecar's --service). */
  readonly source: string;
  /** Callee service (the route's destination service). */
  readonly destination: string;
  /** Calls per second over the window. */
  readonly rps: number;
  /** Share of calls that ended with grpc-status 0, 0..1 (null with no calls). */
  readonly successRate: number | null;
  /** p99 latency seen by the caller's sidecar, milliseconds (null with no calls). */
  readonly p99Ms: number | null;
  readonly requests: number;
}

export interface MeshSidecar {
  readonly namespace: string;
  readonly service: string;
  readonly instanceId: string;
  /** Which control-plane replica it is connected to. */
  readonly replica: string;
  readonly appliedVersion: string;
  /** ISO time; null without a certificate. */
  readonly certificateExpiry: string | null;
  readonly lastNack: MeshNack | null;
}

export interface MeshNack {
  /** ISO time. */
  readonly at: string;
  /** "<namespace>/<service>/<instance>" */
  readonly sidecar: string;
  readonly version: string;
  readonly errors: readonly string[];
}

export interface MeshView {
  /** ISO time. */
  readonly generatedAt: string;
  readonly windowSeconds: number;
  readonly configVersion: string;
  /** Every service with a registered instance or an edge. */
  readonly services: readonly { readonly name: string; readonly instances: number }[];
  readonly edges: readonly MeshEdge[];
  readonly sidecars: readonly MeshSidecar[];
  /** Newest first, at most 20. */
  readonly nacks: readonly MeshNack[];
}
