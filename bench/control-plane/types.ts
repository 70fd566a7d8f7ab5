/**
 * What the control-plane bench's orchestrator and its fleet worker exchange: the worker's options
 * (one JSON argument) and its result (one JSON line on stdout).
 */

export interface FleetOptions {
  /** The control plane's discovery address, host:port. */
  readonly controlPlane: string;
  /** PIDs whose CPU and memory the worker samples at the right moments (from /proc). */
  readonly controlPlanePid: number;
  readonly etcdPid: number;
  readonly etcdEndpoint: string;
  /** The control plane's etcd key prefix, ending in "/". */
  readonly prefix: string;
  readonly sidecars: number;
  /** grpc-js multiplexes streams on a channel (one HTTP/2 connection); this many per channel. */
  readonly streamsPerChannel: number;
  /** Every simulated sidecar asks to be registered: measures the registration storm. */
  readonly register: boolean;
  /** grpc-node.flow_control_window for the fleet's channels; 0 = grpc-js's default (64 KiB), as the sidecar has. */
  readonly flowControlWindow: number;
  readonly changes: number;
  /** Quiet time before each change, after the previous one converged. */
  readonly intervalMs: number;
  /** A change not seen by every sidecar within this counts the missing ones as timeouts. */
  readonly changeTimeoutMs: number;
  /** Bound on connecting every stream (and, with register, on the storm converging). */
  readonly connectTimeoutMs: number;
  /**
   * Minimum pause after connecting, before reading the control plane's memory and starting the
   * changes; the pause then lasts until the control plane is idle (bounded by connectTimeoutMs).
   */
  readonly settleMs: number;
}

export interface Percentiles {
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

export interface ChangeResult {
  readonly index: number;
  /** etcd revision of the bench's write (from the put response header). */
  readonly revision: number;
  /** How long the put itself took, as the bench saw it. */
  readonly putMs: number;
  /** Write start → first and last sidecar converged; NaN when some sidecar timed out. */
  readonly firstMs: number;
  readonly lastMs: number;
  readonly converged: number;
  readonly timeouts: number;
  /** Size of the snapshot that carried the change (as received, protobuf bytes). */
  readonly snapshotBytes: number;
  /** Snapshots sidecar 0 received from the write until convergence (1 = exactly one push). */
  readonly pushes: number;
  /**
   * Event-loop utilization of the fleet worker from the write to convergence (0..1). Near 1, the
   * simulated sidecars themselves were the bottleneck and the latencies overstate the control plane's.
   */
  readonly fleetBusy: number;
}

export interface ConnectResult {
  /** Opening the streams → every sidecar has its first snapshot. */
  readonly allMs: number;
  /** Per sidecar: open → first snapshot. */
  readonly firstSnapshot: Percentiles;
  readonly timeouts: number;
}

/** --register only: every sidecar registers at once. */
export interface StormResult {
  /** Opening the streams → every sidecar has a snapshot listing all N registered instances. */
  readonly allMs: number;
  /** Per sidecar: open → snapshot with all N instances. */
  readonly perSidecar: Percentiles;
  /** Snapshots sidecar 0 received during the storm. */
  readonly pushes: number;
  readonly finalSnapshotBytes: number;
  readonly completed: boolean;
  /** Sidecars that never saw all N instances within --connect-timeout-ms. */
  readonly timeouts: number;
}

export interface CpuResult {
  /**
   * The window the per-change CPU is averaged over: from before the first change's pause to 1.2 s
   * after the last convergence, so the status writes each push's ACKs cause are billed to it.
   */
  readonly windowMs: number;
  readonly controlPlaneMsPerChange: number;
  readonly etcdMsPerChange: number;
  readonly fleetMsPerChange: number;
  /** Mean of the changes' fleetBusy. */
  readonly fleetBusyDuringConvergence: number;
}

export interface FleetResult {
  readonly sidecars: number;
  readonly channels: number;
  readonly register: boolean;
  readonly connect: ConnectResult;
  readonly storm?: StormResult;
  /** How long the pause after connecting lasted (see FleetOptions.settleMs). */
  readonly settledMs: number;
  readonly controlPlaneRssBeforeBytes: number;
  readonly controlPlaneRssAfterBytes: number;
  /** (after − before) / sidecars. */
  readonly controlPlaneKibPerSidecar: number;
  readonly fleetRssBytes: number;
  /** Every sidecar × change that converged: write start → snapshot received. */
  readonly convergence: Percentiles;
  /** Per change: write start → the last sidecar converged (changes with timeouts excluded). */
  readonly lastSidecar: Percentiles;
  readonly changes: readonly ChangeResult[];
  readonly snapshotBytes: number;
  readonly cpu: CpuResult;
  readonly timeouts: number;
  /** Stream failures by kind (`grpc-<code>`, `ended`, `bad-version`, `put-failed`). */
  readonly errors: Readonly<Record<string, number>>;
  readonly errorCount: number;
}

export type FleetEvent =
  | { readonly event: 'log'; readonly message: string }
  | { readonly event: 'result'; readonly result: FleetResult };
