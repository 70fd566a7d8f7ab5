/**
 * What guards this sidecar's inbound listener: its mTLS mode and compiled authorization policies,
 * picked out of the mesh-wide security settings for its own namespace and service. Built once per
 * config change; read once per inbound call.
 */
import { resolveMtlsMode } from '../../control-plane/resources/mtls-mode.js';
import type { MtlsMode } from '../../control-plane/resources/types.js';
import type { SecurityConfig } from '../config/security.js';
import { ALLOW_ALL, compileAuthorization, type Authorizer } from './authorization.js';

export interface InboundPolicy {
  readonly mode: MtlsMode;
  readonly authorizer: Authorizer;
}

export const OPEN_INBOUND: InboundPolicy = Object.freeze({ mode: 'PERMISSIVE' as MtlsMode, authorizer: ALLOW_ALL });

export function inboundPolicyFor(security: SecurityConfig | undefined, namespace: string, service: string): InboundPolicy {
  if (security === undefined) return OPEN_INBOUND;
  const mode = resolveMtlsMode(security.mtls, namespace, service);
  const mine = security.authorization.filter((p) => p.namespace === namespace && p.service === service);
  const authorizer = mine.length === 0 ? ALLOW_ALL : compileAuthorization(mine, security.trustDomain);
  return { mode, authorizer };
}
