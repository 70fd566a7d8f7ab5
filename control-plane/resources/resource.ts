/**
 * One resource document: the Kubernetes-like envelope (kind, metadata, spec) and the spec checker
 * of its kind. The same checks run on `remora apply` input and on values read back from etcd.
 */
import { Checker, deepFreeze } from '../../lib/validate.js';
import { checkAuthorizationPolicySpec } from './authorization-policy.js';
import { checkClusterSpec } from './cluster.js';
import { dnsLabel, FieldChecker, shown } from './fields.js';
import { resolveKind } from './kinds.js';
import { checkMeshConfigSpec } from './mesh-config.js';
import { checkRouteSpec } from './route.js';
import { RESOURCE_KINDS, type Resource, type ResourceKind, type ResourceMetadata } from './types.js';

export const API_VERSION = 'remora/v1';

export function isResourceKind(v: unknown): v is ResourceKind {
  return typeof v === 'string' && (RESOURCE_KINDS as readonly string[]).includes(v);
}

function checkKind(c: Checker, v: unknown): ResourceKind | undefined {
  if (isResourceKind(v)) return v;
  if (v === undefined) return c.fail('kind', `is required (one of ${RESOURCE_KINDS.join(', ')})`);
  if (typeof v !== 'string') return c.fail('kind', `must be one of ${RESOURCE_KINDS.join(', ')}, got ${shown(v)}`);
  const near = resolveKind(v);
  const hint = near ? `; kinds are case-sensitive, did you mean ${near}?` : '';
  return c.fail('kind', `unknown kind ${shown(v)} (known: ${RESOURCE_KINDS.join(', ')}${hint})`);
}

function checkMetadata(c: Checker, v: unknown): ResourceMetadata | undefined {
  const o = c.object(v, 'metadata');
  if (!o) return undefined;
  c.known(o, 'metadata', ['name', 'namespace', 'labels']);
  const name = dnsLabel(c, o.name, 'metadata.name');
  const namespace = o.namespace === undefined ? 'default' : dnsLabel(c, o.namespace, 'metadata.namespace');
  const labels = c.labels(o.labels, 'metadata.labels');
  if (name === undefined || namespace === undefined) return undefined;
  return { name, namespace, labels };
}

function checkSpec(c: Checker, kind: ResourceKind, v: unknown, metadata: ResourceMetadata | undefined): Resource['spec'] | undefined {
  // A MeshConfig with every setting at its default needs no spec at all.
  const spec = v === undefined && kind === 'MeshConfig' ? {} : c.object(v, 'spec');
  if (!spec) return undefined;
  switch (kind) {
    case 'Route':
      return checkRouteSpec(c, spec, 'spec');
    case 'Cluster':
      // Without a valid name there is no default service: check the rest, report only the name.
      return checkClusterSpec(c, spec, 'spec', metadata?.name ?? '');
    case 'AuthorizationPolicy':
      return checkAuthorizationPolicySpec(c, spec, 'spec');
    case 'MeshConfig':
      return checkMeshConfigSpec(c, spec, 'spec');
  }
}

/** Validates one document; problems go to `c` with field paths (`spec.match.service: ...`). */
export function checkResource(c: Checker, doc: unknown): Resource | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    c.fail('', `a resource must be a mapping with kind, metadata and spec, got ${shown(doc)}`);
    return undefined;
  }
  const o = doc as Record<string, unknown>;
  const problemsBefore = c.problems.length;
  c.known(o, '', ['apiVersion', 'kind', 'metadata', 'spec']);
  if (o.apiVersion !== undefined && o.apiVersion !== API_VERSION) {
    c.fail('apiVersion', `must be ${JSON.stringify(API_VERSION)} (or left out), got ${shown(o.apiVersion)}`);
  }
  const kind = checkKind(c, o.kind);
  const metadata = checkMetadata(c, o.metadata);
  if (!kind) return undefined;
  const spec = checkSpec(c, kind, o.spec, metadata);
  // Some checkers leave out what they reject (an endpoint, a label, a policy block, a rule) and
  // return the rest: from etcd, that would apply a different resource than the one written.
  if (!metadata || !spec || c.problems.length > problemsBefore) return undefined;
  return deepFreeze({ kind, metadata, spec } as Resource);
}

/** Validates a resource built in code (not parsed from text); returns the problems, empty if none. */
export function resourceProblems(r: unknown): string[] {
  const c = new FieldChecker();
  checkResource(c, r);
  return c.problems;
}

/** The canonical stored form: the validated resource with its defaults, in a fixed field order. */
export function resourceJson(r: Resource): string {
  return JSON.stringify({ kind: r.kind, metadata: r.metadata, spec: r.spec });
}
