/**
 * Resolves a call's `:authority` to a route. Explicit routes win; otherwise a service name that is
 * also a cluster name routes to that cluster, so the common case needs no route config at all.
 * Results are cached per raw authority string (bounded, so hostile authorities cannot grow it).
 */
import type { MeshConfig } from '../config/model.js';
import type { Cluster } from '../upstream/cluster.js';
import { parseAuthority } from './authority.js';

export interface Route {
  readonly name: string;
  readonly service: string;
  readonly cluster: Cluster;
  /** Takes the calls when `cluster` has no endpoint that can. */
  readonly failover?: Cluster;
}

export interface Router {
  resolve(authority: string): Route | undefined;
}

const CACHE_LIMIT = 4096;

export class RouteTable implements Router {
  private readonly byService = new Map<string, Route>();
  private readonly cache = new Map<string, Route | null>();

  constructor(config: MeshConfig, clusters: ReadonlyMap<string, Cluster>) {
    for (const [name, cluster] of clusters) this.byService.set(name, { name: `default/${name}`, service: name, cluster });
    for (const r of config.routes) {
      const cluster = clusters.get(r.cluster);
      const failover = r.failover === undefined ? undefined : clusters.get(r.failover);
      if (cluster) this.byService.set(r.match.service, { name: r.name, service: r.match.service, cluster, ...(failover ? { failover } : {}) });
    }
  }

  resolve(authority: string): Route | undefined {
    const hit = this.cache.get(authority);
    if (hit !== undefined) return hit ?? undefined;
    const parsed = parseAuthority(authority);
    const route = (parsed && this.byService.get(parsed.service)) || null;
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(authority, route);
    return route ?? undefined;
  }
}

/** Sends every call to one cluster: the inbound side's local app. */
export class FixedRouter implements Router {
  private readonly route: Route;
  constructor(service: string, cluster: Cluster) {
    this.route = { name: 'inbound', service, cluster };
  }
  resolve(): Route {
    return this.route;
  }
}
