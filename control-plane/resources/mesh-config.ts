/**
 * MeshConfig spec: mTLS mode and trust domain. Which one applies to a sidecar is decided in
 * mtls-mode.ts: one naming the service, else one for the namespace, else the mesh-wide one in
 * the root namespace (remora-system), which alone sets the trust domain.
 */
import { Checker, type Obj } from '../../lib/validate.js';
import { at, dnsLabel } from './fields.js';
import type { MeshConfigSpec } from './types.js';

/** A DNS name: the trust domain goes into every SPIFFE ID, so it must be one. */
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function checkMeshConfigSpec(c: Checker, spec: Obj, path: string): MeshConfigSpec | undefined {
  c.known(spec, path, ['trustDomain', 'mtlsMode', 'service']);
  // Istio's defaults: a cluster.local trust domain, and PERMISSIVE so turning the mesh on breaks nobody.
  const trustDomain = spec.trustDomain === undefined
    ? 'cluster.local'
    : c.string(spec.trustDomain, at(path, 'trustDomain'), DNS_NAME, 'lower-case DNS name such as example.org');
  const mtlsMode = c.oneOf(spec.mtlsMode, at(path, 'mtlsMode'), ['STRICT', 'PERMISSIVE', 'DISABLED'] as const, 'PERMISSIVE');
  const service = spec.service === undefined ? undefined : dnsLabel(c, spec.service, at(path, 'service'), 'lower-case DNS label');
  if (trustDomain === undefined || mtlsMode === undefined) return undefined;
  return { trustDomain, mtlsMode, ...(service !== undefined ? { service } : {}) };
}
