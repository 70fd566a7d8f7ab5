/**
 * The mesh's security settings as a sidecar receives them: trust domain, trust bundle, which CA
 * certificate signs now, mTLS modes and authorization policies. The control plane sends every
 * sidecar the same document (one encode for all, like the rest of the snapshot) and each sidecar
 * picks what applies to its own service with resolveMtlsMode and the policies' `service`.
 * A static config file may carry the same block without the CA fields.
 */
import { Checker, DNS_LABEL, type Obj } from '../../lib/validate.js';
import { checkAuthorizationPolicySpec } from '../../control-plane/resources/authorization-policy.js';
import { DEFAULT_TRUST_DOMAIN, type MtlsRule } from '../../control-plane/resources/mtls-mode.js';
import type { AuthorizationPolicySpec } from '../../control-plane/resources/types.js';

export interface AuthorizationPolicyEntry extends AuthorizationPolicySpec {
  /** "<namespace>/<name>", named in denials. */
  readonly name: string;
  readonly namespace: string;
}

export interface SecurityConfig {
  readonly trustDomain: string;
  /** PEM roots every peer certificate must chain to; empty when the mesh has no CA. */
  readonly trustBundle: readonly string[];
  /** SHA-256 fingerprint of the CA certificate signing now: a certificate from another is renewed at once. */
  readonly signer: string;
  readonly mtls: readonly MtlsRule[];
  readonly authorization: readonly AuthorizationPolicyEntry[];
}

export const NO_SECURITY: SecurityConfig = Object.freeze({
  trustDomain: DEFAULT_TRUST_DOMAIN,
  trustBundle: Object.freeze([]) as readonly string[],
  signer: '',
  mtls: Object.freeze([]) as readonly MtlsRule[],
  authorization: Object.freeze([]) as readonly AuthorizationPolicyEntry[],
});

const TRUST_DOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PEM_CERT = /^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----\s*$/;
const MODES = ['STRICT', 'PERMISSIVE', 'DISABLED'] as const;

function mtlsRule(c: Checker, v: unknown, path: string): MtlsRule | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.known(o, path, ['namespace', 'service', 'mode']);
  const namespace = c.string(o.namespace, `${path}.namespace`, DNS_LABEL, 'lower-case DNS label');
  const service = o.service === undefined ? undefined : c.string(o.service, `${path}.service`, DNS_LABEL, 'lower-case DNS label');
  const mode = c.oneOf(o.mode, `${path}.mode`, MODES);
  if (namespace === undefined || mode === undefined) return undefined;
  return { namespace, mode, ...(service !== undefined ? { service } : {}) };
}

function policy(c: Checker, v: unknown, path: string): AuthorizationPolicyEntry | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  const { name, namespace, ...spec } = o;
  const ns = c.string(namespace, `${path}.namespace`, DNS_LABEL, 'lower-case DNS label');
  const n = c.string(name, `${path}.name`);
  const checked = checkAuthorizationPolicySpec(c, spec as Obj, path);
  if (checked === undefined || ns === undefined || n === undefined) return undefined;
  return { ...checked, name: n, namespace: ns };
}

export function checkSecurity(c: Checker, v: unknown, path: string): SecurityConfig | undefined {
  if (v === undefined) return undefined;
  const o = c.object(v, path);
  if (!o) return undefined;
  c.known(o, path, ['trustDomain', 'trustBundle', 'signer', 'mtls', 'authorization']);
  const trustDomain = o.trustDomain === undefined
    ? DEFAULT_TRUST_DOMAIN
    : c.string(o.trustDomain, `${path}.trustDomain`, TRUST_DOMAIN, 'lower-case DNS name such as example.org');
  const trustBundle = (c.array(o.trustBundle, `${path}.trustBundle`) ?? [])
    .map((p, i) => c.string(p, `${path}.trustBundle[${i}]`, PEM_CERT, 'one PEM certificate'))
    .filter((p): p is string => p !== undefined);
  const signer = o.signer === undefined ? '' : typeof o.signer === 'string' ? o.signer : c.fail(`${path}.signer`, 'must be a string');
  const mtls = (c.array(o.mtls, `${path}.mtls`) ?? []).map((r, i) => mtlsRule(c, r, `${path}.mtls[${i}]`)).filter((r): r is MtlsRule => r !== undefined);
  const authorization = (c.array(o.authorization, `${path}.authorization`) ?? [])
    .map((p, i) => policy(c, p, `${path}.authorization[${i}]`))
    .filter((p): p is AuthorizationPolicyEntry => p !== undefined);
  if (trustDomain === undefined || signer === undefined) return undefined;
  return { trustDomain, trustBundle, signer, mtls, authorization };
}
