/**
 * Where each thing lives in etcd, under one prefix (default `/remora/`):
 *
 *   <prefix>config/<kind>/<namespace>/<name>          a user resource, JSON {kind, metadata, spec}
 *   <prefix>endpoints/<namespace>/<service>/<instance> an InstanceRecord, on a replica's lease
 *   <prefix>status/<namespace>/<service>/<instance>    a SidecarStatus, on a replica's lease
 *
 * Anything else under the prefix (later `ca/`) belongs to someone else and is left alone.
 */
import { KIND_NAMES, kindFromKeySegment } from './kinds.js';
import type { ResourceKind } from './types.js';

export const DEFAULT_PREFIX = '/remora/';

/** A prefix always ends with "/", so `/remora` and `/remora/` are the same place. */
export function normalizePrefix(prefix: string): string {
  if (prefix.length === 0) throw new Error('the etcd key prefix must not be empty');
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

export const configKey = (prefix: string, kind: ResourceKind, namespace: string, name: string): string =>
  `${prefix}config/${KIND_NAMES[kind].singular}/${namespace}/${name}`;

/** Keys of every resource, of one kind, or of one kind in one namespace. */
export function configPrefix(prefix: string, kind?: ResourceKind, namespace?: string): string {
  if (!kind) return `${prefix}config/`;
  if (!namespace) return `${prefix}config/${KIND_NAMES[kind].singular}/`;
  return `${prefix}config/${KIND_NAMES[kind].singular}/${namespace}/`;
}

export const endpointsPrefix = (prefix: string): string => `${prefix}endpoints/`;
export const statusPrefix = (prefix: string): string => `${prefix}status/`;

export const endpointKey = (prefix: string, namespace: string, service: string, instanceId: string): string =>
  `${prefix}endpoints/${namespace}/${service}/${instanceId}`;

export const statusKey = (prefix: string, namespace: string, service: string, instanceId: string): string =>
  `${prefix}status/${namespace}/${service}/${instanceId}`;

export type ParsedKey =
  | { readonly area: 'config'; readonly kind: ResourceKind; readonly namespace: string; readonly name: string }
  | { readonly area: 'endpoints' | 'status'; readonly namespace: string; readonly service: string; readonly instanceId: string }
  /** Under config/, endpoints/ or status/ but not shaped like a key the store writes. */
  | { readonly area: 'malformed'; readonly problem: string }
  /** Outside the areas this store owns. */
  | { readonly area: 'other' };

export function parseKey(prefix: string, key: string): ParsedKey {
  if (!key.startsWith(prefix)) return { area: 'other' };
  const parts = key.slice(prefix.length).split('/');
  const [area, ...rest] = parts;
  if (area === 'config') {
    if (rest.length !== 3 || rest.some((p) => p.length === 0)) {
      return { area: 'malformed', problem: 'key must be config/<kind>/<namespace>/<name>' };
    }
    const kind = kindFromKeySegment(rest[0]!);
    if (!kind) {
      const known = Object.values(KIND_NAMES).map((n) => n.singular).join(', ');
      return { area: 'malformed', problem: `key names an unknown kind ${JSON.stringify(rest[0])} (known: ${known})` };
    }
    return { area: 'config', kind, namespace: rest[1]!, name: rest[2]! };
  }
  if (area === 'endpoints' || area === 'status') {
    if (rest.length !== 3 || rest.some((p) => p.length === 0)) {
      return { area: 'malformed', problem: `key must be ${area}/<namespace>/<service>/<instance>` };
    }
    return { area, namespace: rest[0]!, service: rest[1]!, instanceId: rest[2]! };
  }
  return { area: 'other' };
}
