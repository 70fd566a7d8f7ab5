/**
 * The route schema on its own: field-path errors, defaults, exactly-one-of rules, header regexes
 * compiled at validation, the sidecar's cross-checks, and that the control plane's Route resource
 * and the sidecar's route config are one schema (same validators, same verdicts, same values).
 */
import test from 'ava';
import { FieldChecker } from '../control-plane/resources/fields.js';
import {
  checkRouteSpec,
  compileHeaderRegex,
  DEFAULT_GRPC_TIMEOUT,
  MAX_REGEX_LENGTH,
  RETRY_DEFAULTS,
  routeMatchKey,
} from '../control-plane/resources/route.js';
import { parseResources } from '../control-plane/resources/parse.js';
import type { RouteSpec, StoredResource } from '../control-plane/resources/types.js';
import { MeshState } from '../control-plane/discovery/mesh-state.js';
import { buildSidecarConfig } from '../control-plane/discovery/sidecar-config.js';
import { ConfigError, validateMeshConfig } from '../sidecar/config/validate.js';

const CLUSTERS = ['catalog', 'catalog-v1', 'catalog-v2', 'catalog-dr'];

/** The control plane's verdict on a Route spec: problems and the validated spec. */
function controlPlane(spec: unknown): { problems: string[]; spec: RouteSpec | undefined } {
  const c = new FieldChecker();
  const out = checkRouteSpec(c, spec as Record<string, unknown>, 'spec');
  return { problems: c.problems, spec: c.problems.length === 0 ? out : undefined };
}

/** The sidecar's verdict on the same fields as a route entry, with every cluster in CLUSTERS defined. */
function sidecar(route: unknown, clusters = CLUSTERS): { problems: string[]; routes: readonly RouteSpec[] } {
  try {
    const config = validateMeshConfig({ clusters: clusters.map((name) => ({ name, endpoints: [] })), routes: [route] }, 'v');
    return { problems: [], routes: config.routes };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { problems: [...err.problems], routes: [] };
  }
}

const problemsOf = (spec: unknown): string[] => controlPlane(spec).problems;
const base = { match: { service: 'catalog' }, cluster: 'catalog' };

test('match: method exact or prefix, headers exact, regex or present, each with its field path', (t) => {
  t.deepEqual(problemsOf({ ...base, match: { service: 'catalog', method: { exact: '/shop.Catalog/Get', prefix: '/shop.' } } }), [
    'spec.match.method: must set only one of exact, prefix, got exact and prefix',
  ]);
  t.deepEqual(problemsOf({ ...base, match: { service: 'catalog', method: {} } }), ['spec.match.method: must set one of exact, prefix']);
  t.deepEqual(problemsOf({ ...base, match: { service: 'catalog', method: { exact: 'Get' } } }), [
    'spec.match.method.exact: "Get" is not valid (a gRPC method path: /package.Service/Method)',
  ]);
  t.deepEqual(problemsOf({ ...base, match: { service: 'catalog', method: { prefix: 'shop.' } } }), [
    'spec.match.method.prefix: "shop." is not valid (a gRPC method path prefix starting with /, such as /package.Service/)',
  ]);
  t.deepEqual(problemsOf({ ...base, match: { service: 'catalog', method: { exact: '/a.B/C', regex: 'x' } } }), [
    'spec.match.method.regex: unknown field (known: exact, prefix)',
  ]);
  t.deepEqual(
    problemsOf({
      ...base,
      match: {
        service: 'catalog',
        headers: [
          { name: 'X-Canary', exact: 'yes' },
          { name: 'x-user', exact: 'a', present: true },
          { name: 'x-a' },
          { name: ':path', present: true },
          { name: 'x-b', present: 'yes' },
          { name: 'x-c', exact: 'a' },
          { name: 'x-c', present: false },
        ],
      },
    }),
    [
      'spec.match.headers[0].name: "X-Canary" must be lower case (HTTP/2 header names are): "x-canary"',
      'spec.match.headers[1]: must set only one of exact, regex, present, got exact and present',
      'spec.match.headers[2]: must set one of exact, regex, present',
      'spec.match.headers[3].name: ":path" is not valid (a lower-case HTTP header name)',
      'spec.match.headers[4].present: must be true or false, got "yes"',
      'spec.match.headers[6].name: header "x-c" is already matched by this route',
    ],
  );
  t.deepEqual(problemsOf({ ...base, match: { service: 'catalog', headers: [] } }), [
    'spec.match.headers: must list at least one header match (or be left out)',
  ]);
  t.deepEqual(problemsOf({ ...base, match: { service: 'catalog', headers: 'x-canary' } }), ['spec.match.headers: must be a list, got "x-canary"']);
  t.deepEqual(problemsOf({ ...base, match: { service: 'catalog', host: 'x' } }), ['spec.match.host: unknown field (known: service, method, headers)']);
  // An empty exact value is a value (a header sent empty), not a missing field.
  t.deepEqual(problemsOf({ ...base, match: { service: 'catalog', headers: [{ name: 'x-empty', exact: '' }] } }), []);
});

test('header regexes are compiled at validation; a bad pattern is a clear error, never a crash later', (t) => {
  const bad = (regex: string) => problemsOf({ ...base, match: { service: 'catalog', headers: [{ name: 'x-v', regex }] } });
  t.deepEqual(bad('v[0-9'), ['spec.match.headers[0].regex: "v[0-9" is not a valid regular expression: Unterminated character class']);
  t.deepEqual(bad('(v2'), ['spec.match.headers[0].regex: "(v2" is not a valid regular expression: Unterminated group']);
  t.deepEqual(bad('*'), ['spec.match.headers[0].regex: "*" is not a valid regular expression: Nothing to repeat']);
  // Valid once wrapped as ^(?:...)$ but not on its own: rejected, not silently reinterpreted.
  t.deepEqual(bad('a)|(b'), ['spec.match.headers[0].regex: "a)|(b" is not a valid regular expression: Unmatched \')\'']);
  t.deepEqual(bad('a'.repeat(MAX_REGEX_LENGTH + 1)), [`spec.match.headers[0].regex: must be at most ${MAX_REGEX_LENGTH} characters, got ${MAX_REGEX_LENGTH + 1}`]);
  t.deepEqual(bad(''), ['spec.match.headers[0].regex: must be a non-empty string, got ""']);
  // The whole value must match: the pattern is anchored for the author.
  const re = compileHeaderRegex('v[0-9]+|beta');
  t.true(re.test('v12') && re.test('beta'));
  t.false(re.test('v1x') || re.test('xv1') || re.test('betamax'));
});

test('exactly one of cluster and destinations; destinations are integer weights 0..10000, one above 0', (t) => {
  t.deepEqual(problemsOf({ match: { service: 'catalog' } }), ['spec.cluster: is required']);
  t.deepEqual(problemsOf({ ...base, destinations: [{ cluster: 'catalog-v2', weight: 1 }] }), [
    'spec.destinations: use either cluster (one cluster) or destinations (a weighted split), not both',
  ]);
  t.deepEqual(problemsOf({ match: { service: 'catalog' }, destinations: [] }), ['spec.destinations: must list at least one destination']);
  t.deepEqual(problemsOf({ match: { service: 'catalog' }, destinations: { cluster: 'x' } }), ['spec.destinations: must be a list, got an object']);
  t.deepEqual(
    problemsOf({
      match: { service: 'catalog' },
      destinations: [
        { cluster: 'catalog-v1', weight: 10_001 },
        { cluster: 'catalog-v2', weight: 1.5 },
        { cluster: 'catalog-x', weight: -1 },
        { cluster: 'Catalog', weight: 1 },
        { cluster: 'catalog-y' },
        { cluster: 'catalog-dr', weight: 1, subset: 'v3' },
        { cluster: 'catalog-v2', weight: 5 },
      ],
    }),
    [
      'spec.destinations[0].weight: must be an integer from 0 to 10000, got 10001',
      'spec.destinations[1].weight: must be an integer from 0 to 10000, got 1.5',
      'spec.destinations[2].weight: must be an integer from 0 to 10000, got -1',
      'spec.destinations[3].cluster: "Catalog" is not valid (lower-case DNS label)',
      'spec.destinations[4].weight: is required',
      'spec.destinations[5].subset: unknown field (known: cluster, weight)',
      'spec.destinations[6].cluster: "catalog-v2" is already a destination of this route',
    ],
  );
  t.deepEqual(problemsOf({ match: { service: 'catalog' }, destinations: [{ cluster: 'catalog-v1', weight: 0 }, { cluster: 'catalog-v2', weight: 0 }] }), [
    'spec.destinations: at least one weight must be above 0',
  ]);
  const ok = controlPlane({ match: { service: 'catalog' }, destinations: [{ cluster: 'catalog-v1', weight: 90 }, { cluster: 'catalog-v2', weight: 10 }, { cluster: 'catalog-dr', weight: 0 }] });
  t.deepEqual(ok.problems, []);
  t.is(ok.spec?.cluster, undefined);
  t.deepEqual(ok.spec?.destinations, [{ cluster: 'catalog-v1', weight: 90 }, { cluster: 'catalog-v2', weight: 10 }, { cluster: 'catalog-dr', weight: 0 }]);
});

test('timeouts, retries and faults: ranges with field paths', (t) => {
  t.deepEqual(problemsOf({ ...base, timeoutMs: 0, grpcTimeout: 'cap', idleTimeoutMs: 86_400_001, failover: 'DR' }), [
    'spec.failover: "DR" is not valid (lower-case DNS label)',
    'spec.timeoutMs: must be an integer from 1 to 3600000, got 0',
    'spec.grpcTimeout: must be one of CAP, HONOR, IGNORE, got "cap"',
    'spec.idleTimeoutMs: must be an integer from 1 to 86400000, got 86400001',
  ]);
  t.deepEqual(problemsOf({ ...base, timeoutMs: 3_600_001 }), ['spec.timeoutMs: must be an integer from 1 to 3600000, got 3600001']);
  t.deepEqual(
    problemsOf({
      ...base,
      timeoutMs: 1000,
      retries: {
        maxAttempts: 11, retryOn: ['UNAVAILABLE', 'OK'], perTryTimeoutMs: 2000, budgetPercent: 101, minRetriesPerSecond: 10_001,
        retryNonIdempotent: 'yes', replayBufferBytes: 16 * 1024 * 1024 + 1, hedge: true,
      },
    }),
    [
      'spec.retries.hedge: unknown field (known: maxAttempts, retryOn, perTryTimeoutMs, backoffBaseMs, backoffMaxMs, budgetPercent, minRetriesPerSecond, retryNonIdempotent, replayBufferBytes)',
      'spec.retries.maxAttempts: must be an integer from 1 to 10, got 11',
      'spec.retries.retryOn[1]: must be one of CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED, got "OK"',
      'spec.retries.budgetPercent: must be a number from 0 to 100, got 101',
      'spec.retries.minRetriesPerSecond: must be an integer from 0 to 10000, got 10001',
      'spec.retries.retryNonIdempotent: must be true or false, got "yes"',
      'spec.retries.replayBufferBytes: must be an integer from 0 to 16777216, got 16777217',
    ],
  );
  t.deepEqual(problemsOf({ ...base, timeoutMs: 1000, retries: { perTryTimeoutMs: 2000 } }), ['spec.retries.perTryTimeoutMs: must not exceed timeoutMs (1000), got 2000']);
  t.deepEqual(problemsOf({ ...base, fault: {} }), ['spec.fault: must set delay, abort or both']);
  t.deepEqual(problemsOf({ ...base, fault: { onlyWithHeader: { name: 'x-chaos' } } }), ['spec.fault: must set delay, abort or both']);
  t.deepEqual(
    problemsOf({
      ...base,
      fault: {
        delay: { percent: 50, jitterMs: 3 },
        abort: { status: 'OK', percent: 100.5, message: 7 },
        onlyWithHeader: { name: 'X-Chaos', regex: '.*' },
      },
    }),
    [
      'spec.fault.delay.jitterMs: unknown field (known: fixedMs, percent)',
      'spec.fault.delay.fixedMs: is required',
      'spec.fault.abort.status: must be one of CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED, got "OK"',
      'spec.fault.abort.percent: must be a number from 0 to 100, got 100.5',
      'spec.fault.abort.message: must be a string, got 7',
      'spec.fault.onlyWithHeader.regex: unknown field (known: name, exact)',
      'spec.fault.onlyWithHeader.name: "X-Chaos" must be lower case (HTTP/2 header names are): "x-chaos"',
    ],
  );
  t.deepEqual(problemsOf({ ...base, fault: { delay: { fixedMs: 3_600_001 } } }), ['spec.fault.delay.fixedMs: must be an integer from 0 to 3600000, got 3600001']);
  t.deepEqual(problemsOf({ ...base, weight: 3 }), [
    'spec.weight: unknown field (known: match, cluster, destinations, failover, timeoutMs, grpcTimeout, idleTimeoutMs, retries, fault, mirror)',
  ]);
});

test('defaults: retry blocks fill the old fields; fields the sidecar defaults stay absent, their defaults exported', (t) => {
  const { spec, problems } = controlPlane({ ...base, retries: {}, fault: { delay: { fixedMs: 100 }, abort: { status: 'UNAVAILABLE' } } });
  t.deepEqual(problems, []);
  // Existing defaults unchanged; budget, rate floor, idempotency override and replay buffer left to the sidecar.
  t.deepEqual(spec?.retries, { maxAttempts: 2, retryOn: ['UNAVAILABLE'], backoffBaseMs: 25, backoffMaxMs: 250 });
  t.deepEqual(spec?.fault, { delay: { fixedMs: 100, percent: 100 }, abort: { status: 'UNAVAILABLE', percent: 100 } });
  t.is(spec?.grpcTimeout, undefined);
  t.is(DEFAULT_GRPC_TIMEOUT, 'CAP');
  t.deepEqual({ ...RETRY_DEFAULTS }, {
    maxAttempts: 2, backoffBaseMs: 25, backoffMaxMs: 250, budgetPercent: 20, minRetriesPerSecond: 10, retryNonIdempotent: false, replayBufferBytes: 65_536,
  });
  t.true(Object.isFrozen(RETRY_DEFAULTS));
  // Every field written comes back as written, fractions where percentages allow them.
  const full = {
    match: { service: 'catalog', method: { prefix: '/shop.Catalog/' }, headers: [{ name: 'x-canary', exact: 'yes' }, { name: 'x-user', regex: 'u-[0-9]+' }, { name: 'x-debug', present: false }] },
    destinations: [{ cluster: 'catalog-v1', weight: 90 }, { cluster: 'catalog-v2', weight: 10 }],
    failover: 'catalog-dr',
    timeoutMs: 2000,
    grpcTimeout: 'HONOR',
    idleTimeoutMs: 60_000,
    retries: {
      maxAttempts: 3, retryOn: ['UNAVAILABLE', 'RESOURCE_EXHAUSTED'], perTryTimeoutMs: 500, backoffBaseMs: 10, backoffMaxMs: 100,
      budgetPercent: 12.5, minRetriesPerSecond: 0, retryNonIdempotent: true, replayBufferBytes: 0,
    },
    fault: { delay: { fixedMs: 0, percent: 0.1 }, abort: { status: 'INTERNAL', percent: 1, message: 'chaos drill' }, onlyWithHeader: { name: 'x-chaos', exact: '' } },
  };
  const round = controlPlane(full);
  t.deepEqual(round.problems, []);
  t.deepEqual(round.spec as unknown, full);
});

test('the sidecar and the control plane agree: same verdicts, same problems, same values', (t) => {
  const cases: unknown[] = [
    base,
    { ...base, failover: 'catalog-dr', timeoutMs: 2000, grpcTimeout: 'IGNORE', idleTimeoutMs: 10, retries: { budgetPercent: 5, replayBufferBytes: 1024 } },
    { match: { service: 'catalog', method: { exact: '/shop.Catalog/Get' }, headers: [{ name: 'x-v', regex: 'v[0-9]+' }] }, destinations: [{ cluster: 'catalog-v1', weight: 1 }, { cluster: 'catalog-v2', weight: 0 }] },
    { ...base, fault: { abort: { status: 'ABORTED', percent: 50 }, onlyWithHeader: { name: 'x-chaos' } } },
    { match: { service: 'catalog' } },
    { ...base, destinations: [{ cluster: 'catalog-v1', weight: 1 }] },
    { match: { service: 'catalog', method: { prefix: 'x' }, headers: [{ name: 'x-v', regex: '(' }, { name: 'X' }] }, destinations: [{ cluster: 'catalog-v1', weight: 0 }] },
    { ...base, timeoutMs: 100, retries: { maxAttempts: 0, perTryTimeoutMs: 200, minRetriesPerSecond: -1, retryNonIdempotent: 1 } },
    { ...base, fault: { delay: { fixedMs: -1, percent: 200 }, abort: { status: 'NOPE' } }, grpcTimeout: 'SOMETIMES', idleTimeoutMs: 0 },
    { match: { service: 'Catalog' }, cluster: 'catalog', colour: 'blue' },
  ];
  // The sidecar lists `name` among a route's known fields; otherwise the same problems, word for word.
  const unprefixed = (problems: readonly string[], prefix: string) =>
    problems.map((p) => p.slice(prefix.length).replace('(known: name, match,', '(known: match,'));
  for (const [i, spec] of cases.entries()) {
    const cp = controlPlane(spec);
    const sc = sidecar({ name: 'r', ...(spec as object) });
    const what = `case ${i}: ${JSON.stringify(spec)}`;
    t.is(cp.problems.length === 0, sc.problems.length === 0, what);
    t.deepEqual(unprefixed(sc.problems, 'routes[0]'), unprefixed(cp.problems, 'spec'), what);
    if (cp.spec) t.deepEqual(sc.routes[0], { name: 'r', ...cp.spec }, what);
  }
});

test('the sidecar checks every cluster a route names, and rejects two routes with the same match', (t) => {
  const { problems } = sidecar(
    { name: 'r', match: { service: 'catalog' }, destinations: [{ cluster: 'catalog-v1', weight: 1 }, { cluster: 'nowhere', weight: 1 }], failover: 'gone' },
    ['catalog-v1'],
  );
  t.deepEqual(problems, ['routes[0].destinations[1].cluster: no cluster named "nowhere"', 'routes[0].failover: no cluster named "gone"']);
  t.deepEqual(sidecar({ name: 'r', match: { service: 'catalog' }, cluster: 'x' }, []).problems, ['routes[0].cluster: no cluster named "x"']);

  const clusters = [{ name: 'catalog', endpoints: [] }, { name: 'catalog-v2', endpoints: [] }];
  const canary = (name: string, headers: unknown[]) => ({ name, match: { service: 'catalog', headers }, cluster: 'catalog-v2' });
  // Several routes per service, each its own match: fine (the old one-route-per-service rule is gone).
  const ok = validateMeshConfig({
    clusters,
    routes: [
      { name: 'all', match: { service: 'catalog' }, cluster: 'catalog' },
      canary('canary', [{ name: 'x-canary', exact: 'yes' }]),
      { name: 'get', match: { service: 'catalog', method: { exact: '/shop.Catalog/Get' } }, cluster: 'catalog-v2' },
    ],
  }, 'v');
  t.is(ok.routes.length, 3);
  t.true(Object.isFrozen(ok.routes[1]!.match.headers![0]));
  // Same match, headers in another order: an error naming the other route.
  const err = t.throws(() => validateMeshConfig({
    clusters,
    routes: [
      canary('a', [{ name: 'x-canary', exact: 'yes' }, { name: 'x-user', present: true }]),
      { name: 'broken', match: { service: 'catalog', method: { exact: 'nope' } }, cluster: 'catalog' },
      canary('b', [{ name: 'x-user', present: true }, { name: 'x-canary', exact: 'yes' }]),
      { name: 'all', match: { service: 'catalog' }, cluster: 'missing' },
      { name: 'all-again', match: { service: 'catalog' }, cluster: 'catalog' },
    ],
  }, 'v'), { instanceOf: ConfigError });
  // Cross-check paths keep each route's own index when an earlier route failed validation.
  t.deepEqual(err?.problems, [
    'routes[1].match.method.exact: "nope" is not valid (a gRPC method path: /package.Service/Method)',
    'routes[2].match: route "a" already has the same match (service, method and headers)',
    'routes[3].cluster: no cluster named "missing"',
    'routes[4].match: route "all" already has the same match (service, method and headers)',
  ]);
  // A route without a name is named after its service.
  t.is(validateMeshConfig({ clusters, routes: [{ match: { service: 'catalog' }, cluster: 'catalog' }] }, 'v').routes[0]!.name, 'catalog');
  t.deepEqual(sidecar({ name: 'r', ...base, hosts: [] }).problems, [
    'routes[0].hosts: unknown field (known: name, match, cluster, destinations, failover, timeoutMs, grpcTimeout, idleTimeoutMs, retries, fault, mirror)',
  ]);
});

test('match keys: the same match in any header order is one key; method kind and value count', (t) => {
  const key = routeMatchKey;
  t.is(
    key({ service: 's', headers: [{ name: 'a', exact: '1' }, { name: 'b', present: true }] }),
    key({ service: 's', headers: [{ name: 'b', present: true }, { name: 'a', exact: '1' }] }),
  );
  t.not(key({ service: 's', method: { exact: '/a.B/C' } }), key({ service: 's', method: { prefix: '/a.B/C' } }));
  t.not(key({ service: 's', headers: [{ name: 'a', exact: 'x' }] }), key({ service: 's', headers: [{ name: 'a', regex: 'x' }] }));
  t.not(key({ service: 's', headers: [{ name: 'a', present: true }] }), key({ service: 's', headers: [{ name: 'a', present: false }] }));
  t.not(key({ service: 's' }), key({ service: 't' }));
});

test('the control plane passes every route field through to the sidecar, which accepts it unchanged', (t) => {
  const { resources, errors } = parseResources(
    `
kind: Route
metadata: { name: catalog-canary, namespace: shop }
spec:
  match:
    service: catalog
    method: { prefix: /shop.Catalog/ }
    headers: [{ name: x-canary, exact: "yes" }, { name: x-user, regex: "u-[0-9]+" }]
  destinations: [{ cluster: catalog-v1, weight: 90 }, { cluster: catalog-v2, weight: 10 }]
  failover: catalog-dr
  timeoutMs: 2000
  grpcTimeout: HONOR
  idleTimeoutMs: 30000
  retries: { maxAttempts: 3, perTryTimeoutMs: 700, budgetPercent: 10, minRetriesPerSecond: 5, retryNonIdempotent: true, replayBufferBytes: 1024 }
  fault: { delay: { fixedMs: 50, percent: 5 }, abort: { status: UNAVAILABLE, percent: 1, message: drill }, onlyWithHeader: { name: x-chaos } }
---
kind: Route
metadata: { name: catalog }
spec: { match: { service: catalog }, cluster: catalog }
`,
    'routes.yaml',
  );
  t.deepEqual(errors, []);
  const state = new MeshState();
  state.reset({ revision: '1', resources: resources.map((r) => ({ ...r, modRevision: '1' }) as StoredResource), instances: [], invalid: [] });
  const built = buildSidecarConfig(state);
  const doc = JSON.parse(JSON.stringify({ clusters: CLUSTERS.map((name) => ({ name, endpoints: [] })), routes: built.routes })) as unknown;
  const config = validateMeshConfig(doc, 'v');
  t.deepEqual(config.routes.map((r) => r.name), ['default/catalog', 'shop/catalog-canary']);
  t.deepEqual(config.routes[0], { name: 'default/catalog', ...(resources[1]!.spec as RouteSpec) });
  t.deepEqual(config.routes[1], { name: 'shop/catalog-canary', ...(resources[0]!.spec as RouteSpec) });
});
