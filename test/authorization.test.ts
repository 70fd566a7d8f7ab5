/**
 * Inbound authorization (sidecar/security/authorization.ts): a table of every rule, a property
 * test against a plain reference implementation, and a micro-benchmark (logged, loosely asserted).
 */
import test from 'ava';
import fc from 'fast-check';
import {
  ALLOWED,
  ALLOW_ALL,
  compileAuthorization,
  type AuthorizationPolicyDoc,
  type AuthzDecision,
} from '../sidecar/security/authorization.js';

const TD = 'cluster.local';
const id = (ns: string, sa: string, td = TD): string => `spiffe://${td}/ns/${ns}/sa/${sa}`;

type Rule = AuthorizationPolicyDoc['rules'][number];
const allow = (name: string, ...rules: Rule[]): AuthorizationPolicyDoc => ({ name, action: 'ALLOW', rules });
const deny = (name: string, ...rules: Rule[]): AuthorizationPolicyDoc => ({ name, action: 'DENY', rules });
const rule = (from: string[], methods: string[] = []): Rule => ({ from, methods });

const ORDERS = id('shop', 'orders');
const PLACE = '/shop.v1.Orders/Place';
const noMatch = (caller: string | undefined, path: string): string =>
  `no ALLOW policy matches caller ${caller ?? '(plaintext, no identity)'} for ${path}`;

interface Case {
  readonly name: string;
  readonly policies: AuthorizationPolicyDoc[];
  readonly caller: string | undefined;
  readonly path: string;
  /** true, or the denial reason. */
  readonly expect: true | string;
}

const CASES: Case[] = [
  // no policies
  { name: 'no policies: authenticated', policies: [], caller: ORDERS, path: PLACE, expect: true },
  { name: 'no policies: plaintext', policies: [], caller: undefined, path: PLACE, expect: true },
  { name: 'no policies: malformed path', policies: [], caller: undefined, path: '', expect: true },

  // exact identity
  { name: 'exact id: match', policies: [allow('shop/a', rule([ORDERS]))], caller: ORDERS, path: PLACE, expect: true },
  {
    name: 'exact id: other sa',
    policies: [allow('shop/a', rule([ORDERS]))],
    caller: id('shop', 'orders2'),
    path: PLACE,
    expect: noMatch(id('shop', 'orders2'), PLACE),
  },
  {
    name: 'exact id: prefix of it is not it',
    policies: [allow('shop/a', rule([ORDERS]))],
    caller: id('shop', 'order'),
    path: PLACE,
    expect: noMatch(id('shop', 'order'), PLACE),
  },
  {
    name: 'exact id: other trust domain',
    policies: [allow('shop/a', rule([ORDERS]))],
    caller: id('shop', 'orders', 'evil.example'),
    path: PLACE,
    expect: noMatch(id('shop', 'orders', 'evil.example'), PLACE),
  },
  {
    name: 'exact id from another trust domain, named explicitly',
    policies: [allow('shop/a', rule([id('shop', 'orders', 'partner.example')]))],
    caller: id('shop', 'orders', 'partner.example'),
    path: PLACE,
    expect: true,
  },

  // namespace
  { name: 'ns: match', policies: [allow('shop/a', rule(['ns/shop/*']))], caller: ORDERS, path: PLACE, expect: true },
  {
    name: 'ns: other namespace',
    policies: [allow('shop/a', rule(['ns/shop/*']))],
    caller: id('billing', 'x'),
    path: PLACE,
    expect: noMatch(id('billing', 'x'), PLACE),
  },
  {
    name: 'ns: ns/x/* does not match ns xy',
    policies: [allow('shop/a', rule(['ns/x/*']))],
    caller: id('xy', 'sa'),
    path: PLACE,
    expect: noMatch(id('xy', 'sa'), PLACE),
  },
  {
    name: 'ns: ns/xy/* does not match ns x',
    policies: [allow('shop/a', rule(['ns/xy/*']))],
    caller: id('x', 'sa'),
    path: PLACE,
    expect: noMatch(id('x', 'sa'), PLACE),
  },
  {
    name: 'ns: other trust domain',
    policies: [allow('shop/a', rule(['ns/shop/*']))],
    caller: id('shop', 'orders', 'evil.example'),
    path: PLACE,
    expect: noMatch(id('shop', 'orders', 'evil.example'), PLACE),
  },
  {
    name: 'ns: trust domain of the same length',
    policies: [allow('shop/a', rule(['ns/shop/*']))],
    caller: id('shop', 'orders', 'cluster.lokal'),
    path: PLACE,
    expect: noMatch(id('shop', 'orders', 'cluster.lokal'), PLACE),
  },
  {
    name: 'ns: service account with further segments is still in the namespace',
    policies: [allow('shop/a', rule(['ns/shop/*']))],
    caller: id('shop', 'orders/x'),
    path: PLACE,
    expect: true,
  },
  {
    name: 'ns: trust domain that extends the local one',
    policies: [allow('shop/a', rule(['ns/shop/*']))],
    caller: id('shop', 'orders', `${TD}.evil`),
    path: PLACE,
    expect: noMatch(id('shop', 'orders', `${TD}.evil`), PLACE),
  },
  {
    name: 'ns: empty service account',
    policies: [allow('shop/a', rule(['ns/shop/*']))],
    caller: `spiffe://${TD}/ns/shop/sa/`,
    path: PLACE,
    expect: noMatch(`spiffe://${TD}/ns/shop/sa/`, PLACE),
  },
  {
    name: 'ns: not an sa ID',
    policies: [allow('shop/a', rule(['ns/shop/*']))],
    caller: `spiffe://${TD}/ns/shop/xx/orders`,
    path: PLACE,
    expect: noMatch(`spiffe://${TD}/ns/shop/xx/orders`, PLACE),
  },

  // wildcard and plaintext
  { name: '*: any authenticated', policies: [allow('shop/a', rule(['*']))], caller: id('z', 'z', 'other.td'), path: PLACE, expect: true },
  {
    name: '*: plaintext is not authenticated',
    policies: [allow('shop/a', rule(['*']))],
    caller: undefined,
    path: PLACE,
    expect: noMatch(undefined, PLACE),
  },
  {
    name: 'plaintext: not in a namespace',
    policies: [allow('shop/a', rule(['ns/shop/*', ORDERS]))],
    caller: undefined,
    path: PLACE,
    expect: noMatch(undefined, PLACE),
  },
  {
    name: 'plaintext: escapes a DENY * (no identity matches nothing), allowed with no ALLOW policy',
    policies: [deny('shop/d', rule(['*']))],
    caller: undefined,
    path: PLACE,
    expect: true,
  },
  {
    name: 'plaintext: DENY * and ALLOW * still denies',
    policies: [deny('shop/d', rule(['*'])), allow('shop/a', rule(['*']))],
    caller: undefined,
    path: PLACE,
    expect: noMatch(undefined, PLACE),
  },

  // methods
  { name: 'method exact: match', policies: [allow('shop/a', rule(['*'], [PLACE]))], caller: ORDERS, path: PLACE, expect: true },
  {
    name: 'method exact: other method',
    policies: [allow('shop/a', rule(['*'], [PLACE]))],
    caller: ORDERS,
    path: '/shop.v1.Orders/Cancel',
    expect: noMatch(ORDERS, '/shop.v1.Orders/Cancel'),
  },
  {
    name: 'method exact: case-sensitive',
    policies: [allow('shop/a', rule(['*'], [PLACE]))],
    caller: ORDERS,
    path: '/shop.v1.Orders/place',
    expect: noMatch(ORDERS, '/shop.v1.Orders/place'),
  },
  {
    name: 'method exact: trailing segment',
    policies: [allow('shop/a', rule(['*'], [PLACE]))],
    caller: ORDERS,
    path: `${PLACE}/x`,
    expect: noMatch(ORDERS, `${PLACE}/x`),
  },
  {
    name: 'method wildcard: match',
    policies: [allow('shop/a', rule(['*'], ['/shop.v1.Orders/*']))],
    caller: ORDERS,
    path: '/shop.v1.Orders/Anything',
    expect: true,
  },
  {
    name: 'method wildcard: other service with the same prefix',
    policies: [allow('shop/a', rule(['*'], ['/shop.v1.Orders/*']))],
    caller: ORDERS,
    path: '/shop.v1.Orders2/X',
    expect: noMatch(ORDERS, '/shop.v1.Orders2/X'),
  },
  {
    name: 'method wildcard: shorter service',
    policies: [allow('shop/a', rule(['*'], ['/shop.v1.Orders/*']))],
    caller: ORDERS,
    path: '/shop.v1.Order/X',
    expect: noMatch(ORDERS, '/shop.v1.Order/X'),
  },
  {
    name: 'method wildcard: empty method',
    policies: [allow('shop/a', rule(['*'], ['/shop.v1.Orders/*']))],
    caller: ORDERS,
    path: '/shop.v1.Orders/',
    expect: noMatch(ORDERS, '/shop.v1.Orders/'),
  },
  {
    name: 'method wildcard: extra segment',
    policies: [allow('shop/a', rule(['*'], ['/shop.v1.Orders/*']))],
    caller: ORDERS,
    path: '/shop.v1.Orders/A/B',
    expect: noMatch(ORDERS, '/shop.v1.Orders/A/B'),
  },
  {
    name: 'method wildcard: literal * method path matches too',
    policies: [allow('shop/a', rule(['*'], ['/shop.v1.Orders/*']))],
    caller: ORDERS,
    path: '/shop.v1.Orders/*',
    expect: true,
  },
  { name: 'methods empty: any method', policies: [allow('shop/a', rule(['*']))], caller: ORDERS, path: '/x.Y/Z', expect: true },

  // ALLOW with no rules, DENY with no rules
  { name: 'ALLOW with no rules denies all', policies: [allow('shop/none')], caller: ORDERS, path: PLACE, expect: noMatch(ORDERS, PLACE) },
  { name: 'DENY with no rules denies nothing', policies: [deny('shop/none')], caller: ORDERS, path: PLACE, expect: true },

  // DENY beats ALLOW
  {
    name: 'DENY beats ALLOW',
    policies: [allow('shop/a', rule(['*'])), deny('shop/d', rule([ORDERS], [PLACE]))],
    caller: ORDERS,
    path: PLACE,
    expect: 'denied by policy shop/d',
  },
  {
    name: 'DENY not matching the method: ALLOW applies',
    policies: [allow('shop/a', rule(['*'])), deny('shop/d', rule([ORDERS], [PLACE]))],
    caller: ORDERS,
    path: '/shop.v1.Orders/Get',
    expect: true,
  },
  {
    name: 'DENY not matching the caller: ALLOW applies',
    policies: [allow('shop/a', rule(['*'])), deny('shop/d', rule([ORDERS], [PLACE]))],
    caller: id('shop', 'web'),
    path: PLACE,
    expect: true,
  },
  {
    name: 'DENY alone, matching',
    policies: [deny('shop/d', rule(['ns/evil/*']))],
    caller: id('evil', 'x'),
    path: PLACE,
    expect: 'denied by policy shop/d',
  },
  {
    name: 'DENY alone, not matching: allowed',
    policies: [deny('shop/d', rule(['ns/evil/*']))],
    caller: ORDERS,
    path: PLACE,
    expect: true,
  },
  {
    name: 'first matching DENY is named',
    policies: [deny('shop/d1', rule([ORDERS], ['/nope.S/M'])), deny('shop/d2', rule(['*'])), deny('shop/d3', rule(['*']))],
    caller: ORDERS,
    path: PLACE,
    expect: 'denied by policy shop/d2',
  },

  // rule semantics: from AND methods within a rule, OR across rules and policies
  {
    name: 'rule needs from AND methods (not across rules)',
    policies: [allow('shop/a', rule([ORDERS], ['/other.S/*']), rule(['ns/billing/*'], [PLACE]))],
    caller: ORDERS,
    path: PLACE,
    expect: noMatch(ORDERS, PLACE),
  },
  {
    name: 'second rule matches',
    policies: [allow('shop/a', rule([ORDERS], ['/other.S/*']), rule(['ns/shop/*'], [PLACE]))],
    caller: ORDERS,
    path: PLACE,
    expect: true,
  },
  {
    name: 'multiple ALLOW policies: second matches',
    policies: [allow('shop/a', rule(['ns/billing/*'])), allow('shop/b', rule([ORDERS], ['/shop.v1.Orders/*']))],
    caller: ORDERS,
    path: PLACE,
    expect: true,
  },
  {
    name: 'multiple ALLOW policies: none matches',
    policies: [allow('shop/a', rule(['ns/billing/*'])), allow('shop/b', rule([ORDERS], ['/shop.v1.Carts/*']))],
    caller: ORDERS,
    path: PLACE,
    expect: noMatch(ORDERS, PLACE),
  },

  // malformed paths match only rules with empty methods
  ...['', '/', '/a', '//x', '/a/', 'a/b', '/a/b/c'].flatMap((path): Case[] => [
    {
      name: `malformed path ${JSON.stringify(path)}: ALLOW with methods`,
      policies: [allow('shop/a', rule(['*'], ['/a/*', '/a/b', '//x', '/a/b/c']))],
      caller: ORDERS,
      path,
      expect: noMatch(ORDERS, path),
    },
    {
      name: `malformed path ${JSON.stringify(path)}: ALLOW with empty methods`,
      policies: [allow('shop/a', rule(['*']))],
      caller: ORDERS,
      path,
      expect: true,
    },
    {
      name: `malformed path ${JSON.stringify(path)}: DENY with methods does not match`,
      policies: [deny('shop/d', rule(['*'], ['/a/*', '/a/b']))],
      caller: ORDERS,
      path,
      expect: true,
    },
    {
      name: `malformed path ${JSON.stringify(path)}: DENY with empty methods matches`,
      policies: [deny('shop/d', rule(['*']))],
      caller: ORDERS,
      path,
      expect: 'denied by policy shop/d',
    },
  ]),
];

test('decision table', (t) => {
  for (const c of CASES) {
    const authz = compileAuthorization(c.policies, TD);
    t.is(authz.policyCount, c.policies.length, c.name);
    const d = authz.check(c.caller, c.path);
    if (c.expect === true) {
      t.is(d, ALLOWED, `${c.name}: expected the ALLOWED singleton, got ${JSON.stringify(d)}`);
    } else {
      t.deepEqual(d, { allowed: false, reason: c.expect }, c.name);
    }
  }
});

test('ALLOWED is a frozen singleton; ALLOW_ALL allows everything', (t) => {
  t.true(Object.isFrozen(ALLOWED));
  t.deepEqual(ALLOWED, { allowed: true });
  t.is(ALLOW_ALL.policyCount, 0);
  for (const caller of [undefined, '', ORDERS, 'garbage']) {
    for (const path of ['', '/', PLACE, '/a/b/c']) t.is(ALLOW_ALL.check(caller, path), ALLOWED);
  }
  const authz = compileAuthorization([allow('shop/a', rule(['*'])), deny('shop/d', rule(['ns/evil/*']))], TD);
  t.is(authz.check(ORDERS, PLACE), authz.check(id('a', 'b'), '/x.Y/Z'));
  t.is(authz.check(ORDERS, PLACE), ALLOWED);
});

test('the DENY decision is made once per policy; compiling does not keep the input arrays', (t) => {
  const rules = [rule([ORDERS], [PLACE])];
  const policy: AuthorizationPolicyDoc = { name: 'shop/d', action: 'DENY', rules };
  const authz = compileAuthorization([policy], TD);
  const d1 = authz.check(ORDERS, PLACE);
  t.is(d1, authz.check(ORDERS, PLACE));
  t.true(Object.isFrozen(d1));
  // Mutating the source after compiling changes nothing.
  (rules[0]!.from as string[]).length = 0;
  rules.length = 0;
  t.deepEqual(authz.check(ORDERS, PLACE), { allowed: false, reason: 'denied by policy shop/d' });
});

test('an empty caller string counts as no identity', (t) => {
  t.deepEqual(compileAuthorization([allow('shop/a', rule(['*']))], TD).check('', PLACE), {
    allowed: false,
    reason: noMatch(undefined, PLACE),
  });
  t.is(compileAuthorization([deny('shop/d', rule(['*']))], TD).check('', PLACE), ALLOWED);
});

// ---------------------------------------------------------------------------------------------
// Property test: check() against a plain, slow reference implementation.

function referenceCheck(
  policies: readonly AuthorizationPolicyDoc[],
  trustDomain: string,
  caller: string | undefined,
  path: string,
): AuthzDecision {
  const identity = caller === '' ? undefined : caller;
  const parts = path.split('/');
  const wellFormed = parts.length === 3 && parts[0] === '' && parts[1] !== '' && parts[2] !== '';
  const fromMatches = (entry: string): boolean => {
    if (identity === undefined) return false;
    if (entry === '*') return true;
    const ns = /^ns\/([^/]+)\/\*$/.exec(entry);
    if (ns) {
      const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/(.+)$/s.exec(identity);
      return m !== null && m[1] === trustDomain && m[2] === ns[1];
    }
    return entry === identity;
  };
  const methodMatches = (entry: string): boolean =>
    wellFormed && (entry === path || entry === `/${parts[1]}/*`);
  const ruleMatches = (r: Rule): boolean =>
    r.from.some(fromMatches) && (r.methods.length === 0 || r.methods.some(methodMatches));
  const matches = (p: AuthorizationPolicyDoc): boolean => p.rules.some(ruleMatches);

  const denied = policies.find((p) => p.action === 'DENY' && matches(p));
  if (denied) return { allowed: false, reason: `denied by policy ${denied.name}` };
  const allows = policies.filter((p) => p.action === 'ALLOW');
  if (allows.length === 0 || allows.some(matches)) return { allowed: true };
  return { allowed: false, reason: `no ALLOW policy matches caller ${identity ?? '(plaintext, no identity)'} for ${path}` };
}

const PT = 'td';
const arbFrom = fc.constantFrom(
  '*',
  'ns/a/*',
  'ns/b/*',
  'ns/ab/*',
  `spiffe://${PT}/ns/a/sa/x`,
  `spiffe://${PT}/ns/b/sa/y`,
  'spiffe://other/ns/a/sa/x',
  'spiffe://tx/ns/a/sa/x',
);
const arbMethod = fc.constantFrom('/p.S/M', '/p.S/N', '/p.S/*', '/p.S2/*', '/p.S2/M', '/p/*', '/p/M');
const arbRule = fc.record({
  from: fc.array(arbFrom, { minLength: 1, maxLength: 3 }),
  methods: fc.array(arbMethod, { maxLength: 3 }),
});
const arbPolicy = fc.record({
  name: fc.constantFrom('n/p1', 'n/p2', 'n/p3', 'm/p1'),
  action: fc.constantFrom('ALLOW' as const, 'DENY' as const),
  rules: fc.array(arbRule, { maxLength: 3 }),
});
const arbCaller = fc.oneof(
  fc.constant(undefined),
  fc.constant(''),
  fc
    .record({
      td: fc.constantFrom(PT, 'tx', 'other', 'td2', 'tdx'),
      ns: fc.constantFrom('a', 'b', 'ab', ''),
      sa: fc.constantFrom('x', 'y', '', 'x/y'),
    })
    .map(({ td, ns, sa }) => `spiffe://${td}/ns/${ns}/sa/${sa}`),
  fc.constantFrom('ns/a/*', '*', `spiffe://${PT}/ns/a/xx/x`, `spiffe://${PT}/ns/a`),
  fc.string({ unit: fc.constantFrom('a', '/', 's', 'n', ':', '*'), maxLength: 12 }),
);
const arbPath = fc.oneof(
  fc.constantFrom('', '/', '/a', '//x', '/p.S/', '/p.S/M', '/p.S/N', '/p.S/m', '/p.S2/M', '/p.S/*', '/p/M', '/p.S/M/x', '/p.S//M'),
  fc.string({ unit: fc.constantFrom('/', 'p', '.', 'S', 'M', '2', '*'), maxLength: 10 }),
);

test('property: check() agrees with the reference implementation', (t) => {
  fc.assert(
    fc.property(
      fc.array(arbPolicy, { maxLength: 5 }),
      fc.array(fc.tuple(arbCaller, arbPath), { minLength: 1, maxLength: 10 }),
      (policies, calls) => {
        const authz = compileAuthorization(policies, PT);
        for (const [caller, path] of calls) {
          const got = authz.check(caller, path);
          const want = referenceCheck(policies, PT, caller, path);
          if (want.allowed ? got !== ALLOWED : JSON.stringify(got) !== JSON.stringify(want)) {
            throw new Error(`${String(caller)} ${path}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
          }
        }
      },
    ),
    { numRuns: 3000 },
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------
// Micro-benchmark: 10 policies, a mix of allow-path and deny-path calls.

test('micro-benchmark: ns per check with 10 policies', (t) => {
  const policies: AuthorizationPolicyDoc[] = [
    deny('shop/deny-evil', rule(['ns/evil/*', id('shop', 'compromised')])),
    deny('shop/deny-admin', rule(['*'], ['/shop.v1.Admin/*'])),
    deny('shop/deny-debug', rule(['ns/dev/*'], ['/shop.v1.Debug/Dump', '/shop.v1.Debug/Trace'])),
    allow('shop/billing', rule(['ns/billing/*'], ['/shop.v1.Invoices/*', '/shop.v1.Orders/Get'])),
    allow('shop/web', rule([id('web', 'frontend'), id('web', 'bff')], ['/shop.v1.Orders/*', '/shop.v1.Carts/*'])),
    allow('shop/ops', rule(['ns/ops/*'], ['/grpc.health.v1.Health/Check'])),
    allow('shop/batch', rule([id('batch', 'nightly')], ['/shop.v1.Reports/*']), rule(['ns/batch/*'], ['/shop.v1.Orders/List'])),
    allow('shop/partners', rule([id('x', 'y', 'partner.example')], ['/shop.v1.Catalog/*'])),
    allow('shop/internal', rule(['ns/shop/*'])),
    allow('shop/mobile', rule(['ns/mobile/*'], ['/shop.v1.Orders/Place', '/shop.v1.Orders/Get', '/shop.v1.Carts/*'])),
  ];
  const authz = compileAuthorization(policies, TD);
  // Fresh strings, as they would come off the wire, not the literals from the policies.
  const calls: [string, string][] = [
    [id('web', 'frontend'), '/shop.v1.Carts/Add'], // allow, 5th policy
    [id('shop', 'orders'), '/shop.v1.Orders/Place'], // allow, 9th policy
    [id('mobile', 'ios'), '/shop.v1.Orders/Get'], // allow, last policy
    [id('billing', 'invoicer'), '/shop.v1.Invoices/Issue'], // allow, 4th policy
    [id('evil', 'x'), '/shop.v1.Orders/Place'], // DENY
    [id('web', 'frontend'), '/shop.v1.Admin/Drop'], // DENY
  ].map(([c, p]) => [`${c} `.trimEnd(), `${p} `.trimEnd()]);
  const expectAllowed = calls.map(([c, p]) => authz.check(c, p) === ALLOWED);
  t.deepEqual(expectAllowed, [true, true, true, true, false, false]);

  const callers = calls.map(([c]) => c);
  const paths = calls.map(([, p]) => p);
  const iterations = 600_000;
  let allowed = 0;
  const run = (n: number): number => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) {
      const j = i % n;
      if (authz.check(callers[j]!, paths[j]!) === ALLOWED) allowed++;
    }
    return Number(process.hrtime.bigint() - start) / iterations;
  };
  run(calls.length); // warm up
  const ns = Math.min(run(calls.length), run(calls.length), run(calls.length));
  const nsAllow = Math.min(run(4), run(4), run(4));
  t.log(`${ns.toFixed(1)} ns per check (10 policies; 4 allowed and 2 DENY call shapes)`);
  t.log(`${nsAllow.toFixed(1)} ns per check on the allow path only`);
  t.true(allowed > 0);
  t.true(ns < 20_000, 'a check takes well under 20 µs even on a slow, busy machine');
});
