/**
 * Resolves a call (`:authority`, `:path`, headers) to a route. A service may have several routes:
 * they are tried most specific first and the first whose method and headers match wins. A service
 * name that is also a cluster name routes to that cluster when no explicit route of the service
 * matches, so the common case needs no route config at all.
 *
 * resolve() runs for every call. The authority → service step is cached per raw authority string
 * (bounded, so hostile authorities cannot grow it), and a service whose calls all take one route
 * returns it from that cache entry without testing anything: no allocation, no regex.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import type { MeshConfig, RouteConfig } from '../config/model.js';
import type { Cluster } from '../upstream/cluster.js';
import { parseAuthority } from './authority.js';
import { bySpecificity, CompiledMatch } from './match.js';
import { ClusterRoute, EMPTY_POLICY, policyOf, type Route, type WeightedCluster } from './route.js';

export type { Route, RoutePolicy, RandomSource } from './route.js';

export interface Router {
  /** `path` is the call's `:path` (`/pkg.Service/Method`); `headers` its request headers. */
  resolve(authority: string, path: string | undefined, headers: IncomingHttpHeaders): Route | undefined;
}

interface Candidate {
  readonly name: string;
  readonly match: CompiledMatch;
  readonly route: Route;
}

/** One service's routes, as a cache entry. */
interface ServiceRoutes {
  /** Set when one route takes every call to the service: resolve() returns it without matching. */
  readonly only: Route | undefined;
  /** Otherwise tried in order (most specific first); the first that matches wins... */
  readonly candidates: readonly Candidate[];
  /** ...and when none does, the implicit default route (service name == cluster name), if there is one. */
  readonly fallback: Route | undefined;
}

const CACHE_LIMIT = 4096;

function targetsOf(r: RouteConfig, clusters: ReadonlyMap<string, Cluster>): WeightedCluster[] | undefined {
  const wanted = r.destinations ?? (r.cluster !== undefined ? [{ cluster: r.cluster, weight: 1 }] : []);
  const out: WeightedCluster[] = [];
  for (const d of wanted) {
    const cluster = clusters.get(d.cluster);
    if (!cluster) return undefined;
    out.push({ cluster, weight: d.weight });
  }
  return out.some((t) => t.weight > 0) ? out : undefined;
}

function serviceRoutes(explicit: Candidate[], fallback: Route | undefined): ServiceRoutes {
  explicit.sort(bySpecificity);
  const catchAll = explicit.findIndex((c) => c.match.unconditional);
  // Routes after an unconditional one can never be reached; neither can the default route.
  const candidates = catchAll === -1 ? explicit : explicit.slice(0, catchAll + 1);
  if (candidates.length === 0) return { only: fallback, candidates, fallback: undefined };
  if (candidates.length === 1 && catchAll === 0) return { only: candidates[0]!.route, candidates: [], fallback: undefined };
  return { only: undefined, candidates, fallback: catchAll === -1 ? fallback : undefined };
}

export class RouteTable implements Router {
  private readonly byService = new Map<string, ServiceRoutes>();
  private readonly cache = new Map<string, ServiceRoutes | null>();

  /**
   * `config` is validated, so every cluster a route names is in `clusters`; a route that still
   * names a missing one (a caller building its own maps) is left out rather than half-built.
   */
  constructor(config: MeshConfig, clusters: ReadonlyMap<string, Cluster>) {
    const explicit = new Map<string, Candidate[]>();
    for (const r of config.routes) {
      const targets = targetsOf(r, clusters);
      if (!targets) continue;
      const failover = r.failover === undefined ? undefined : clusters.get(r.failover);
      const service = r.match.service;
      const mirrorCluster = r.mirror === undefined ? undefined : clusters.get(r.mirror.cluster);
      const mirror = mirrorCluster ? { cluster: mirrorCluster, percent: r.mirror!.percent ?? 100 } : undefined;
      const route = new ClusterRoute(r.name, service, targets, failover, policyOf(r), mirror);
      const list = explicit.get(service) ?? [];
      list.push({ name: r.name, match: new CompiledMatch(r.match), route });
      explicit.set(service, list);
    }
    const services = new Set([...clusters.keys(), ...explicit.keys()]);
    for (const service of services) {
      const cluster = clusters.get(service);
      const dflt = cluster ? new ClusterRoute(`default/${service}`, service, [{ cluster, weight: 1 }], undefined, EMPTY_POLICY) : undefined;
      this.byService.set(service, serviceRoutes(explicit.get(service) ?? [], dflt));
    }
  }

  resolve(authority: string, path: string | undefined, headers: IncomingHttpHeaders): Route | undefined {
    let entry = this.cache.get(authority);
    if (entry === undefined) entry = this.lookup(authority);
    if (entry === null) return undefined;
    if (entry.only !== undefined) return entry.only;
    const candidates = entry.candidates;
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      if (c.match.matches(path, headers)) return c.route;
    }
    return entry.fallback;
  }

  private lookup(authority: string): ServiceRoutes | null {
    const parsed = parseAuthority(authority);
    const entry = (parsed && this.byService.get(parsed.service)) || null;
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(authority, entry);
    return entry;
  }
}

/** Sends every call to one cluster with no policy: the inbound side's local app. */
export class FixedRouter implements Router {
  private readonly route: Route;
  constructor(service: string, cluster: Cluster) {
    this.route = new ClusterRoute('inbound', service, [{ cluster, weight: 1 }], undefined, EMPTY_POLICY);
  }
  resolve(): Route {
    return this.route;
  }
}
