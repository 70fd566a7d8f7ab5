/** MeshConfig spec: mesh-wide settings. Enforced from issue 6 (identity and mTLS). */
import { Checker, type Obj } from '../../lib/validate.js';
import { at } from './fields.js';
import type { MeshConfigSpec } from './types.js';

/** A DNS name: the trust domain goes into every SPIFFE ID, so it must be one. */
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function checkMeshConfigSpec(c: Checker, spec: Obj, path: string): MeshConfigSpec | undefined {
  c.known(spec, path, ['trustDomain', 'mtlsMode']);
  // Istio's defaults: a cluster.local trust domain, and PERMISSIVE so turning the mesh on breaks nobody.
  const trustDomain = spec.trustDomain === undefined
    ? 'cluster.local'
    : c.string(spec.trustDomain, at(path, 'trustDomain'), DNS_NAME, 'lower-case DNS name such as example.org');
  const mtlsMode = c.oneOf(spec.mtlsMode, at(path, 'mtlsMode'), ['STRICT', 'PERMISSIVE', 'DISABLED'] as const, 'PERMISSIVE');
  if (trustDomain === undefined || mtlsMode === undefined) return undefined;
  return { trustDomain, mtlsMode };
}
