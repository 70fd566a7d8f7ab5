/** AuthorizationPolicy spec: who may call a service's methods. Enforced by sidecar/security/authorization.ts. */
import { Checker, type Obj } from '../../lib/validate.js';
import { at, dnsLabel, strings } from './fields.js';
import type { AuthorizationPolicySpec } from './types.js';

const PRINCIPAL = /^(\*|ns\/[a-z0-9]([-a-z0-9]*[a-z0-9])?\/\*|spiffe:\/\/[a-z0-9.-]+\/ns\/[a-z0-9]([-a-z0-9]*[a-z0-9])?\/sa\/[A-Za-z0-9._-]+)$/;
const PRINCIPAL_HINT = 'use *, ns/<namespace>/*, or spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>';
const METHOD = /^\/[A-Za-z_][A-Za-z0-9_.]*\/(\*|[A-Za-z_][A-Za-z0-9_]*)$/;
const METHOD_HINT = 'use /package.Service/Method or /package.Service/*';

type Rule = AuthorizationPolicySpec['rules'][number];

function rule(c: Checker, v: unknown, path: string): Rule | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.known(o, path, ['from', 'methods']);
  if (o.from === undefined || (Array.isArray(o.from) && o.from.length === 0)) {
    c.fail(at(path, 'from'), 'must list at least one caller (use ["*"] for anyone)');
  }
  const from = strings(c, o.from, at(path, 'from'), (s, p) => c.string(s, p, PRINCIPAL, PRINCIPAL_HINT));
  const methods = strings(c, o.methods, at(path, 'methods'), (s, p) => c.string(s, p, METHOD, METHOD_HINT));
  return { from, methods };
}

export function checkAuthorizationPolicySpec(c: Checker, spec: Obj, path: string): AuthorizationPolicySpec | undefined {
  c.known(spec, path, ['service', 'action', 'rules']);
  const service = dnsLabel(c, spec.service, at(path, 'service'), 'lower-case DNS label');
  const action = c.oneOf(spec.action, at(path, 'action'), ['ALLOW', 'DENY'] as const, 'ALLOW');
  const rules = (c.array(spec.rules, at(path, 'rules')) ?? [])
    .map((r, i) => rule(c, r, `${at(path, 'rules')}[${i}]`))
    .filter((r): r is Rule => r !== undefined);
  if (service === undefined || action === undefined) return undefined;
  return { service, action, rules };
}
