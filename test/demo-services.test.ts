/**
 * The demo shop: real `remora demo-service` / `demo-client` / `demo` processes on loopback, called
 * with the ts-proto generated grpc-js clients (and raw node:http2 where the wire shape matters).
 */
import test, { type ExecutionContext } from 'ava';
// Serial throughout: each test starts real node processes, and on a small shared machine
// starting a dozen at once makes them miss startRemora's port-open timeout.
import http2 from 'node:http2';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, MethodOptions_IdempotencyLevel } from '@bufbuild/protobuf/wkt';
import { service as healthService } from 'grpc-health-check';
import { parse as parseYaml } from 'yaml';
import { startRemora, type Proc } from '../lib/processes.js';
import {
  CatalogServiceClient,
  CatalogServiceService,
  GetProductRequest,
  type CatalogServiceServer,
  type ListProductsResponse,
} from '../protos/gen/remora/demo/v1/catalog.js';
import {
  InventoryServiceClient,
  InventoryServiceService,
  type InventoryServiceServer,
} from '../protos/gen/remora/demo/v1/inventory.js';
import { OrdersServiceClient, OrderStatus, type TrackOrdersResponse } from '../protos/gen/remora/demo/v1/orders.js';
import { fixedLayout, meshConfigYaml, sidecarArgs } from '../demo-services/mesh-layout.js';

const creds = grpc.credentials.createInsecure();

/** Port 0 and a ports file: no race with other processes for a port picked in advance. */
async function startService(t: ExecutionContext, args: string[]): Promise<{ proc: Proc; port: number; address: string }> {
  const proc = await startRemora(['demo-service', '--port', '0', ...args], { portsFile: true });
  t.teardown(() => proc.stop('SIGKILL'));
  const port = proc.ports.grpc!;
  return { proc, port, address: `127.0.0.1:${port}` };
}

function client<C extends grpc.Client>(t: ExecutionContext, make: () => C): C {
  const c = make();
  t.teardown(() => c.close());
  return c;
}

interface Unary<Req, Res> {
  (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void): grpc.ClientUnaryCall;
}

/** Resolves with the response and the response headers; rejects with the ServiceError. */
function call<Req, Res>(
  fn: Unary<Req, Res>,
  req: Req,
  opts: Partial<grpc.CallOptions> = {},
  md = new grpc.Metadata(),
): Promise<{ res: Res; headers: grpc.Metadata | undefined }> {
  return new Promise((resolve, reject) => {
    let headers: grpc.Metadata | undefined;
    const c = fn(req, md, opts, (err, res) => (err ? reject(err) : resolve({ res, headers })));
    c.on('metadata', (m: grpc.Metadata) => (headers = m));
  });
}

function callError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  return p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: grpc.ServiceError) => err,
  );
}

function collect<T>(stream: grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>): Promise<{ items: T[]; status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    const items: T[] = [];
    stream.on('data', (item: T) => items.push(item));
    stream.on('error', () => {});
    stream.on('status', (status: grpc.StatusObject) => resolve({ items, status }));
  });
}

function healthCheck(address: string, service = ''): Promise<string> {
  const c = new grpc.Client(address, creds);
  const m = healthService.Check!;
  return new Promise<string>((resolve, reject) => {
    c.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { service }, (err, res) => {
      c.close();
      if (err) reject(err);
      else resolve(String((res as { status?: unknown }).status));
    });
  });
}

/** One raw gRPC call over node:http2, to see where the status travelled. */
function rawCall(port: number, method: string, body: Uint8Array): Promise<{ headers: http2.IncomingHttpHeaders; trailers?: http2.IncomingHttpHeaders; trailersOnly: boolean }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': method, 'content-type': 'application/grpc', te: 'trailers' });
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    Buffer.from(body).copy(frame, 5);
    req.end(frame);
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    let trailersOnly = false;
    req.on('response', (h, flags) => {
      headers = h;
      trailersOnly = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    req.on('trailers', (h) => (trailers = h));
    req.resume();
    req.on('close', () => {
      session.close();
      resolve({ headers, trailers, trailersOnly });
    });
  });
}

test.serial('catalog answers GetProduct and streams ListProducts, with the instance header', async (t) => {
  const { address } = await startService(t, ['--name', 'catalog', '--instance', 'cat-1']);
  const c = client(t, () => new CatalogServiceClient(address, creds));

  const { res, headers } = await call(c.getProduct.bind(c), { id: 'p-002' });
  t.is(res.product?.name, 'Cordless drill');
  t.is(res.product?.priceCents, 8999);
  t.is(res.instance, 'cat-1');
  t.deepEqual(headers?.get('x-remora-instance'), ['cat-1']);

  const missing = await callError(call(c.getProduct.bind(c), { id: 'nope' }));
  t.is(missing.code, grpc.status.NOT_FOUND);

  const all = await collect<ListProductsResponse>(c.listProducts({ category: '', nameContains: '', pageSize: 0 }));
  t.is(all.status.code, grpc.status.OK);
  t.true(all.items.length >= 10);
  const tools = await collect<ListProductsResponse>(c.listProducts({ category: 'tools', nameContains: '', pageSize: 3 }));
  t.is(tools.items.length, 3);
  t.true(tools.items.every((i) => i.product?.category === 'tools' && i.instance === 'cat-1'));
});

test.serial('inventory: GetStock, non-idempotent Reserve, client-streaming RestockBatch', async (t) => {
  const { address } = await startService(t, ['--name', 'inventory', '--initial-stock', '10', '--instance', 'inv-1']);
  const c = client(t, () => new InventoryServiceClient(address, creds));

  const stock = await call(c.getStock.bind(c), { productId: 'p-001' });
  t.like(stock.res, { productId: 'p-001', available: 10, reserved: 0, instance: 'inv-1' });

  const r1 = await call(c.reserve.bind(c), { productId: 'p-001', quantity: 4, orderId: 'o1' });
  const r2 = await call(c.reserve.bind(c), { productId: 'p-001', quantity: 4, orderId: 'o1' });
  t.is(r1.res.remaining, 6);
  t.is(r2.res.remaining, 2, 'replaying Reserve reserves again: it is not idempotent');
  t.not(r1.res.reservationId, r2.res.reservationId);
  t.is((await callError(call(c.reserve.bind(c), { productId: 'p-001', quantity: 3, orderId: '' }))).code, grpc.status.FAILED_PRECONDITION);
  t.is((await callError(call(c.reserve.bind(c), { productId: 'zzz', quantity: 1, orderId: '' }))).code, grpc.status.NOT_FOUND);
  t.is((await callError(call(c.reserve.bind(c), { productId: 'p-001', quantity: 0, orderId: '' }))).code, grpc.status.INVALID_ARGUMENT);

  const summary = await new Promise<{ itemsReceived: number; unitsAdded: number; productsTouched: number }>((resolve, reject) => {
    const s = c.restockBatch((err, res) => (err ? reject(err) : resolve(res)));
    s.write({ productId: 'p-001', quantity: 5 });
    s.write({ productId: 'p-002', quantity: 7 });
    s.write({ productId: 'p-001', quantity: 1 });
    s.end();
  });
  t.deepEqual(summary, { itemsReceived: 3, unitsAdded: 13, productsTouched: 2, instance: 'inv-1' });
  t.is((await call(c.getStock.bind(c), { productId: 'p-001' })).res.available, 8);
});

test.serial('orders: PlaceOrder through one upstream serving catalog and inventory, GetOrder, bidi TrackOrders', async (t) => {
  const shop = await startService(t, ['--name', 'catalog,inventory', '--instance', 'shop-1', '--initial-stock', '5']);
  const { address } = await startService(t, ['--name', 'orders', '--instance', 'ord-1', '--upstream', shop.address]);
  const c = client(t, () => new OrdersServiceClient(address, creds));

  const placed = await call(c.placeOrder.bind(c), { productId: 'p-005', quantity: 2, customerId: 'c1' });
  const order = placed.res.order!;
  t.like(placed.res, { instance: 'ord-1', catalogInstance: 'shop-1', inventoryInstance: 'shop-1' });
  t.like(order, { productId: 'p-005', productName: 'Cast iron skillet', quantity: 2, totalCents: 6998, status: OrderStatus.ORDER_STATUS_PLACED });
  t.truthy(order.reservationId);

  const got = await call(c.getOrder.bind(c), { id: order.id });
  t.is(got.res.order?.id, order.id);
  t.is((await callError(call(c.getOrder.bind(c), { id: 'nope' }))).code, grpc.status.NOT_FOUND);

  const stream = c.trackOrders();
  const tracked = collect<TrackOrdersResponse>(stream);
  stream.write({ orderId: order.id });
  stream.write({ orderId: 'unknown' });
  stream.end();
  const { items, status } = await tracked;
  t.is(status.code, grpc.status.OK);
  t.deepEqual(
    items.map((i) => [i.orderId, i.status]),
    [
      [order.id, OrderStatus.ORDER_STATUS_PLACED],
      ['unknown', OrderStatus.ORDER_STATUS_UNSPECIFIED],
    ],
  );

  // Downstream statuses come back as they were: unknown product, then stock exhausted (5 - 2 < 4).
  t.is((await callError(call(c.placeOrder.bind(c), { productId: 'none', quantity: 1, customerId: '' }))).code, grpc.status.NOT_FOUND);
  const short = await callError(call(c.placeOrder.bind(c), { productId: 'p-005', quantity: 4, customerId: '' }));
  t.is(short.code, grpc.status.FAILED_PRECONDITION);
  t.regex(short.details, /^inventory\.Reserve: /);
});

test.serial('orders addresses callees by :authority and propagates deadline, cancellation and x-request-id', async (t) => {
  const seen: { method: string; host: string; deadline: grpc.Deadline; requestId: grpc.MetadataValue[] }[] = [];
  let stalledCancelled: (() => void) | undefined;
  const cancelled = new Promise<void>((resolve) => (stalledCancelled = resolve));
  const record = (method: string, c: grpc.ServerUnaryCall<unknown, unknown>) =>
    seen.push({ method, host: c.getHost(), deadline: c.getDeadline(), requestId: c.metadata.get('x-request-id') });
  const catalog: CatalogServiceServer = {
    getProduct(c, cb) {
      record('GetProduct', c);
      // Product "stall" never answers: only the propagated deadline/cancellation ends the call.
      if (c.request.id === 'stall') {
        c.on('cancelled', () => stalledCancelled?.());
        return;
      }
      cb(null, { product: { id: c.request.id, name: 'Thing', category: 'x', priceCents: 100 }, instance: 'fake' });
    },
    listProducts(c) {
      c.end();
    },
  };
  const inventory: InventoryServiceServer = {
    getStock(_c, cb) {
      cb({ code: grpc.status.UNIMPLEMENTED });
    },
    reserve(c, cb) {
      record('Reserve', c);
      cb(null, { reservationId: 'r1', remaining: 1, instance: 'fake' });
    },
    restockBatch(_c, cb) {
      cb({ code: grpc.status.UNIMPLEMENTED });
    },
  };
  const server = new grpc.Server();
  server.addService(CatalogServiceService, catalog);
  server.addService(InventoryServiceService, inventory);
  const upstreamPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  t.teardown(() => server.forceShutdown());

  const { address } = await startService(t, [
    '--name', 'orders',
    '--upstream', `127.0.0.1:${upstreamPort}`,
    '--catalog-authority', 'catalog.shop.svc.cluster.local',
  ]);
  const c = client(t, () => new OrdersServiceClient(address, creds));
  const md = new grpc.Metadata();
  md.set('x-request-id', 'req-42');
  const deadline = Date.now() + 5000;
  await call(c.placeOrder.bind(c), { productId: 'p-1', quantity: 1, customerId: '' }, { deadline }, md);

  t.deepEqual(seen.map((s) => [s.method, s.host, s.requestId]), [
    ['GetProduct', 'catalog.shop.svc.cluster.local', ['req-42']],
    ['Reserve', 'inventory', ['req-42']],
  ]);
  // grpc-timeout is relative, so each hop's transit time shifts the absolute deadline a little later.
  for (const s of seen) {
    const d = s.deadline instanceof Date ? s.deadline.getTime() : s.deadline;
    t.true(Number.isFinite(d) && d <= deadline + 1000, `downstream deadline ${d} follows the caller's ${deadline}`);
  }

  const started = Date.now();
  const err = await callError(call(c.placeOrder.bind(c), { productId: 'stall', quantity: 1, customerId: '' }, { deadline: Date.now() + 300 }));
  t.is(err.code, grpc.status.DEADLINE_EXCEEDED);
  await cancelled; // the stalled downstream call ended too, because the deadline went with it
  t.true(Date.now() - started < 3000);
});

test.serial('health reports SERVING, then NOT_SERVING while draining on SIGTERM; exit 0', async (t) => {
  const { proc, address } = await startService(t, ['--name', 'catalog', '--drain-delay-ms', '1500']);
  t.is(await healthCheck(address), 'SERVING');
  t.is(await healthCheck(address, 'remora.demo.v1.CatalogService'), 'SERVING');
  await t.throwsAsync(healthCheck(address, 'remora.demo.v1.OrdersService'), { any: true });

  process.kill(proc.pid, 'SIGTERM');
  let status = 'SERVING';
  const until = Date.now() + 1400;
  while (status === 'SERVING' && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    status = await healthCheck(address, 'remora.demo.v1.CatalogService');
  }
  t.is(status, 'NOT_SERVING');
  t.is(await proc.exited, 0);
  t.regex(proc.output(), /"msg":"listening"/);
});

test.serial('reflection lists the services and carries idempotency_level', async (t) => {
  const { address } = await startService(t, ['--name', 'catalog,orders']);
  const require = createRequire(import.meta.url);
  const reflectionProto = path.resolve(path.dirname(require.resolve('@grpc/reflection')), '../proto/grpc/reflection/v1/reflection.proto');
  const def = protoLoader.loadSync(reflectionProto, { keepCase: true, defaults: true, oneofs: true });
  const m = (def['grpc.reflection.v1.ServerReflection'] as protoLoader.ServiceDefinition).ServerReflectionInfo!;
  const c = client(t, () => new grpc.Client(address, creds));

  interface ReflectionResponse {
    list_services_response?: { service: { name: string }[] };
    file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  }
  const stream = c.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize);
  const done = collect<ReflectionResponse>(stream as grpc.ClientDuplexStream<unknown, ReflectionResponse>);
  stream.write({ list_services: '' });
  stream.write({ file_containing_symbol: 'remora.demo.v1.CatalogService' });
  stream.end();
  const { items } = await done;

  const names = items[0]?.list_services_response?.service.map((s) => s.name).sort();
  t.deepEqual(names, ['grpc.health.v1.Health', 'remora.demo.v1.CatalogService', 'remora.demo.v1.OrdersService']);

  const files = (items[1]?.file_descriptor_response?.file_descriptor_proto ?? []).map((b) => fromBinary(FileDescriptorProtoSchema, b));
  const catalog = files.flatMap((f) => f.service).find((s) => s.name === 'CatalogService');
  t.truthy(catalog);
  const level = (name: string) => catalog?.method.find((x) => x.name === name)?.options?.idempotencyLevel;
  t.is(level('GetProduct'), MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS);
  t.is(level('ListProducts'), MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS);
  const product = files.flatMap((f) => f.messageType).find((msg) => msg.name === 'Product');
  t.true(product?.field.some((f) => f.name === 'price_cents'), 'field names as written in the .proto');
});

for (const mode of ['headers', 'trailers'] as const) {
  test.serial(`error knob, ${mode} mode: every call gets the configured status`, async (t) => {
    const { port, address } = await startService(t, [
      '--name', 'catalog',
      '--instance', 'bad-1',
      '--error-rate', '1',
      '--error-code', 'resource_exhausted',
      '--error-message', 'slow down',
      '--error-mode', mode,
    ]);
    const c = client(t, () => new CatalogServiceClient(address, creds));
    let headers: grpc.Metadata | undefined;
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const u = c.getProduct({ id: 'p-001' }, (e) => resolve(e!));
      u.on('metadata', (m: grpc.Metadata) => (headers = m));
    });
    t.is(err.code, grpc.status.RESOURCE_EXHAUSTED);
    t.is(err.details, 'slow down');
    t.deepEqual(err.metadata.get('x-remora-fault'), ['injected']);

    const streamed = await collect(c.listProducts({ category: '', nameContains: '', pageSize: 0 }));
    t.is(streamed.status.code, grpc.status.RESOURCE_EXHAUSTED);
    t.is(streamed.items.length, 0);

    const raw = await rawCall(port, '/remora.demo.v1.CatalogService/GetProduct', GetProductRequest.encode({ id: 'p-001' }).finish());
    t.is(raw.headers['x-remora-instance'], 'bad-1');
    if (mode === 'headers') {
      t.true(raw.trailersOnly, 'status in the only HEADERS frame');
      t.is(raw.headers['grpc-status'], String(grpc.status.RESOURCE_EXHAUSTED));
      t.is(raw.trailers, undefined);
      t.is(headers, undefined, 'grpc-js saw no separate response headers');
    } else {
      t.false(raw.trailersOnly);
      t.is(raw.headers['grpc-status'], undefined);
      t.is(raw.trailers?.['grpc-status'], String(grpc.status.RESOURCE_EXHAUSTED));
      t.deepEqual(headers?.get('x-remora-instance'), ['bad-1']);
    }
  });
}

test.serial('latency knob delays every call', async (t) => {
  const { address } = await startService(t, ['--name', 'catalog', '--latency-ms', '300', '--latency-jitter-ms', '100']);
  const c = client(t, () => new CatalogServiceClient(address, creds));
  await call(c.getProduct.bind(c), { id: 'p-001' }); // connection set-up out of the way
  const start = Date.now();
  await call(c.getProduct.bind(c), { id: 'p-001' });
  const took = Date.now() - start;
  t.true(took >= 295 && took < 1500, `took ${took} ms`);
});

test.serial('crash-after kills the process on the call after N', async (t) => {
  const { proc, address } = await startService(t, ['--name', 'catalog', '--crash-after', '2']);
  const c = client(t, () => new CatalogServiceClient(address, creds));
  await call(c.getProduct.bind(c), { id: 'p-001' });
  await call(c.getProduct.bind(c), { id: 'p-002' });
  const err = await callError(call(c.getProduct.bind(c), { id: 'p-003' }));
  t.is(err.code, grpc.status.UNAVAILABLE);
  t.is(await proc.exited, 'SIGKILL');
});

test.serial('bad flag values are usage errors (exit 2) that name the flag', async (t) => {
  const cases: [string[], RegExp][] = [
    [['demo-service', '--name', 'catalog,payments'], /--name: unknown service "payments"/],
    [['demo-service'], /--name is required/],
    [['demo-service', '--name', 'catalog', '--error-rate', '2'], /--error-rate must be a number between 0 and 1/],
    [['demo-service', '--name', 'catalog', '--error-code', 'OK'], /--error-code must be a gRPC error status/],
    [['demo-service', '--name', 'catalog', '--error-mode', 'body'], /--error-mode must be/],
    [['demo-service', '--name', 'catalog', '--latency-ms', '-5'], /--latency-ms must be >= 0/],
    [['demo-client', '--scenario', 'payments'], /--scenario must be one of/],
    [['demo-client', '--rps', '0'], /--rps must be 1\.\.10000/],
    [['demo', '--base-port', '65530'], /--base-port must be 0 or 1024\.\./],
  ];
  await Promise.all(
    cases.map(async ([args, message]) => {
      const proc = await startRemora(args);
      t.is(await proc.exited, 2, args.join(' '));
      t.regex(proc.output(), message);
    }),
  );
});

test.serial('demo-client sends a bounded number of calls and summarises them', async (t) => {
  const { address } = await startService(t, ['--name', 'catalog']);
  const proc = await startRemora(['demo-client', '--target', address, '--scenario', 'catalog', '--rps', '50', '--count', '20', '--output', 'json']);
  t.is(await proc.exited, 0);
  const lines = proc.output().trim().split('\n').map((l) => JSON.parse(l) as { kind: string; codes?: Record<string, number>; started?: number });
  const summary = lines.at(-1)!;
  t.is(summary.kind, 'summary');
  t.is(summary.started, 20);
  t.deepEqual(summary.codes, { OK: 20 });
});

test.serial('demo-client reports injected errors and stops after --duration-s', async (t) => {
  const { address } = await startService(t, ['--name', 'inventory', '--error-rate', '1', '--error-code', '14']);
  const started = Date.now();
  const proc = await startRemora(['demo-client', '--target', address, '--scenario', 'inventory', '--rps', '10', '--duration-s', '2']);
  t.is(await proc.exited, 0);
  t.true(Date.now() - started < 10_000);
  const out = proc.output();
  t.regex(out, /^\[\s+1s\] started=\d+ ok=0 UNAVAILABLE=\d+ p50=/m);
  t.regex(out, /^summary: elapsed=\S+ started=\d+ ok=0 UNAVAILABLE=\d+/m);
});

test.serial('mesh layout: fixed ports per service and one static config pointing at sidecar inbound ports', (t) => {
  const layout = fixedLayout(16000);
  t.deepEqual(layout.catalog, { app: 16010, outbound: 16011, inbound: 16012, admin: 16013, stats: 16014 });
  t.is(layout.orders.outbound, 16031);
  const config = parseYaml(meshConfigYaml(layout)) as { clusters: { name: string; endpoints: { address: string; port: number }[] }[] };
  t.deepEqual(
    config.clusters.map((c) => [c.name, c.endpoints]),
    [
      ['catalog', [{ address: '127.0.0.1', port: 16012 }]],
      ['inventory', [{ address: '127.0.0.1', port: 16022 }]],
      ['orders', [{ address: '127.0.0.1', port: 16032 }]],
    ],
  );
  const meshArgs = sidecarArgs('inventory', layout, { controlPlane: '127.0.0.1:16003' });
  t.is(meshArgs[meshArgs.indexOf('--control-plane') + 1], '127.0.0.1:16003');
  t.false(meshArgs.includes('--config'));
  const args = sidecarArgs('inventory', layout, { config: '/tmp/mesh.yaml' });
  const flag = (name: string) => args[args.indexOf(name) + 1];
  t.is(args[0], 'sidecar');
  t.is(flag('--config'), '/tmp/mesh.yaml');
  t.is(flag('--service'), 'inventory');
  t.is(flag('--app-port'), '16020');
  t.is(flag('--outbound-port'), '16021');
  t.is(flag('--inbound-port'), '16022');
  t.is(flag('--admin-port'), '16023');
  t.is(flag('--stats-port'), '16024');
});

test.serial('remora demo --direct runs the shop and the client, then stops everything and exits 0', async (t) => {
  const proc = await startRemora(['demo', '--direct', '--base-port', '0', '--duration-s', '3']);
  t.teardown(() => proc.stop('SIGKILL'));
  t.is(await proc.exited, 0, proc.output());
  const out = proc.output();
  t.regex(out, /the shop is up \(direct, no sidecars\)/);
  t.regex(out, /catalog\+inventory\s+\d+\s+app 127\.0\.0\.1:\d+/);
  const ok = Number(/^summary: .* ok=(\d+)/m.exec(out)?.[1] ?? 0);
  t.true(ok >= 5, out);
  t.notRegex(out, /^summary: .*(UNAVAILABLE|INTERNAL|DEADLINE_EXCEEDED)=/m);
  t.regex(out, /remora demo: stopped/);
});

for (const mode of ['control plane', 'static config'] as const) {
test.serial(`remora demo with sidecars (${mode}) carries orders traffic end to end`, async (t) => {
  const extra = mode === 'static config' ? ['--static'] : [];
  const proc = await startRemora(['demo', '--base-port', '0', '--duration-s', '4', '--scenario', 'mixed', '--rps', '10', ...extra]);
  t.teardown(() => proc.stop('SIGKILL'));
  t.is(await proc.exited, 0, proc.output());
  const out = proc.output();
  t.regex(out, /orders-sidecar\s+\d+\s+outbound :\d+/);
  const ok = Number(/^summary: .* ok=(\d+)/m.exec(out)?.[1] ?? 0);
  t.true(ok >= 10, out);
  t.notRegex(out, /^summary: .*(UNAVAILABLE|INTERNAL|UNIMPLEMENTED|DEADLINE_EXCEEDED)=/m, out);
  if (mode === 'control plane') t.regex(out, /control-plane\s+\d+\s+discovery 127\.0\.0\.1:\d+/);
});
}
