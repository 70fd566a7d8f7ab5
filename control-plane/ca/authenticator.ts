/**
 * How the mesh CA decides whether a certificate request may have the identity it asks for.
 *
 * A sidecar asks for a certificate for (namespace, serviceAccount) and presents a token; an Authenticator checks the
 * token and whether it may claim that identity. Reasons in a refusal are safe to return to the caller and to log:
 * they never contain the token.
 */
import { DNS_LABEL } from '../../lib/validate.js';

export interface WorkloadClaim {
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** Who the token proves the caller is. */
export type AuthResult =
  | { readonly ok: true; readonly namespace: string; readonly serviceAccount: string; readonly via: string /* e.g. 'bootstrap-token' | 'kubernetes' */ }
  | { readonly ok: false; readonly reason: string /* safe to return to the caller and log: never contains the token */ };

export interface Authenticator {
  readonly name: string;
  /**
   * Checks the token and whether it may claim the requested identity. Never throws: a bad token, and network
   * failures too, become { ok: false, reason } (network failures as 'token review failed: ...').
   */
  authenticate(token: string, claim: WorkloadClaim): Promise<AuthResult>;
}

/** A service account name: what Kubernetes allows and a little more (the mesh's policies allow [A-Za-z0-9._-]). */
const SERVICE_ACCOUNT = /^[A-Za-z0-9._-]{1,253}$/;

/** `<namespace>/<serviceAccount>`, as reasons and scopes show an identity. */
export function formatClaim(claim: WorkloadClaim): string {
  return `${claim.namespace}/${claim.serviceAccount}`;
}

/** Why a claim can't be anybody's identity, or undefined when it is well formed. Never echoes the claim's text. */
export function invalidClaimReason(claim: WorkloadClaim): string | undefined {
  const ns: unknown = claim?.namespace;
  const sa: unknown = claim?.serviceAccount;
  if (typeof ns !== 'string' || ns.length > 63 || !DNS_LABEL.test(ns)) {
    return 'invalid claim: the namespace must be a DNS label (lower-case letters, digits and -, at most 63 characters)';
  }
  if (typeof sa !== 'string' || !SERVICE_ACCOUNT.test(sa) || sa === '.' || sa === '..') {
    return 'invalid claim: the service account must be 1-253 characters of letters, digits, ., _ and -';
  }
  return undefined;
}

/** `text` with every occurrence of `secret` blanked out, so a reason can never carry a token. */
export function withoutSecret(text: string, secret: string): string {
  return secret.length > 0 && text.includes(secret) ? text.split(secret).join('[redacted]') : text;
}

/** Tries each authenticator in order; first ok wins; if all refuse, ok:false with the reasons joined by '; '. */
export function anyOf(list: readonly Authenticator[]): Authenticator {
  const members = [...list];
  return {
    name: `any-of(${members.map((a) => a.name).join(', ')})`,
    async authenticate(token: string, claim: WorkloadClaim): Promise<AuthResult> {
      if (members.length === 0) return { ok: false, reason: 'no authenticators configured' };
      const reasons: string[] = [];
      for (const member of members) {
        let result: AuthResult;
        try {
          result = await member.authenticate(token, claim);
        } catch (err) {
          // The contract says authenticators never throw; if one does anyway, it only refuses.
          const message = err instanceof Error ? err.message : String(err);
          result = { ok: false, reason: `${member.name} failed: ${withoutSecret(message, token)}` };
        }
        if (result.ok) return result;
        reasons.push(result.reason);
      }
      return { ok: false, reason: reasons.join('; ') };
    },
  };
}
