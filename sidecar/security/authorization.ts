/**
 * Inbound authorization: checks each incoming call (caller SPIFFE ID, gRPC :path) against the
 * AuthorizationPolicy resources that target this sidecar's service, with Istio's semantics:
 * any matching DENY policy denies; otherwise, if there is at least one ALLOW policy, some ALLOW
 * policy must match; with no policies at all everything is allowed. A caller without an identity
 * (plaintext) matches no `from` entry, not even `*`.
 *
 * Why it is shaped this way: check() runs for every inbound request, so everything that can be
 * done when the configuration changes is done in compileAuthorization(). The distinct exact
 * principals, namespaces (`ns/<ns>/*`), exact methods and services (`/<service>/*`) named by any
 * policy are numbered, and each rule becomes byte masks over those numbers plus two flags (`*`,
 * empty methods). check() resolves the caller and the path to those numbers once (two Map lookups,
 * a few indexOf calls and prefix comparisons in place, gated by length) and then each rule costs a
 * few array reads: no regex, no substrings, no string building and no allocation on the allow path
 * (ALLOWED is a frozen singleton; DENY decisions are frozen objects made at compile time; the one
 * string built per call is the "no ALLOW policy matches" reason). Nothing about callers is cached: caller
 * strings are untrusted, so a per-caller cache would be an unbounded memory sink.
 *
 * Entries are expected to be validated already (control-plane/resources/authorization-policy.ts);
 * anything that does not fit the `*` / `ns/<ns>/*` / `/<service>/*` shapes is taken as an exact
 * string, so it matches only an identical caller or path.
 */

export interface AuthorizationPolicyDoc {
  /** "<namespace>/<name>", for the denial reason. */
  readonly name: string;
  readonly action: 'ALLOW' | 'DENY';
  readonly rules: readonly { readonly from: readonly string[]; readonly methods: readonly string[] }[];
}

export type AuthzDecision = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

/** The decision returned on every allow: one frozen object, so allowing never allocates. */
export const ALLOWED: AuthzDecision = Object.freeze({ allowed: true as const });

export interface Authorizer {
  /** caller: SPIFFE ID or undefined (plaintext); path: the HTTP/2 :path, e.g. "/shop.v1.Orders/Place" */
  check(caller: string | undefined, path: string): AuthzDecision;
  readonly policyCount: number;
}

/** What the caller shows when it has no identity, in denial reasons. */
const NO_IDENTITY = '(plaintext, no identity)';

const SLASH = 0x2f;

/**
 * The distinct principals, namespaces, exact methods and services named anywhere in the policies,
 * each given a small integer id. check() resolves the caller and the path to ids once, and each
 * rule then tests membership by indexing a byte array: the string work per call does not grow with
 * the number of rules.
 */
class Interner {
  readonly ids = new Map<string, number>();
  readonly values: string[] = [];
  id(value: string): number {
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.ids.set(value, id);
      this.values.push(value);
    }
    return id;
  }
}

interface RuleSource {
  anyCaller: boolean;
  principals: number[];
  namespaces: number[];
  allMethods: boolean;
  methods: number[];
  services: number[];
}

interface CompiledRule {
  /** `*`: any authenticated caller. */
  readonly anyCaller: boolean;
  /** By principal id: 1 if the rule names that exact SPIFFE ID. */
  readonly principals: Uint8Array;
  /** By namespace id: 1 if the rule has `ns/<that namespace>/*`. */
  readonly namespaces: Uint8Array;
  /** Empty `methods`: every path, well-formed or not. */
  readonly allMethods: boolean;
  /** By exact-method id: 1 if the rule names that `/<service>/<method>`. */
  readonly methods: Uint8Array;
  /** By service id: 1 if the rule has `/<that service>/*`. */
  readonly services: Uint8Array;
}

interface CompiledPolicy {
  readonly rules: readonly CompiledRule[];
  /** For DENY policies: the decision returned when it matches, made once. */
  readonly denial: AuthzDecision;
}

/** Sorts one rule's entries into the interners. */
function parseRule(
  rule: AuthorizationPolicyDoc['rules'][number],
  t: { principals: Interner; namespaces: Interner; methods: Interner; services: Interner },
): RuleSource {
  const src: RuleSource = {
    anyCaller: false,
    principals: [],
    namespaces: [],
    allMethods: rule.methods.length === 0,
    methods: [],
    services: [],
  };
  for (const entry of rule.from) {
    if (entry === '*') {
      src.anyCaller = true;
    } else if (entry.startsWith('ns/') && entry.endsWith('/*') && entry.length > 'ns//*'.length && !entry.slice(3, -2).includes('/')) {
      src.namespaces.push(t.namespaces.id(entry.slice(3, -2)));
    } else {
      src.principals.push(t.principals.id(entry));
    }
  }
  for (const m of rule.methods) {
    const sep = m.indexOf('/', 1);
    if (m.charCodeAt(0) === SLASH && sep > 1 && sep === m.length - 2 && m.endsWith('/*')) {
      src.services.push(t.services.id(m.slice(1, sep)));
    } else {
      src.methods.push(t.methods.id(m));
    }
  }
  return src;
}

function mask(size: number, ids: readonly number[]): Uint8Array {
  const m = new Uint8Array(size);
  for (const id of ids) m[id] = 1;
  return m;
}

/**
 * s.startsWith(prefix). On Node 20 (V8 11.3) `lastIndexOf(prefix, 0)` is markedly faster than
 * `startsWith` or a charCodeAt loop, and it only looks at position 0.
 */
function startsWith(s: string, prefix: string): boolean {
  return s.lastIndexOf(prefix, 0) === 0;
}

/** Whether `s` has `/sa/` at `pos`. */
function hasSaAt(s: string, pos: number): boolean {
  return (
    s.charCodeAt(pos) === SLASH &&
    s.charCodeAt(pos + 1) === 0x73 /* s */ &&
    s.charCodeAt(pos + 2) === 0x61 /* a */ &&
    s.charCodeAt(pos + 3) === SLASH
  );
}

/**
 * Where the service/method separator of `path` is if it has the form `/<service>/<method>` (both
 * parts non-empty, no further '/'), else -1.
 */
function methodSeparator(path: string): number {
  if (path.charCodeAt(0) !== SLASH) return -1;
  const sep = path.indexOf('/', 1);
  if (sep <= 1 || sep === path.length - 1) return -1;
  return path.indexOf('/', sep + 1) === -1 ? sep : -1;
}

/** Index of the prefix in `prefixes` that is exactly s[0, length), or -1. */
function findPrefix(prefixes: readonly string[], s: string, length: number): number {
  for (let i = 0; i < prefixes.length; i++) {
    const p = prefixes[i]!;
    if (p.length === length && startsWith(s, p)) return i;
  }
  return -1;
}

/** ids are -1 when the caller or path is named by no policy (and, for mid/sid, when the path is malformed). */
function ruleMatches(r: CompiledRule, pid: number, nsid: number, mid: number, sid: number): boolean {
  return (
    (r.anyCaller || (pid >= 0 && r.principals[pid] === 1) || (nsid >= 0 && r.namespaces[nsid] === 1)) &&
    (r.allMethods || (mid >= 0 && r.methods[mid] === 1) || (sid >= 0 && r.services[sid] === 1))
  );
}

class CompiledAuthorizer implements Authorizer {
  readonly policyCount: number;
  private readonly deny: readonly CompiledPolicy[];
  private readonly allow: readonly CompiledPolicy[];
  private readonly principalIds: ReadonlyMap<string, number>;
  private readonly methodIds: ReadonlyMap<string, number>;
  /** By namespace id: `spiffe://<trust domain>/ns/<namespace>/sa/`. */
  private readonly namespacePrefixes: readonly string[];
  /** By service id: `/<service>/`. */
  private readonly servicePrefixes: readonly string[];
  /** `spiffe://<trust domain>/ns/`. */
  private readonly namespaceBase: string;

  constructor(policies: readonly AuthorizationPolicyDoc[], trustDomain: string) {
    const t = { principals: new Interner(), namespaces: new Interner(), methods: new Interner(), services: new Interner() };
    const parsed = policies.map((p) => ({ policy: p, rules: p.rules.map((r) => parseRule(r, t)) }));
    const deny: CompiledPolicy[] = [];
    const allow: CompiledPolicy[] = [];
    for (const { policy, rules } of parsed) {
      const compiled: CompiledPolicy = {
        rules: rules.map((r) => ({
          anyCaller: r.anyCaller,
          principals: mask(t.principals.values.length, r.principals),
          namespaces: mask(t.namespaces.values.length, r.namespaces),
          allMethods: r.allMethods,
          methods: mask(t.methods.values.length, r.methods),
          services: mask(t.services.values.length, r.services),
        })),
        denial: Object.freeze({ allowed: false as const, reason: `denied by policy ${policy.name}` }),
      };
      (policy.action === 'DENY' ? deny : allow).push(compiled);
    }
    this.policyCount = policies.length;
    this.namespaceBase = `spiffe://${trustDomain}/ns/`;
    this.deny = deny;
    this.allow = allow;
    this.principalIds = t.principals.ids;
    this.methodIds = t.methods.ids;
    this.namespacePrefixes = t.namespaces.values.map((ns) => `${this.namespaceBase}${ns}/sa/`);
    this.servicePrefixes = t.services.values.map((service) => `/${service}/`);
  }

  check(caller: string | undefined, path: string): AuthzDecision {
    const deny = this.deny;
    const allow = this.allow;
    // No identity (plaintext, or an empty ID) matches no `from` entry, so it matches no rule and no
    // policy: no DENY can apply, and it passes only when there is no ALLOW policy at all.
    if (caller === undefined || caller === '') {
      return allow.length === 0 ? ALLOWED : this.noAllowMatches(caller, path);
    }
    if (deny.length === 0 && allow.length === 0) return ALLOWED;

    // Resolve the caller and the path to ids once; -1 when not named by any policy.
    const pid = this.principalIds.size === 0 ? -1 : (this.principalIds.get(caller) ?? -1);
    const nsid = this.namespacePrefixes.length === 0 ? -1 : this.namespaceOf(caller);
    const sep = methodSeparator(path);
    let mid = -1;
    let sid = -1;
    if (sep >= 0) {
      if (this.methodIds.size > 0) mid = this.methodIds.get(path) ?? -1;
      if (this.servicePrefixes.length > 0) sid = findPrefix(this.servicePrefixes, path, sep + 1);
    }

    for (let i = 0; i < deny.length; i++) {
      const p = deny[i]!;
      if (this.policyMatches(p, pid, nsid, mid, sid)) return p.denial;
    }
    if (allow.length === 0) return ALLOWED;
    for (let i = 0; i < allow.length; i++) {
      if (this.policyMatches(allow[i]!, pid, nsid, mid, sid)) return ALLOWED;
    }
    return this.noAllowMatches(caller, path);
  }

  private policyMatches(policy: CompiledPolicy, pid: number, nsid: number, mid: number, sid: number): boolean {
    const rules = policy.rules;
    for (let i = 0; i < rules.length; i++) {
      if (ruleMatches(rules[i]!, pid, nsid, mid, sid)) return true;
    }
    return false;
  }

  /** The id of the caller's namespace if it is `spiffe://<local td>/ns/<ns>/sa/<non-empty>`, else -1. */
  private namespaceOf(caller: string): number {
    // Find where `/sa/` would be, then compare whole `spiffe://<td>/ns/<ns>/sa/` prefixes of that
    // length: the trust domain is checked by the same comparison as the namespace.
    const start = this.namespaceBase.length;
    if (caller.length <= start) return -1;
    const end = caller.indexOf('/', start);
    if (end <= start || caller.length <= end + 4 || !hasSaAt(caller, end)) return -1;
    return findPrefix(this.namespacePrefixes, caller, end + 4);
  }

  private noAllowMatches(caller: string | undefined, path: string): AuthzDecision {
    return { allowed: false, reason: `no ALLOW policy matches caller ${caller || NO_IDENTITY} for ${path}` };
  }
}

/** Compiles the policies targeting one service; call again when they, or the trust domain, change. */
export function compileAuthorization(policies: readonly AuthorizationPolicyDoc[], trustDomain: string): Authorizer {
  return new CompiledAuthorizer(policies, trustDomain);
}

/** No policies: everything is allowed. */
export const ALLOW_ALL: Authorizer = compileAuthorization([], '');
