/**
 * The security part of the snapshot: trust domain, trust bundle, signing CA, the mTLS rules from
 * MeshConfig resources and every AuthorizationPolicy. The same document goes to every sidecar;
 * each picks what applies to its own service (sidecar/security/inbound-policy.ts).
 */
import type { AuthorizationPolicySpec, MeshConfigSpec, StoredResource } from '../resources/types.js';
import { DEFAULT_TRUST_DOMAIN, ROOT_NAMESPACE, type MtlsRule } from '../resources/mtls-mode.js';
import type { MeshState } from './mesh-state.js';

/** What the snapshot needs from the CA (nothing when the control plane runs without one). */
export interface CaView {
  readonly ready: boolean;
  readonly trustBundle: readonly string[];
  readonly signerFingerprint: string;
}

export const NO_CA: CaView = { ready: false, trustBundle: [], signerFingerprint: '' };

export interface SecurityDoc {
  trustDomain: string;
  trustBundle: string[];
  signer: string;
  mtls: MtlsRule[];
  authorization: ({ name: string; namespace: string } & AuthorizationPolicySpec)[];
}

function isMeshWide(r: StoredResource): boolean {
  return r.kind === 'MeshConfig' && r.metadata.namespace === ROOT_NAMESPACE && (r.spec as MeshConfigSpec).service === undefined;
}

/** The trust domain certificates are issued in: the mesh-wide MeshConfig's, else the default. */
export function meshTrustDomain(state: MeshState): string {
  let trustDomain = DEFAULT_TRUST_DOMAIN;
  for (const r of state.resources.values()) if (isMeshWide(r)) trustDomain = (r.spec as MeshConfigSpec).trustDomain;
  return trustDomain;
}

export function buildSecurityDoc(state: MeshState, ca: CaView): SecurityDoc {
  const trustDomain = meshTrustDomain(state);
  const mtls: MtlsRule[] = [];
  const authorization: SecurityDoc['authorization'] = [];
  for (const r of state.resources.values()) {
    if (r.kind === 'MeshConfig') {
      const spec = (r as StoredResource<'MeshConfig'>).spec as MeshConfigSpec;
      const ns = r.metadata.namespace;
      // Without a CA nobody has a certificate: every service is plaintext, whatever was asked.
      mtls.push({ namespace: ns, mode: ca.ready ? spec.mtlsMode : 'DISABLED', ...(spec.service !== undefined ? { service: spec.service } : {}) });
    } else if (r.kind === 'AuthorizationPolicy') {
      const spec = (r as StoredResource<'AuthorizationPolicy'>).spec as AuthorizationPolicySpec;
      authorization.push({ name: `${r.metadata.namespace}/${r.metadata.name}`, namespace: r.metadata.namespace, ...spec });
    }
  }
  if (!ca.ready) mtls.push({ namespace: ROOT_NAMESPACE, mode: 'DISABLED' });
  // Stable order, so an unchanged mesh encodes to the same bytes.
  mtls.sort((a, b) => `${a.namespace}/${a.service ?? ''}`.localeCompare(`${b.namespace}/${b.service ?? ''}`));
  authorization.sort((a, b) => a.name.localeCompare(b.name));
  return { trustDomain, trustBundle: [...ca.trustBundle], signer: ca.signerFingerprint, mtls, authorization };
}
