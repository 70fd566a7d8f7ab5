/**
 * Routing rules. Unit: the route table's precedence (exact method > longer prefix > no method,
 * then more header matchers, then name), header exact / regex / present / absent, the implicit
 * default route as the last resort, weighted splits within a statistical bound, policies, and the
 * single-route fast path (cached, nothing tested, nothing allocated). Then one real sidecar process
 * with a static config in front of two echo servers: header match, method match, a 90/10 canary.
 *
 * Bounds: a share estimated from N independent draws has standard deviation sqrt(p(1-p)/N); the
 * tests allow 5 of them (a false failure about once in 1.7 million assertions).
 */
import test, { type ExecutionContext } from 'ava';
import type { IncomingHttpHeaders } from 'node:http2';
import { getHeapStatistics } from 'node:v8';
import { validateMeshConfig } from '../sidecar/config/validate.js';
import { FixedRouter, RouteTable, type Route, type Router } from '../sidecar/routing/route-table.js';
import { CompiledMatch } from '../sidecar/routing/match.js';
import { EMPTY_POLICY } from '../sidecar/routing/route.js';
import { Random } from '../sidecar/upstream/random.js';
import type { Cluster } from '../sidecar/upstream/cluster.js';
import { echoClient, EchoService, grpc, identity, startEchoServer, unary, type EchoServer } from './fixtures/echo-service.js';
import { startSidecar, type SidecarHandle } from './harness/sidecars.js';

const SIGMAS = 5;
/** Seeded, so the unit draws are reproducible; the shared generator is checked as well. */
const random = new Random(42);

function assertShare(t: ExecutionContext, observed: number, p: number, n: number, what: string): void {
  const bound = SIGMAS * Math.sqrt((p * (1 - p)) / n);
  t.true(Math.abs(observed - p) <= bound, `${what}: share ${observed.toFixed(4)}, expected ${p.toFixed(4)} ± ${bound.toFixed(4)}`);
}

/** The table treats clusters as opaque: a name is all these tests need to tell them apart. */
function fakeClusters(names: readonly string[]): Map<string, Cluster> {
  return new Map(names.map((name) => [name, { name } as unknown as Cluster]));
}

/** A route table from a config that went through the sidecar's validator, as in production. */
function table(clusterNames: readonly string[], routes: unknown[]): RouteTable {
  const config = validateMeshConfig({ clusters: clusterNames.map((name) => ({ name, endpoints: [] })), routes }, 'test');
  return new RouteTable(config, fakeClusters(clusterNames));
}

/** Where a call goes: the picked cluster's name (or "-" for no route). */
function dest(rt: RouteTable, authority: string, path: string | undefined, headers: IncomingHttpHeaders = {}): string {
  const route = rt.resolve(authority, path, headers);
  return route ? route.pickCluster().name : '-';
}

const UNARY = '/remora.test.Echo/Unary';

test('precedence: exact method, then longer prefix, then no method; more headers first within each', (t) => {
  const rt = table(['catalog', 'exact', 'prefix', 'short-prefix', 'prefix-canary', 'canary'], [
    // Deliberately least specific first: config order must not matter.
    { name: 'canary', match: { service: 'catalog', headers: [{ name: 'x-canary', exact: 'yes' }] }, cluster: 'canary' },
    { name: 'short-prefix', match: { service: 'catalog', method: { prefix: '/shop.' } }, cluster: 'short-prefix' },
    { name: 'prefix', match: { service: 'catalog', method: { prefix: '/shop.Catalog/' } }, cluster: 'prefix' },
    { name: 'prefix-canary', match: { service: 'catalog', method: { prefix: '/shop.Catalog/' }, headers: [{ name: 'x-canary', exact: 'yes' }] }, cluster: 'prefix-canary' },
    { name: 'exact', match: { service: 'catalog', method: { exact: '/shop.Catalog/Get' } }, cluster: 'exact' },
  ]);
  const canary = { 'x-canary': 'yes' };
  t.is(dest(rt, 'catalog', '/shop.Catalog/Get', canary), 'exact', 'an exact method beats a prefix with more headers');
  t.is(dest(rt, 'catalog', '/shop.Catalog/Get'), 'exact');
  t.is(dest(rt, 'catalog', '/shop.Catalog/List', canary), 'prefix-canary', 'same prefix: more header matchers first');
  t.is(dest(rt, 'catalog', '/shop.Catalog/List'), 'prefix');
  t.is(dest(rt, 'catalog', '/shop.Orders/List', canary), 'short-prefix', 'any method match beats headers alone');
  t.is(dest(rt, 'catalog', '/other.Svc/M', canary), 'canary');
  t.is(dest(rt, 'catalog', '/other.Svc/M'), 'catalog', 'nothing matches: the default route (cluster named after the service)');
  t.is(rt.resolve('catalog', '/other.Svc/M', {})!.name, 'default/catalog');
  t.is(rt.resolve('catalog', '/shop.Catalog/Get', {})!.name, 'exact');
  // A prefix is a prefix of the path, nothing more: "/shop.Catalog/" does not match "/shop.CatalogX/Get".
  t.is(dest(rt, 'catalog', '/shop.CatalogX/Get'), 'short-prefix');
  t.is(dest(rt, 'catalog', undefined, canary), 'canary', 'no :path matches no method rule');
});

test('ties between routes that can both match go by name, whatever the config order', (t) => {
  for (const order of [0, 1]) {
    const routes = [
      { name: 'b-user', match: { service: 'catalog', headers: [{ name: 'x-user', present: true }] }, cluster: 'user' },
      { name: 'a-canary', match: { service: 'catalog', headers: [{ name: 'x-canary', exact: 'yes' }] }, cluster: 'canary' },
    ];
    const rt = table(['catalog', 'user', 'canary'], order ? routes.reverse() : routes);
    t.is(dest(rt, 'catalog', UNARY, { 'x-canary': 'yes', 'x-user': 'u1' }), 'canary');
    t.is(dest(rt, 'catalog', UNARY, { 'x-user': 'u1' }), 'user');
  }
});

test('headers: exact, whole-value regex, present and absent', (t) => {
  const rt = table(['catalog', 'exact', 'regex', 'present', 'absent'], [
    { name: 'exact', match: { service: 'catalog', method: { exact: '/a.S/Exact' }, headers: [{ name: 'x-v', exact: 'v2' }] }, cluster: 'exact' },
    { name: 'regex', match: { service: 'catalog', method: { exact: '/a.S/Regex' }, headers: [{ name: 'x-v', regex: 'v[0-9]+' }] }, cluster: 'regex' },
    { name: 'present', match: { service: 'catalog', method: { exact: '/a.S/Present' }, headers: [{ name: 'x-v', present: true }] }, cluster: 'present' },
    { name: 'absent', match: { service: 'catalog', method: { exact: '/a.S/Absent' }, headers: [{ name: 'x-v', present: false }] }, cluster: 'absent' },
  ]);
  const cases: [string, IncomingHttpHeaders, string][] = [
    ['/a.S/Exact', { 'x-v': 'v2' }, 'exact'],
    ['/a.S/Exact', { 'x-v': 'v22' }, 'catalog'],
    ['/a.S/Exact', { 'x-v': 'V2' }, 'catalog'],
    ['/a.S/Exact', {}, 'catalog'],
    ['/a.S/Regex', { 'x-v': 'v17' }, 'regex'],
    ['/a.S/Regex', { 'x-v': 'v17-beta' }, 'catalog'],
    ['/a.S/Regex', { 'x-v': 'xv17' }, 'catalog'],
    ['/a.S/Regex', {}, 'catalog'],
    ['/a.S/Present', { 'x-v': '' }, 'present'],
    ['/a.S/Present', {}, 'catalog'],
    ['/a.S/Absent', {}, 'absent'],
    ['/a.S/Absent', { 'x-v': 'anything' }, 'catalog'],
    // A repeated header arrives as a list only for set-cookie; joined with ", " like node joins the rest.
    ['/a.S/Exact', { 'x-v': ['v2'] }, 'exact'],
    ['/a.S/Regex', { 'x-v': ['v1', 'v2'] }, 'catalog'],
  ];
  for (const [path, headers, want] of cases) t.is(dest(rt, 'catalog', path, headers), want, `${path} ${JSON.stringify(headers)}`);
  t.true(new CompiledMatch({ service: 's', headers: [{ name: 'x-v', regex: 'v1, v2' }] }).matches(UNARY, { 'x-v': ['v1', 'v2'] }));
});

test('the default route is the last resort; an explicit catch-all replaces it; no route at all is undefined', (t) => {
  // Only conditional explicit routes: the default takes the rest.
  let rt = table(['catalog', 'catalog-v2'], [
    { name: 'canary', match: { service: 'catalog', headers: [{ name: 'x-canary', exact: 'yes' }] }, cluster: 'catalog-v2' },
  ]);
  t.is(dest(rt, 'catalog', UNARY, { 'x-canary': 'yes' }), 'catalog-v2');
  t.is(dest(rt, 'catalog', UNARY), 'catalog');
  t.is(rt.resolve('catalog', UNARY, {})!.policy, EMPTY_POLICY);
  // An explicit unconditional route takes what the conditional ones leave; the default never sees a call.
  rt = table(['catalog', 'catalog-v1', 'catalog-v2'], [
    { name: 'canary', match: { service: 'catalog', headers: [{ name: 'x-canary', exact: 'yes' }] }, cluster: 'catalog-v2' },
    { name: 'stable', match: { service: 'catalog' }, cluster: 'catalog-v1' },
  ]);
  t.is(dest(rt, 'catalog', UNARY), 'catalog-v1');
  t.is(dest(rt, 'catalog', UNARY, { 'x-canary': 'yes' }), 'catalog-v2');
  // A service with routes but no cluster of its name: nothing matching means no route.
  rt = table(['catalog-v2'], [{ name: 'canary', match: { service: 'catalog', headers: [{ name: 'x-canary', exact: 'yes' }] }, cluster: 'catalog-v2' }]);
  t.is(dest(rt, 'catalog', UNARY, { 'x-canary': 'yes' }), 'catalog-v2');
  t.is(rt.resolve('catalog', UNARY, {}), undefined);
  t.is(rt.resolve('unknown', UNARY, {}), undefined);
  t.is(rt.resolve('10.0.0.1:80', UNARY, {}), undefined);
  // Every authority form of the service finds the same routes.
  for (const authority of ['catalog:50051', 'catalog.shop', 'catalog.shop.svc.cluster.local:50051', 'CATALOG']) {
    t.is(dest(rt, authority, UNARY, { 'x-canary': 'yes' }), 'catalog-v2', authority);
  }
});

test('weighted split: 90/10 over 20k picks within 5 sigma; weight 0 never picked; failover and policy carried', (t) => {
  const rt = table(['catalog', 'catalog-v1', 'catalog-v2', 'catalog-v3', 'catalog-dr'], [
    {
      name: 'shop/canary',
      match: { service: 'catalog' },
      destinations: [{ cluster: 'catalog-v1', weight: 9000 }, { cluster: 'catalog-v3', weight: 0 }, { cluster: 'catalog-v2', weight: 1000 }],
      failover: 'catalog-dr',
      timeoutMs: 1500,
      grpcTimeout: 'HONOR',
      retries: { maxAttempts: 3 },
      fault: { abort: { status: 'UNAVAILABLE', percent: 1 } },
    },
  ]);
  const route = rt.resolve('catalog', UNARY, {})!;
  const n = 20_000;
  for (const [what, draw] of [['seeded', () => route.pickCluster(random)], ['shared generator', () => route.pickCluster()]] as const) {
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const name = draw().name;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    t.is(counts.get('catalog-v3'), undefined, 'weight 0 gets nothing');
    assertShare(t, (counts.get('catalog-v2') ?? 0) / n, 0.1, n, `catalog-v2 (${what})`);
    assertShare(t, (counts.get('catalog-v1') ?? 0) / n, 0.9, n, `catalog-v1 (${what})`);
  }
  t.is(route.name, 'shop/canary');
  t.is(route.service, 'catalog');
  t.is(route.failover?.name, 'catalog-dr');
  t.deepEqual(route.policy as unknown, {
    timeoutMs: 1500,
    grpcTimeout: 'HONOR',
    retries: { maxAttempts: 3, retryOn: ['UNAVAILABLE'], backoffBaseMs: 25, backoffMaxMs: 250 },
    fault: { abort: { status: 'UNAVAILABLE', percent: 1 } },
  });
  t.true(Object.isFrozen(route.policy) && Object.isFrozen(route.policy.retries) && Object.isFrozen(route.policy.fault?.abort));
});

test('a single-cluster route returns its cluster; the inbound FixedRouter has one route with an empty policy', (t) => {
  const rt = table(['catalog', 'catalog-v2'], [{ name: 'r', match: { service: 'catalog' }, cluster: 'catalog-v2', failover: 'catalog' }]);
  const route = rt.resolve('catalog', UNARY, {})!;
  t.is(route.pickCluster().name, 'catalog-v2');
  t.is(route.failover?.name, 'catalog');
  t.is(route.policy, EMPTY_POLICY);
  t.deepEqual(route.policy, {});
  const app = { name: 'inbound|catalog' } as unknown as Cluster;
  const fixed = new FixedRouter('catalog', app);
  const inbound = fixed.resolve();
  const router: Router = fixed;
  t.is(router.resolve('anything', '/x.Y/Z', { 'x-canary': 'yes' }), inbound);
  t.is(inbound.pickCluster(), app);
  t.is(inbound.name, 'inbound');
  t.is(inbound.failover, undefined);
  t.deepEqual(inbound.policy, {});
  t.true(Object.isFrozen(inbound.policy));
});

/** Median heap growth over 9 chunks of `chunk` calls, after a warm-up chunk (as in balancers.test.ts). */
function heapGrowth(chunk: number, call: () => void): { median: number; deltas: number[] } {
  for (let i = 0; i < chunk; i++) call();
  const deltas: number[] = [];
  for (let c = 0; c < 9; c++) {
    const before = getHeapStatistics().used_heap_size;
    for (let i = 0; i < chunk; i++) call();
    deltas.push(getHeapStatistics().used_heap_size - before);
  }
  deltas.sort((x, y) => x - y);
  return { median: deltas[4]!, deltas };
}

test('fast path: one unconditional route is a cache hit; nothing is matched and nothing allocated per call', (t) => {
  const rt = table(['catalog', 'catalog-v2', 'orders', 'orders-v2'], [
    { name: 'catalog', match: { service: 'catalog' }, cluster: 'catalog-v2', timeoutMs: 100 },
    { name: 'orders-canary', match: { service: 'orders', method: { prefix: '/shop.Orders/' }, headers: [{ name: 'x-canary', exact: 'yes' }] }, cluster: 'orders-v2' },
  ]);
  const authority = 'catalog.shop.svc.cluster.local:50051';
  const headers: IncomingHttpHeaders = { ':path': '/shop.Catalog/Get', 'x-canary': 'yes', 'content-type': 'application/grpc' };
  const first = rt.resolve(authority, headers[':path'], headers);
  t.is(first?.name, 'catalog');

  // The single-route service never reaches the matcher; the conditional one does.
  const proto = CompiledMatch.prototype;
  const original = proto.matches;
  let tested = 0;
  proto.matches = function (this: CompiledMatch, ...args: Parameters<typeof original>) {
    tested++;
    return original.apply(this, args);
  };
  try {
    for (let i = 0; i < 100; i++) t.is(rt.resolve(authority, headers[':path'], headers), first);
    t.is(tested, 0, 'a single unconditional route is returned without testing any match');
    rt.resolve('orders', '/shop.Orders/Get', headers);
    t.is(tested, 1);
  } finally {
    proto.matches = original;
  }

  // Parsing an authority allocates (split, slice, lower-casing): a flat heap therefore also shows the
  // per-authority cache answering. A route object, closure or array per call would show as megabytes.
  const chunk = 100_000;
  const fast = heapGrowth(chunk, () => rt.resolve(authority, headers[':path'], headers));
  t.log(`single route: median heap growth per ${chunk} resolves ${fast.median} bytes (${fast.deltas.join(', ')})`);
  t.true(fast.median < 16_384, `single route allocates: ${fast.deltas.join(', ')}`);
  const pick = heapGrowth(chunk, () => first!.pickCluster());
  t.true(pick.median < 16_384, `single-cluster pickCluster allocates: ${pick.deltas.join(', ')}`);
  // Not required, but worth knowing: exact header and prefix matching on a multi-route service.
  const ordersHeaders: IncomingHttpHeaders = { 'x-canary': 'yes' };
  const matched = heapGrowth(chunk, () => rt.resolve('orders', '/shop.Orders/Get', ordersHeaders));
  t.log(`prefix + exact header match: median heap growth per ${chunk} resolves ${matched.median} bytes`);
});

test('split picks allocate nothing either', (t) => {
  const rt = table(['a', 'b', 'c'], [{ name: 'split', match: { service: 'a' }, destinations: [{ cluster: 'a', weight: 1 }, { cluster: 'b', weight: 2 }, { cluster: 'c', weight: 3 }] }]);
  const route: Route = rt.resolve('a', UNARY, {})!;
  const { median, deltas } = heapGrowth(100_000, () => route.pickCluster());
  t.true(median < 16_384, `split pickCluster allocates: ${deltas.join(', ')}`);
});

// ---- one real sidecar process, two echo servers ----

let v1: EchoServer;
let v2: EchoServer;
let sidecar: SidecarHandle;
const clients: grpc.Client[] = [];

test.before(async () => {
  v1 = await startEchoServer(0, 'v1');
  v2 = await startEchoServer(0, 'v2');
  const endpoint = (port: number) => [{ address: '127.0.0.1', port }];
  sidecar = await startSidecar({
    config: {
      clusters: [{ name: 'echo-v1', endpoints: endpoint(v1.port) }, { name: 'echo-v2', endpoints: endpoint(v2.port) }],
      routes: [
        { name: 'echo-canary', match: { service: 'echo', headers: [{ name: 'x-canary', exact: 'yes' }] }, cluster: 'echo-v2' },
        { name: 'echo', match: { service: 'echo' }, cluster: 'echo-v1' },
        { name: 'methods-unary', match: { service: 'methods', method: { exact: UNARY } }, cluster: 'echo-v2' },
        { name: 'methods', match: { service: 'methods' }, cluster: 'echo-v1' },
        { name: 'split', match: { service: 'split' }, destinations: [{ cluster: 'echo-v1', weight: 90 }, { cluster: 'echo-v2', weight: 10 }] },
      ],
    },
  });
});

test.after.always(async () => {
  for (const c of clients) c.close();
  await sidecar?.proc.stop();
  v1?.server.forceShutdown();
  v2?.server.forceShutdown();
});

function client(authority: string): grpc.Client {
  const c = echoClient(`127.0.0.1:${sidecar.outbound}`, authority);
  clients.push(c);
  return c;
}

function metadata(entries: Record<string, string>): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(entries)) md.set(k, v);
  return md;
}

async function servedBy(c: grpc.Client, md: Record<string, string> = {}): Promise<string> {
  const { headers } = await unary(c, Buffer.from('hi'), metadata(md));
  return String(headers.get('x-served-by')[0] ?? '');
}

test.serial('sidecar: a header match sends x-canary: yes to v2, everything else to v1', async (t) => {
  const c = client('echo.default.svc.cluster.local:50051');
  for (let i = 0; i < 20; i++) {
    t.is(await servedBy(c, { 'x-canary': 'yes' }), 'v2');
    t.is(await servedBy(c, { 'x-canary': 'no' }), 'v1');
    t.is(await servedBy(c), 'v1');
  }
});

/** Runs `call`, returns how many calls each server received meanwhile. */
async function callsDuring(call: () => Promise<unknown>): Promise<{ v1: number; v2: number }> {
  const before = { v1: v1.record.calls, v2: v2.record.calls };
  await call();
  return { v1: v1.record.calls - before.v1, v2: v2.record.calls - before.v2 };
}

test.serial('sidecar: a method match sends /remora.test.Echo/Unary to v2 and the other methods to v1', async (t) => {
  const c = client('methods');
  t.is(await servedBy(c), 'v2');
  t.deepEqual(await callsDuring(() => unary(c, Buffer.from('x'))), { v1: 0, v2: 1 });
  const serverStream = () =>
    new Promise<void>((resolve, reject) => {
      const call = c.makeServerStreamRequest(EchoService.serverStream.path, identity, identity, Buffer.from('go'), metadata({ 'x-count': '2' }));
      call.on('data', () => {});
      call.on('error', reject);
      call.on('end', () => resolve());
    });
  const clientStream = () =>
    new Promise<void>((resolve, reject) => {
      const call = c.makeClientStreamRequest(EchoService.clientStream.path, identity, identity, new grpc.Metadata(), (err) => (err ? reject(err) : resolve()));
      call.write(Buffer.from('a'));
      call.end();
    });
  const bidi = () =>
    new Promise<void>((resolve, reject) => {
      const call = c.makeBidiStreamRequest(EchoService.bidi.path, identity, identity, new grpc.Metadata());
      call.on('data', () => call.end());
      call.on('error', reject);
      call.on('end', () => resolve());
      call.write(Buffer.from('ping'));
    });
  t.deepEqual(await callsDuring(serverStream), { v1: 1, v2: 0 }, 'server streaming');
  t.deepEqual(await callsDuring(clientStream), { v1: 1, v2: 0 }, 'client streaming');
  t.deepEqual(await callsDuring(bidi), { v1: 1, v2: 0 }, 'bidi streaming');
  // A method the server does not have: routed (to v1) like any other path, then UNIMPLEMENTED from the app.
  const err = await unary(c, Buffer.from('x'), new grpc.Metadata(), {}, '/remora.test.Echo/Nope').then(
    () => undefined,
    (e: grpc.ServiceError) => e,
  );
  t.is(err?.code, grpc.status.UNIMPLEMENTED);
});

test.serial('sidecar: a 90/10 canary split over 1000 calls lands within 5 sigma', async (t) => {
  const c = client('split:50051');
  const n = 1000;
  const seen: Record<string, number> = {};
  for (let done = 0; done < n; done += 50) {
    const batch = await Promise.all(Array.from({ length: 50 }, () => servedBy(c)));
    for (const by of batch) seen[by] = (seen[by] ?? 0) + 1;
  }
  t.log(`1000 calls: ${JSON.stringify(seen)}`);
  t.is((seen.v1 ?? 0) + (seen.v2 ?? 0), n);
  assertShare(t, (seen.v2 ?? 0) / n, 0.1, n, 'v2');
});
