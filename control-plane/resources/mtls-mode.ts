/**
 * Which mTLS mode applies to a service, from the MeshConfig resources: the most specific wins
 * (service, then namespace, then the mesh-wide one in the root namespace), like Istio's
 * PeerAuthentication. The control plane uses it to tell callers whether to dial an endpoint with
 * mTLS; the sidecar uses the same function for its own inbound listener, so both always agree.
 */
import type { MtlsMode } from './types.js';

/** MeshConfigs here apply to the whole mesh; only they set the trust domain. */
export const ROOT_NAMESPACE = 'remora-system';
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
/** Istio's default: turning the mesh on breaks no plaintext caller. */
export const DEFAULT_MTLS_MODE: MtlsMode = 'PERMISSIVE';

export interface MtlsRule {
  readonly namespace: string;
  /** Absent: the whole namespace (or mesh, in the root namespace). */
  readonly service?: string;
  readonly mode: MtlsMode;
}

export function resolveMtlsMode(rules: readonly MtlsRule[], namespace: string, service: string): MtlsMode {
  let forNamespace: MtlsMode | undefined;
  let forMesh: MtlsMode | undefined;
  for (const r of rules) {
    if (r.namespace === namespace && r.service === service) return r.mode;
    if (r.service === undefined) {
      if (r.namespace === namespace) forNamespace = r.mode;
      else if (r.namespace === ROOT_NAMESPACE) forMesh = r.mode;
    }
  }
  return forNamespace ?? forMesh ?? DEFAULT_MTLS_MODE;
}
