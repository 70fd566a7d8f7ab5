/**
 * A resolved route: where a call goes (one cluster, or one of a weighted split picked per call),
 * where it fails over to, and the policy the request path applies (timeouts, retries, faults).
 */
import type { RouteConfig } from '../config/model.js';
import type { RouteSpec } from '../../control-plane/resources/types.js';
import type { Cluster } from '../upstream/cluster.js';
import { INT30_UNIT, Random } from '../upstream/random.js';
import { deepFreeze } from '../../lib/validate.js';

/**
 * The route's policy fields exactly as validated (absent stays absent; the defaults the sidecar
 * applies are DEFAULT_GRPC_TIMEOUT and RETRY_DEFAULTS in control-plane/resources/route.ts). Frozen.
 */
export type RoutePolicy = Pick<RouteSpec, 'timeoutMs' | 'grpcTimeout' | 'idleTimeoutMs' | 'retries' | 'fault'>;

/** No timeouts, retries or faults: the inbound side's route, and routes that set none. */
export const EMPTY_POLICY: RoutePolicy = Object.freeze({});

/** A source of integers in [0, 2^30): Random, or a seeded one in tests. */
export type RandomSource = Pick<Random, 'nextInt30'>;

export interface Route {
  readonly name: string;
  readonly service: string;
  /** The cluster for this call: a split draws by weight each time; a single cluster is returned as is. */
  pickCluster(random?: RandomSource): Cluster;
  /** Takes the call when the picked cluster has no endpoint that can. */
  readonly failover?: Cluster;
  readonly policy: RoutePolicy;
  /** Where a copy of some calls goes (answers dropped). */
  readonly mirror?: { readonly cluster: Cluster; readonly percent: number };
}

export interface WeightedCluster {
  readonly cluster: Cluster;
  readonly weight: number;
}

/** Shared by every route: a draw must not allocate, and a generator per route buys nothing. */
const sharedRandom = new Random();

export class ClusterRoute implements Route {
  readonly failover?: Cluster;
  readonly mirror?: { readonly cluster: Cluster; readonly percent: number };
  private readonly clusters: readonly Cluster[];
  /** cumulative[i] = weights[0] + ... + weights[i]; integers, so the draw needs no float search. */
  private readonly cumulative: Int32Array;
  private readonly total: number;

  /** `targets` must have at least one weight above 0; weight-0 targets never get a call. */
  constructor(
    readonly name: string,
    readonly service: string,
    targets: readonly WeightedCluster[],
    failover: Cluster | undefined,
    readonly policy: RoutePolicy,
    mirror?: { readonly cluster: Cluster; readonly percent: number },
  ) {
    const live = targets.filter((t) => t.weight > 0);
    if (live.length === 0) throw new Error(`route ${name}: no destination with a weight above 0`);
    this.clusters = live.map((t) => t.cluster);
    this.cumulative = new Int32Array(live.length);
    let total = 0;
    live.forEach((t, i) => (this.cumulative[i] = total += t.weight));
    this.total = total;
    if (failover) this.failover = failover;
    if (mirror) this.mirror = mirror;
  }

  pickCluster(random: RandomSource = sharedRandom): Cluster {
    const clusters = this.clusters;
    const n = clusters.length;
    if (n === 1) return clusters[0]!;
    const r = Math.floor(random.nextInt30() * INT30_UNIT * this.total);
    // A split has a handful of destinations: a linear scan beats a binary search at that size.
    const cumulative = this.cumulative;
    for (let i = 0; i < n - 1; i++) if (r < cumulative[i]!) return clusters[i]!;
    return clusters[n - 1]!;
  }
}

/** The policy fields of a validated route, deeply frozen: the request path reads them, never writes. */
export function policyOf(r: RouteConfig): RoutePolicy {
  const p: RoutePolicy = {
    ...(r.timeoutMs !== undefined ? { timeoutMs: r.timeoutMs } : {}),
    ...(r.grpcTimeout !== undefined ? { grpcTimeout: r.grpcTimeout } : {}),
    ...(r.idleTimeoutMs !== undefined ? { idleTimeoutMs: r.idleTimeoutMs } : {}),
    ...(r.retries !== undefined ? { retries: r.retries } : {}),
    ...(r.fault !== undefined ? { fault: r.fault } : {}),
  };
  return Object.keys(p).length === 0 ? EMPTY_POLICY : deepFreeze(p);
}
