/**
 * The resource model on its own: YAML documents → validated resources, with every error naming
 * its document and field path; stored values that fail validation are reported, never thrown.
 */
import test from 'ava';
import { parseResources } from '../control-plane/resources/parse.js';
import { validateStoredValue } from '../control-plane/resources/stored-value.js';
import { resolveKind, resourceRef } from '../control-plane/resources/kinds.js';
import { parseKey } from '../control-plane/resources/keys.js';
import { resourceProblems } from '../control-plane/resources/resource.js';
import type { ClusterSpec, RouteSpec } from '../control-plane/resources/types.js';

const MESH = `
kind: Route
metadata: { name: catalog-canary, namespace: shop, labels: { team: shop } }
spec:
  match: { service: catalog }
  cluster: catalog-v2
  timeoutMs: 2000
  retries: { maxAttempts: 3 }
---
kind: Cluster
metadata: { name: catalog-v2, namespace: shop }
spec:
  service: catalog
  subset: { version: v2 }
  loadBalancing: { policy: RING_HASH, hashHeader: x-user }
  healthCheck: { intervalMs: 2000 }
  outlierDetection: { consecutiveFailures: 3 }
  circuitBreakers: { maxRequests: 100 }
---
kind: Cluster
metadata: { name: payments }
spec:
  endpoints: [{ address: 10.0.0.7, port: 8443 }]
---
apiVersion: remora/v1
kind: AuthorizationPolicy
metadata: { name: orders-only, namespace: shop }
spec:
  service: payments
  action: ALLOW
  rules:
    - from: [spiffe://cluster.local/ns/shop/sa/orders, ns/ops/*]
      methods: [/shop.Payments/Charge, /shop.Payments/*]
---
kind: MeshConfig
metadata: { name: mesh }
spec: { mtlsMode: STRICT }
---
`;

test('a valid multi-document file parses with defaults filled in', (t) => {
  const { resources, errors } = parseResources(MESH, 'mesh.yaml');
  t.deepEqual(errors, []);
  t.is(resources.length, 5);
  const [route, subset, payments, authz, mesh] = resources;
  t.deepEqual(route!.metadata, { name: 'catalog-canary', namespace: 'shop', labels: { team: 'shop' } });
  const rs = route!.spec as RouteSpec;
  t.deepEqual(rs.retries, { maxAttempts: 3, retryOn: ['UNAVAILABLE'], backoffBaseMs: 25, backoffMaxMs: 250 });
  t.is(rs.timeoutMs, 2000);
  const cs = subset!.spec as ClusterSpec;
  t.is(cs.service, 'catalog');
  t.deepEqual(cs.subset, { version: 'v2' });
  t.deepEqual(cs.loadBalancing, { policy: 'RING_HASH', hashHeader: 'x-user' });
  t.deepEqual(cs.healthCheck, { intervalMs: 2000, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 3, jitterMs: 200, serviceName: '' });
  t.is(cs.outlierDetection?.maxEjectionPercent, 10);
  t.deepEqual(cs.circuitBreakers, { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 100, maxRetries: 3 });
  // Defaults: namespace "default", service = name, no subset, no endpoints, the sidecar's timeouts.
  t.deepEqual(payments!.metadata, { name: 'payments', namespace: 'default', labels: {} });
  t.like(payments!.spec as ClusterSpec, { service: 'payments', subset: {}, connectTimeoutMs: 5000, maxSessionAgeMs: 300000 });
  t.is((payments!.spec as ClusterSpec).endpoints[0]!.weight, 1);
  t.is((payments!.spec as ClusterSpec).loadBalancing, undefined, 'absent policy blocks stay absent');
  t.is(authz!.kind, 'AuthorizationPolicy');
  t.deepEqual(mesh!.spec, { trustDomain: 'cluster.local', mtlsMode: 'STRICT' });
  t.true(Object.isFrozen(route) && Object.isFrozen(rs.match), 'validated resources are frozen');
});

test('every error names the file, the document and the field path', (t) => {
  const { errors } = parseResources(
    `
kind: Route
metadata: { name: catalog-canary, namespace: shop }
spec: { match: { service: 42 }, cluster: catalog }
---
kind: Route
metadata: { name: ok, namespace: shop }
spec: { match: { service: catalog }, cluster: catalog }
---
kind: Cluster
metadata: { name: c1 }
spec:
  endpoints: [{ address: 1.2.3.4, port: 70000 }, { port: 80 }]
  connectTimeoutMs: 0
  colour: blue
  loadBalancing: { policy: FASTEST }
  outlierDetection: { statusCodes: [UNAVAILABLE, NOPE] }
---
kind: Route
metadata: { namespace: Shop }
spec: { match: {}, cluster: catalog, retries: { backoffBaseMs: 100, backoffMaxMs: 10 } }
`,
    'mesh.yaml',
  );
  t.deepEqual(errors, [
    'mesh.yaml document 1 (Route shop/catalog-canary): spec.match.service: must be a non-empty string, got 42',
    'mesh.yaml document 3 (Cluster default/c1): spec.colour: unknown field (known: service, subset, endpoints, connectTimeoutMs, maxSessionAgeMs, loadBalancing, healthCheck, outlierDetection, circuitBreakers, panicThresholdPercent)',
    'mesh.yaml document 3 (Cluster default/c1): spec.endpoints[0].port: must be an integer from 1 to 65535, got 70000',
    'mesh.yaml document 3 (Cluster default/c1): spec.endpoints[1].address: is required',
    'mesh.yaml document 3 (Cluster default/c1): spec.connectTimeoutMs: must be an integer from 1 to 600000, got 0',
    'mesh.yaml document 3 (Cluster default/c1): spec.loadBalancing.policy: must be one of ROUND_ROBIN, RANDOM, LEAST_REQUEST, PEAK_EWMA, RING_HASH, got "FASTEST"',
    'mesh.yaml document 3 (Cluster default/c1): spec.outlierDetection.statusCodes[1]: must be one of CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED, got "NOPE"',
    'mesh.yaml document 4 (Route): metadata.name: is required',
    'mesh.yaml document 4 (Route): metadata.namespace: "Shop" is not valid (lower-case DNS label: a-z, 0-9 and -, starting and ending with a letter or digit)',
    'mesh.yaml document 4 (Route): spec.match.service: is required',
    'mesh.yaml document 4 (Route): spec.retries.backoffMaxMs: must be at least backoffBaseMs (100), got 10',
  ]);
});

test('unknown kinds list the known ones; YAML syntax errors and duplicates name their document', (t) => {
  const { errors } = parseResources(
    `
kind: VirtualService
metadata: { name: x }
spec: {}
---
kind: route
metadata: { name: x }
---
kind: MeshConfig
metadata: { name: mesh }
---
kind: MeshConfig
metadata: { name: mesh, namespace: default }
---
kind: Route
metadata: { name: [oops
`,
    'f.yaml',
  );
  t.is(errors[0], 'f.yaml document 1 (VirtualService default/x): kind: unknown kind "VirtualService" (known: Route, Cluster, AuthorizationPolicy, MeshConfig)');
  t.regex(errors[1]!, /^f\.yaml document 2 \(route default\/x\): kind: unknown kind "route" .*did you mean Route\?\)$/);
  t.is(errors[2], 'f.yaml document 4 (MeshConfig default/mesh): meshconfig default/mesh is already defined in document 3');
  t.true(errors.length >= 4);
  for (const e of errors.slice(3)) t.regex(e, /^f\.yaml document 5: not valid YAML: .*line \d+/);
});

test('documents that are not mappings, and files with nothing in them, are errors', (t) => {
  t.deepEqual(parseResources('- a\n- b\n', 'x.yaml').errors, ['x.yaml document 1: a resource must be a mapping with kind, metadata and spec, got a list']);
  t.deepEqual(parseResources('# nothing\n---\n', 'x.yaml').errors, ['x.yaml: no resources found (expected YAML documents with kind, metadata and spec)']);
  t.deepEqual(parseResources('', 'x.yaml').errors, ['x.yaml: no resources found (expected YAML documents with kind, metadata and spec)']);
  const huge = parseResources(`kind: Route\nmetadata: { name: ${'a'.repeat(64)} }\nspec: { match: { service: s }, cluster: c }\n`, 'x.yaml');
  t.regex(huge.errors[0]!, /metadata\.name: must be at most 63 characters, got 64$/);
});

test('authorization policies and mesh config check their own fields', (t) => {
  const { errors } = parseResources(
    `
kind: AuthorizationPolicy
metadata: { name: p }
spec:
  action: MAYBE
  rules:
    - from: [anyone]
      methods: [Charge]
    - methods: []
---
kind: MeshConfig
metadata: { name: mesh }
spec: { trustDomain: "Not A Domain", mtlsMode: strict }
`,
    'p.yaml',
  );
  t.deepEqual(errors, [
    'p.yaml document 1 (AuthorizationPolicy default/p): spec.service: is required',
    'p.yaml document 1 (AuthorizationPolicy default/p): spec.action: must be one of ALLOW, DENY, got "MAYBE"',
    'p.yaml document 1 (AuthorizationPolicy default/p): spec.rules[0].from[0]: "anyone" is not valid (use *, ns/<namespace>/*, or spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)',
    'p.yaml document 1 (AuthorizationPolicy default/p): spec.rules[0].methods[0]: "Charge" is not valid (use /package.Service/Method or /package.Service/*)',
    'p.yaml document 1 (AuthorizationPolicy default/p): spec.rules[1].from: must list at least one caller (use ["*"] for anyone)',
    'p.yaml document 2 (MeshConfig default/mesh): spec.trustDomain: "Not A Domain" is not valid (lower-case DNS name such as example.org)',
    'p.yaml document 2 (MeshConfig default/mesh): spec.mtlsMode: must be one of STRICT, PERMISSIVE, DISABLED, got "strict"',
  ]);
});

test('stored values: valid ones come back typed, garbage is reported and never thrown', (t) => {
  const good = JSON.stringify({ kind: 'Route', metadata: { name: 'r', namespace: 'shop' }, spec: { match: { service: 's' }, cluster: 'c' } });
  const v = validateStoredValue('/remora/config/route/shop/r', Buffer.from(good), { modRevision: '42' });
  t.is(v.type, 'resource');
  if (v.type === 'resource') t.like(v.resource, { kind: 'Route', modRevision: '42', metadata: { namespace: 'shop', name: 'r' } });

  const cases: [string, string, RegExp][] = [
    ['/remora/config/route/shop/r', 'not json', /^value is not JSON: /],
    ['/remora/config/route/shop/r', '[1,2]', /^a resource must be a mapping/],
    ['/remora/config/route/shop/r', 'null', /^a resource must be a mapping/],
    ['/remora/config/route/shop/r', good.replace('"cluster":"c"', '"cluster":7'), /^spec\.cluster: must be a non-empty string, got 7$/],
    ['/remora/config/route/shop/other', good, /^the key is for route shop\/other but the value is route shop\/r$/],
    ['/remora/config/cluster/shop/r', good, /^the key is for cluster shop\/r but the value is route shop\/r$/],
    ['/remora/config/widget/shop/r', good, /unknown kind "widget"/],
    ['/remora/config/route/r', good, /^key must be config\/<kind>\/<namespace>\/<name>$/],
    ['/remora/endpoints/shop/catalog/i-1', '{"service":"catalog"}', /^namespace: is required$/],
    ['/remora/endpoints/shop/catalog/i-1', '"just a string"', /^an instance record must be a JSON object, got "just a string"$/],
    ['/remora/status/shop/catalog/i-1', '{}', /^service: is required$/],
  ];
  for (const [key, value, problem] of cases) {
    const r = validateStoredValue(key, value);
    t.is(r.type, 'invalid', `${key} ${value}`);
    if (r.type === 'invalid') {
      t.is(r.invalid.key, key);
      t.regex(r.invalid.problems[0]!, problem, `${key} ${value}`);
    }
  }
  t.is(validateStoredValue('/remora/ca/bundle', 'pem').type, 'ignored');
  t.is(validateStoredValue('/elsewhere/config/route/a/b', good).type, 'ignored');
  // Deeply nested input is still just one bad value.
  t.is(validateStoredValue('/remora/config/route/shop/r', '['.repeat(100_000) + ']'.repeat(100_000)).type, 'invalid');
});

test('instance records validate on the way in and out', (t) => {
  const rec = { service: 'catalog', namespace: 'shop', instanceId: 'catalog-1', address: '10.0.0.1', port: 15006, zone: '', labels: { version: 'v1' }, serviceAccount: 'catalog', health: 'SERVING', controlPlane: 'cp-1' };
  const ok = validateStoredValue('/remora/endpoints/shop/catalog/catalog-1', JSON.stringify(rec));
  t.is(ok.type, 'instance');
  const bad = validateStoredValue('/remora/endpoints/shop/catalog/catalog-1', JSON.stringify({ ...rec, port: 0, health: 'MAYBE', instanceId: 'a/b' }));
  t.is(bad.type, 'invalid');
  if (bad.type === 'invalid') {
    t.deepEqual(bad.invalid.problems, [
      'instanceId: "a/b" is not valid (letters, digits, . _ : -, at most 253 characters)',
      'port: must be an integer from 1 to 65535, got 0',
      'health: must be one of SERVING, NOT_SERVING, got "MAYBE"',
    ]);
  }
});

test('kinds resolve case-insensitively from singular, plural and short names', (t) => {
  for (const s of ['Route', 'route', 'routes', 'ROUTES', 'rt']) t.is(resolveKind(s), 'Route');
  t.is(resolveKind('authorizationpolicies'), 'AuthorizationPolicy');
  t.is(resolveKind('MeshConfig'), 'MeshConfig');
  t.is(resolveKind('clusters'), 'Cluster');
  t.is(resolveKind('pods'), undefined);
  t.is(resourceRef('Route', 'shop', 'catalog-canary'), 'route.remora/shop/catalog-canary');
  t.deepEqual(parseKey('/remora/', '/remora/config/authorizationpolicy/shop/p'), { area: 'config', kind: 'AuthorizationPolicy', namespace: 'shop', name: 'p' });
  t.deepEqual(parseKey('/remora/', '/remora/endpoints/shop/catalog/i-1'), { area: 'endpoints', namespace: 'shop', service: 'catalog', instanceId: 'i-1' });
});

test('resources built in code are checked like files', (t) => {
  t.deepEqual(resourceProblems({ kind: 'Route', metadata: { name: 'r', namespace: 'default', labels: {} }, spec: { match: { service: 's' }, cluster: 'c' } }), []);
  t.deepEqual(resourceProblems({ kind: 'Route', metadata: { name: 'r', namespace: 'default', labels: {} }, spec: { match: { service: 's' } } }), ['spec.cluster: is required']);
});
