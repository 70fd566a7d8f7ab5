/**
 * Turns untrusted data (YAML from a file, or resources pushed by the control plane) into a frozen
 * MeshConfig. Every error names the field path, e.g. `clusters[2].endpoints[0].port`. Cluster
 * policy blocks and routes are checked by the control plane's own validators.
 */
import { markFailoverBacked, markRetried, type ClusterConfig, type EndpointConfig, type MeshConfig, type RouteConfig } from './model.js';
import { Checker, deepFreeze } from '../../lib/validate.js';
import {
  checkCircuitBreakers,
  checkHealthCheck,
  checkLoadBalancing,
  checkOutlierDetection,
  checkPanicThreshold,
  checkStaticEndpoint,
} from '../../control-plane/resources/cluster.js';
import { checkRouteFields, ROUTE_SPEC_FIELDS, routeMatchKey } from '../../control-plane/resources/route.js';
import { checkSecurity } from './security.js';
import { dnsLabel, FieldChecker } from '../../control-plane/resources/fields.js';

export class ConfigError extends Error {
  readonly code = 'REMORA_CONFIG_INVALID';
  constructor(readonly problems: readonly string[]) {
    super(`invalid config:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export function checkCluster(c: Checker, v: unknown, path: string): ClusterConfig | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.known(o, path, ['name', 'endpoints', 'connectTimeoutMs', 'maxSessionAgeMs', 'loadBalancing', 'healthCheck', 'outlierDetection', 'circuitBreakers', 'panicThresholdPercent']);
  const name = dnsLabel(c, o.name, `${path}.name`, 'lower-case DNS label');
  const endpoints = (c.array(o.endpoints, `${path}.endpoints`) ?? [])
    .map((e, i) => checkStaticEndpoint(c, e, `${path}.endpoints[${i}]`))
    .filter((e): e is EndpointConfig => e !== undefined);
  const connectTimeoutMs = c.int(o.connectTimeoutMs, `${path}.connectTimeoutMs`, 1, 600_000, 5_000);
  const maxSessionAgeMs = c.int(o.maxSessionAgeMs, `${path}.maxSessionAgeMs`, 1_000, 86_400_000, 300_000);
  const loadBalancing = checkLoadBalancing(c, o.loadBalancing, `${path}.loadBalancing`);
  const healthCheck = checkHealthCheck(c, o.healthCheck, `${path}.healthCheck`);
  const outlierDetection = checkOutlierDetection(c, o.outlierDetection, `${path}.outlierDetection`);
  const circuitBreakers = checkCircuitBreakers(c, o.circuitBreakers, `${path}.circuitBreakers`);
  const panicThresholdPercent = checkPanicThreshold(c, o.panicThresholdPercent, `${path}.panicThresholdPercent`);
  if (name === undefined || connectTimeoutMs === undefined || maxSessionAgeMs === undefined || panicThresholdPercent === undefined) return undefined;
  return {
    name,
    endpoints,
    connectTimeoutMs,
    maxSessionAgeMs,
    panicThresholdPercent,
    ...(loadBalancing ? { loadBalancing } : {}),
    ...(healthCheck ? { healthCheck } : {}),
    ...(outlierDetection ? { outlierDetection } : {}),
    ...(circuitBreakers ? { circuitBreakers } : {}),
  };
}

/** A route entry: a name plus the Route resource's spec fields, checked by the control plane's own validators. */
export function checkRoute(c: Checker, v: unknown, path: string): RouteConfig | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.known(o, path, ['name', ...ROUTE_SPEC_FIELDS]);
  const spec = checkRouteFields(c, o, path);
  const name = o.name === undefined ? spec?.match.service : c.string(o.name, `${path}.name`);
  if (spec === undefined || name === undefined) return undefined;
  return { name, ...spec };
}

/** The clusters a route's retries may send attempts to (its destinations and failover, not its mirror). */
function retriedClusters(r: RouteConfig): string[] {
  if (r.retries === undefined || r.retries.maxAttempts <= 1) return [];
  return [...(r.cluster !== undefined ? [r.cluster] : []), ...(r.destinations ?? []).map((d) => d.cluster), ...(r.failover !== undefined ? [r.failover] : [])];
}

/** The clusters a route fails over from: its destinations, when it has a failover. */
function failoverBackedClusters(r: RouteConfig): string[] {
  if (r.failover === undefined) return [];
  return [...(r.cluster !== undefined ? [r.cluster] : []), ...(r.destinations ?? []).map((d) => d.cluster)];
}

/** Every cluster a route sends calls to, with the field path that names it. */
function clustersNamed(r: RouteConfig, path: string): [string, string][] {
  const out: [string, string][] = [];
  if (r.cluster !== undefined) out.push([`${path}.cluster`, r.cluster]);
  r.destinations?.forEach((d, j) => out.push([`${path}.destinations[${j}].cluster`, d.cluster]));
  if (r.failover !== undefined) out.push([`${path}.failover`, r.failover]);
  if (r.mirror !== undefined) out.push([`${path}.mirror.cluster`, r.mirror.cluster]);
  return out;
}

/** Keeps each valid entry with its index in the document, so cross-checks name the right entry. */
function indexed<T>(list: unknown[], check: (x: unknown, path: string) => T | undefined, field: string): [number, T][] {
  const out: [number, T][] = [];
  list.forEach((x, i) => {
    const v = check(x, `${field}[${i}]`);
    if (v !== undefined) out.push([i, v]);
  });
  return out;
}

/** Validates a whole config document; throws ConfigError listing every problem found. */
export function validateMeshConfig(doc: unknown, version: string): MeshConfig {
  // The control plane's checker: "is required" rather than "got undefined", so a pushed route's
  // problems read exactly as `remora apply` would have reported them.
  const c = new FieldChecker();
  const root = doc === undefined || doc === null ? {} : c.object(doc, '(root)');
  if (!root) throw new ConfigError(c.problems);
  c.known(root, '(root)', ['clusters', 'routes', 'security']);
  const clusters = indexed(c.array(root.clusters, 'clusters') ?? [], (x, p) => checkCluster(c, x, p), 'clusters');
  const routes = indexed(c.array(root.routes, 'routes') ?? [], (x, p) => checkRoute(c, x, p), 'routes');
  const security = checkSecurity(c, root.security, 'security');

  const names = new Set<string>();
  for (const [i, cl] of clusters) {
    if (names.has(cl.name)) c.fail(`clusters[${i}].name`, `duplicate cluster ${JSON.stringify(cl.name)}`);
    names.add(cl.name);
  }
  // Several routes per service are fine (the most specific match wins); two with the same match
  // would leave the choice between them to their names, which is nobody's intent.
  const byMatch = new Map<string, RouteConfig>();
  for (const [i, r] of routes) {
    for (const [p, name] of clustersNamed(r, `routes[${i}]`)) if (!names.has(name)) c.fail(p, `no cluster named ${JSON.stringify(name)}`);
    const key = routeMatchKey(r.match);
    const same = byMatch.get(key);
    if (same) c.fail(`routes[${i}].match`, `route ${JSON.stringify(same.name)} already has the same match (service, method and headers)`);
    else byMatch.set(key, r);
  }
  if (c.problems.length > 0) throw new ConfigError(c.problems);
  const config = deepFreeze({ version, clusters: clusters.map(([, x]) => x), routes: routes.map(([, x]) => x), ...(security ? { security } : {}) });
  const retried = new Set(config.routes.flatMap(retriedClusters));
  const backed = new Set(config.routes.flatMap(failoverBackedClusters));
  for (const cl of config.clusters) {
    if (retried.has(cl.name)) markRetried(cl);
    if (backed.has(cl.name)) markFailoverBacked(cl);
  }
  return config;
}
