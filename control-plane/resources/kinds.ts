/**
 * Names of the resource kinds as users type them (`remora get routes`) and as etcd keys and CLI
 * output spell them (`config/route/...`, `route.remora/shop/catalog`). One table, so the CLI, the
 * store and the docs cannot drift apart.
 */
import { RESOURCE_KINDS, type ResourceKind } from './types.js';

export interface KindNames {
  readonly kind: ResourceKind;
  /** Lower-case singular: the etcd key segment and the CLI's `<name>.remora/ns/name` form. */
  readonly singular: string;
  readonly plural: string;
  readonly short: readonly string[];
}

export const KIND_NAMES: Readonly<Record<ResourceKind, KindNames>> = {
  Route: { kind: 'Route', singular: 'route', plural: 'routes', short: ['rt'] },
  Cluster: { kind: 'Cluster', singular: 'cluster', plural: 'clusters', short: ['cl'] },
  AuthorizationPolicy: {
    kind: 'AuthorizationPolicy',
    singular: 'authorizationpolicy',
    plural: 'authorizationpolicies',
    short: ['authz', 'ap'],
  },
  MeshConfig: { kind: 'MeshConfig', singular: 'meshconfig', plural: 'meshconfigs', short: ['mc'] },
};

/** `Route`, `route`, `routes`, `ROUTES`, `rt` → Route; undefined if it names no kind. */
export function resolveKind(input: string): ResourceKind | undefined {
  const lower = input.toLowerCase();
  for (const kind of RESOURCE_KINDS) {
    const n = KIND_NAMES[kind];
    if (lower === n.singular || lower === n.plural || n.short.includes(lower)) return kind;
  }
  return undefined;
}

export function kindFromKeySegment(segment: string): ResourceKind | undefined {
  return RESOURCE_KINDS.find((k) => KIND_NAMES[k].singular === segment);
}

/** kubectl-style reference used in CLI output: `route.remora/shop/catalog-canary`. */
export function resourceRef(kind: ResourceKind, namespace: string, name: string): string {
  return `${KIND_NAMES[kind].singular}.remora/${namespace}/${name}`;
}
