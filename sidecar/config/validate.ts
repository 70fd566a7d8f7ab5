/**
 * Turns untrusted data (YAML from a file, later resources from the control plane) into a frozen
 * MeshConfig. Every error names the field path, e.g. `clusters[2].endpoints[0].port`.
 */
import type { ClusterConfig, EndpointConfig, MeshConfig, RouteConfig } from './model.js';
import { Checker, DNS_LABEL as SERVICE_NAME, deepFreeze } from '../../lib/validate.js';
import {
  checkCircuitBreakers,
  checkHealthCheck,
  checkLoadBalancing,
  checkOutlierDetection,
  checkStaticEndpoint,
} from '../../control-plane/resources/cluster.js';

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
  c.known(o, path, ['name', 'endpoints', 'connectTimeoutMs', 'maxSessionAgeMs', 'loadBalancing', 'healthCheck', 'outlierDetection', 'circuitBreakers']);
  const name = c.string(o.name, `${path}.name`, SERVICE_NAME, 'lower-case DNS label');
  const endpoints = (c.array(o.endpoints, `${path}.endpoints`) ?? [])
    .map((e, i) => checkStaticEndpoint(c, e, `${path}.endpoints[${i}]`))
    .filter((e): e is EndpointConfig => e !== undefined);
  const connectTimeoutMs = c.int(o.connectTimeoutMs, `${path}.connectTimeoutMs`, 1, 600_000, 5_000);
  const maxSessionAgeMs = c.int(o.maxSessionAgeMs, `${path}.maxSessionAgeMs`, 1_000, 86_400_000, 300_000);
  const loadBalancing = checkLoadBalancing(c, o.loadBalancing, `${path}.loadBalancing`);
  const healthCheck = checkHealthCheck(c, o.healthCheck, `${path}.healthCheck`);
  const outlierDetection = checkOutlierDetection(c, o.outlierDetection, `${path}.outlierDetection`);
  const circuitBreakers = checkCircuitBreakers(c, o.circuitBreakers, `${path}.circuitBreakers`);
  if (name === undefined || connectTimeoutMs === undefined || maxSessionAgeMs === undefined) return undefined;
  return {
    name,
    endpoints,
    connectTimeoutMs,
    maxSessionAgeMs,
    ...(loadBalancing ? { loadBalancing } : {}),
    ...(healthCheck ? { healthCheck } : {}),
    ...(outlierDetection ? { outlierDetection } : {}),
    ...(circuitBreakers ? { circuitBreakers } : {}),
  };
}

export function checkRoute(c: Checker, v: unknown, path: string): RouteConfig | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.known(o, path, ['name', 'match', 'cluster', 'failover']);
  const m = c.object(o.match, `${path}.match`);
  if (m) c.known(m, `${path}.match`, ['service']);
  const service = m ? c.string(m.service, `${path}.match.service`, SERVICE_NAME, 'lower-case DNS label') : undefined;
  const clusterName = c.string(o.cluster, `${path}.cluster`);
  const failover = o.failover === undefined ? undefined : c.string(o.failover, `${path}.failover`);
  const name = o.name === undefined ? service : c.string(o.name, `${path}.name`);
  if (service === undefined || clusterName === undefined || name === undefined) return undefined;
  return { name, match: { service }, cluster: clusterName, ...(failover !== undefined ? { failover } : {}) };
}

/** Validates a whole config document; throws ConfigError listing every problem found. */
export function validateMeshConfig(doc: unknown, version: string): MeshConfig {
  const c = new Checker();
  const root = doc === undefined || doc === null ? {} : c.object(doc, '(root)');
  if (!root) throw new ConfigError(c.problems);
  c.known(root, '(root)', ['clusters', 'routes']);
  const clusters = (c.array(root.clusters, 'clusters') ?? [])
    .map((x, i) => checkCluster(c, x, `clusters[${i}]`))
    .filter((x): x is ClusterConfig => x !== undefined);
  const routes = (c.array(root.routes, 'routes') ?? [])
    .map((x, i) => checkRoute(c, x, `routes[${i}]`))
    .filter((x): x is RouteConfig => x !== undefined);

  const names = new Set<string>();
  clusters.forEach((cl, i) => {
    if (names.has(cl.name)) c.fail(`clusters[${i}].name`, `duplicate cluster ${JSON.stringify(cl.name)}`);
    names.add(cl.name);
  });
  const services = new Set<string>();
  routes.forEach((r, i) => {
    if (!names.has(r.cluster)) c.fail(`routes[${i}].cluster`, `no cluster named ${JSON.stringify(r.cluster)}`);
    if (r.failover !== undefined && !names.has(r.failover)) c.fail(`routes[${i}].failover`, `no cluster named ${JSON.stringify(r.failover)}`);
    if (services.has(r.match.service)) c.fail(`routes[${i}].match.service`, `a route for ${JSON.stringify(r.match.service)} already exists`);
    services.add(r.match.service);
  });
  if (c.problems.length > 0) throw new ConfigError(c.problems);
  return deepFreeze({ version, clusters, routes });
}
