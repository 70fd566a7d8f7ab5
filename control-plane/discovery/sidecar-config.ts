/**
 * Turns the mesh state into what a sidecar applies: clusters (with their endpoints) and routes, in
 * the same JSON shape as the sidecar's static config file, so both go through one validator.
 *
 * Every registered service gets a cluster named after it. A user Cluster resource of the same
 * name adds policy; one of another name is a subset (by labels) or a fixed endpoint list.
 */
import type { ClusterSpec, InstanceRecord, RouteSpec, StoredResource } from '../resources/types.js';
import type { MeshState } from './mesh-state.js';
import { buildSecurityDoc, NO_CA, type SecurityDoc } from './security-doc.js';
import { resolveMtlsMode } from '../resources/mtls-mode.js';
import { spiffeId } from '../../lib/pki/spiffe.js';

export interface EndpointDoc {
  address: string;
  port: number;
  weight: number;
  labels: Record<string, string>;
  /** The SPIFFE ID to require of the server: callers dial it with mTLS. */
  identity?: string;
}

export interface ClusterDoc {
  name: string;
  endpoints: EndpointDoc[];
  connectTimeoutMs?: number;
  maxSessionAgeMs?: number;
  loadBalancing?: ClusterSpec['loadBalancing'];
  healthCheck?: ClusterSpec['healthCheck'];
  outlierDetection?: ClusterSpec['outlierDetection'];
  circuitBreakers?: ClusterSpec['circuitBreakers'];
  panicThresholdPercent?: number;
}

/** Every RouteSpec field as validated, under the name `<namespace>/<name>`: the sidecar re-checks it with the same validators. */
export type RouteDoc = { readonly name: string } & RouteSpec;

function matches(labels: Readonly<Record<string, string>>, subset: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(subset)) if (labels[k] !== v) return false;
  return true;
}

/** The identity callers must require of an instance, or undefined when its service takes plaintext only. */
type IdentityOf = (i: InstanceRecord) => string | undefined;

export function identityResolver(security: SecurityDoc): IdentityOf {
  if (security.trustBundle.length === 0) return () => undefined;
  return (i) =>
    resolveMtlsMode(security.mtls, i.namespace, i.service) === 'DISABLED'
      ? undefined
      : spiffeId({ trustDomain: security.trustDomain, namespace: i.namespace, serviceAccount: i.serviceAccount });
}

export function buildSidecarConfig(state: MeshState, security: SecurityDoc = buildSecurityDoc(state, NO_CA)): { clusters: ClusterDoc[]; routes: RouteDoc[] } {
  const identityOf = identityResolver(security);
  const endpointOf = (i: InstanceRecord): EndpointDoc => {
    const identity = identityOf(i);
    return { address: i.address, port: i.port, weight: 1, labels: { ...i.labels }, ...(identity !== undefined ? { identity } : {}) };
  };
  const byService = new Map<string, InstanceRecord[]>();
  for (const i of state.instances.values()) {
    if (i.health !== 'SERVING') continue;
    const list = byService.get(i.service) ?? [];
    list.push(i);
    byService.set(i.service, list);
  }
  const clusters = new Map<string, ClusterDoc>();
  for (const [service, list] of byService) clusters.set(service, { name: service, endpoints: list.map(endpointOf) });

  const routes: RouteDoc[] = [];
  for (const r of state.resources.values()) {
    if (r.kind === 'Cluster') {
      const spec = (r as StoredResource<'Cluster'>).spec as ClusterSpec;
      const endpoints =
        spec.endpoints.length > 0
          ? spec.endpoints.map((e) => ({ address: e.address, port: e.port, weight: e.weight, labels: { ...e.labels }, ...(e.identity !== undefined ? { identity: e.identity } : {}) }))
          : (byService.get(spec.service) ?? []).filter((i) => matches(i.labels, spec.subset)).map(endpointOf);
      clusters.set(r.metadata.name, {
        name: r.metadata.name,
        endpoints,
        connectTimeoutMs: spec.connectTimeoutMs,
        maxSessionAgeMs: spec.maxSessionAgeMs,
        ...(spec.loadBalancing ? { loadBalancing: spec.loadBalancing } : {}),
        ...(spec.healthCheck ? { healthCheck: spec.healthCheck } : {}),
        ...(spec.outlierDetection ? { outlierDetection: spec.outlierDetection } : {}),
        ...(spec.circuitBreakers ? { circuitBreakers: spec.circuitBreakers } : {}),
        ...(spec.panicThresholdPercent !== undefined ? { panicThresholdPercent: spec.panicThresholdPercent } : {}),
      });
    } else if (r.kind === 'Route') {
      const spec = (r as StoredResource<'Route'>).spec as RouteSpec;
      // The whole spec, not a list of fields: a route field added later cannot be silently dropped here.
      routes.push({ name: `${r.metadata.namespace}/${r.metadata.name}`, ...spec });
    }
  }
  // Stable order, so an unchanged mesh encodes to the same bytes.
  const sortedClusters = [...clusters.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const c of sortedClusters) c.endpoints.sort((a, b) => `${a.address}:${a.port}`.localeCompare(`${b.address}:${b.port}`));
  routes.sort((a, b) => a.name.localeCompare(b.name));
  return { clusters: sortedClusters, routes };
}
