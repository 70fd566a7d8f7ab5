/**
 * Timeouts, deadlines, retries and fault injection through real sidecars and real gRPC servers.
 */
import test from 'ava';
import { startEchoServer, echoClient, unary, EchoService, grpc, identity, type EchoServer } from './fixtures/echo-service.js';
import { startSidecar, type SidecarHandle } from './harness/sidecars.js';
import { freePort, startRemora } from '../lib/processes.js';
import {
  CatalogServiceClient,
  GetProductRequest,
} from '../protos/gen/remora/demo/v1/catalog.js';
import { InventoryServiceClient, ReserveRequest } from '../protos/gen/remora/demo/v1/inventory.js';

const md = (entries: Record<string, string>): grpc.Metadata => {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(entries)) m.set(k, v);
  return m;
};
const code = (p: Promise<unknown>) => p.then(() => 0, (e: grpc.ServiceError) => e.code);

async function echoMesh(route: Record<string, unknown>, apps: EchoServer[]): Promise<{ sc: SidecarHandle; client: grpc.Client }> {
  const sc = await startSidecar({
    config: {
      clusters: [{ name: 'echo', endpoints: apps.map((a) => ({ address: '127.0.0.1', port: a.port })), loadBalancing: { policy: 'ROUND_ROBIN' } }],
      routes: [{ match: { service: 'echo' }, cluster: 'echo', ...route }],
    },
  });
  return { sc, client: echoClient(`127.0.0.1:${sc.outbound}`, 'echo') };
}

const RETRY_ALL = { maxAttempts: 3, retryOn: ['UNAVAILABLE'], backoffBaseMs: 5, backoffMaxMs: 20, retryNonIdempotent: true };

for (const mode of ['trailers-only', 'after-headers'] as const) {
  test(`a retry on UNAVAILABLE in ${mode === 'trailers-only' ? 'a trailers-only answer' : 'trailers after headers'} succeeds on the next attempt`, async (t) => {
    const app = await startEchoServer(0, 'a');
    const { sc, client } = await echoMesh({ retries: RETRY_ALL }, [app]);
    t.teardown(async () => { client.close(); await sc.proc.stop(); app.server.forceShutdown(); });
    app.failNext = { count: 2, code: grpc.status.UNAVAILABLE, mode };
    const before = app.record.calls;
    const res = await unary(client, Buffer.from('hello'));
    t.is(res.response.toString(), 'hello');
    t.is(app.record.calls - before, 3, 'two failed attempts and one that worked');
  });
}

test('no retry once the response has started; other statuses and exhausted attempts pass through', async (t) => {
  const app = await startEchoServer(0, 'a');
  const { sc, client } = await echoMesh({ retries: RETRY_ALL }, [app]);
  t.teardown(async () => { client.close(); await sc.proc.stop(); app.server.forceShutdown(); });
  // A server stream that sends one message and fails 100 ms later: by then the message has gone
  // downstream (held at most 20 ms waiting for a status), so no retry.
  const before = app.record.calls;
  const call = client.makeServerStreamRequest(EchoService.serverStream.path, identity, identity, Buffer.from('x'),
    md({ 'x-count': '1', 'x-size': '10', 'x-sleep-ms': '100', 'x-status': String(grpc.status.UNAVAILABLE), 'x-message': 'broke' }));
  let got = 0;
  const err = await new Promise<grpc.ServiceError>((resolve) => { call.on('data', () => got++); call.on('error', resolve); });
  t.is(err.code, grpc.status.UNAVAILABLE);
  t.is(got, 1);
  t.is(app.record.calls - before, 1);
  app.failNext = { count: 1, code: grpc.status.FAILED_PRECONDITION, mode: 'trailers-only' };
  t.is(await code(unary(client, Buffer.from('x'))), grpc.status.FAILED_PRECONDITION, 'not in retryOn: passed through');
  app.failNext = { count: 5, code: grpc.status.UNAVAILABLE, mode: 'trailers-only' };
  const b2 = app.record.calls;
  t.is(await code(unary(client, Buffer.from('x'))), grpc.status.UNAVAILABLE);
  t.is(app.record.calls - b2, 3, 'maxAttempts 3');
});

test('a method not known to be idempotent is not retried after its request reached the server; a refused connect is', async (t) => {
  const app = await startEchoServer(0, 'a');
  const dead = await freePort();
  const sc = await startSidecar({
    config: {
      clusters: [{ name: 'echo', endpoints: [{ address: '127.0.0.1', port: dead }, { address: '127.0.0.1', port: app.port }], loadBalancing: { policy: 'ROUND_ROBIN' } }],
      routes: [{ match: { service: 'echo' }, cluster: 'echo', retries: { maxAttempts: 3, retryOn: ['UNAVAILABLE'], backoffBaseMs: 5, backoffMaxMs: 20 } }],
    },
  });
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
  t.teardown(async () => { client.close(); await sc.proc.stop(); app.server.forceShutdown(); });
  // Round robin sends some first attempts to the dead port: those were never delivered, so retried.
  for (let i = 0; i < 6; i++) t.is(await code(unary(client, Buffer.from('x'))), 0);
  app.failNext = { count: 1, code: grpc.status.UNAVAILABLE, mode: 'trailers-only' };
  const before = app.record.calls;
  t.is(await code(unary(client, Buffer.from('x'))), grpc.status.UNAVAILABLE, 'echo has no descriptors: unknown idempotency, no retry');
  t.is(app.record.calls - before, 1);
});

test('idempotency from server reflection: NO_SIDE_EFFECTS reads are retried, a non-idempotent Reserve is not', async (t) => {
  const flaky = await startRemora(['demo-service', '--name', 'catalog,inventory', '--port', '0', '--error-rate', '0.5', '--error-code', 'UNAVAILABLE'], { portsFile: true });
  const sc = await startSidecar({
    config: {
      clusters: [{ name: 'shop', endpoints: [{ address: '127.0.0.1', port: flaky.ports.grpc! }] }],
      routes: [
        { match: { service: 'catalog' }, cluster: 'shop', retries: { maxAttempts: 8, retryOn: ['UNAVAILABLE'], backoffBaseMs: 1, backoffMaxMs: 5, minRetriesPerSecond: 1000 } },
        { match: { service: 'inventory' }, cluster: 'shop', retries: { maxAttempts: 8, retryOn: ['UNAVAILABLE'], backoffBaseMs: 1, backoffMaxMs: 5, minRetriesPerSecond: 1000 } },
      ],
    },
  });
  const opts = { 'grpc.default_authority': 'catalog' };
  const catalog = new CatalogServiceClient(`127.0.0.1:${sc.outbound}`, grpc.credentials.createInsecure(), opts);
  const inventory = new InventoryServiceClient(`127.0.0.1:${sc.outbound}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'inventory' });
  t.teardown(async () => { catalog.close(); inventory.close(); await sc.proc.stop(); await flaky.stop(); });
  // The sidecar asks the cluster's reflection when a retrying route first needs to know (until
  // then it does not retry, the safe answer): a few warm-up calls, then the measured ones.
  for (let i = 0; i < 6; i++) await new Promise((resolve) => catalog.getProduct(GetProductRequest.fromPartial({ id: 'p-001' }), () => resolve(undefined)));
  await new Promise((r) => setTimeout(r, 500));
  let readFailures = 0;
  for (let i = 0; i < 40; i++) {
    const c = await new Promise<number>((resolve) => catalog.getProduct(GetProductRequest.fromPartial({ id: 'p-001' }), (err) => resolve(err ? err.code : 0)));
    if (c !== 0) readFailures++;
  }
  let writeFailures = 0;
  for (let i = 0; i < 40; i++) {
    const c = await new Promise<number>((resolve) => inventory.reserve(ReserveRequest.fromPartial({ productId: 'p-001', quantity: 1, orderId: `o-${i}` }), (err) => resolve(err ? err.code : 0)));
    if (c === grpc.status.UNAVAILABLE) writeFailures++;
  }
  t.log(`error rate 50%: GetProduct (NO_SIDE_EFFECTS) failed ${readFailures}/40, Reserve (not idempotent) ${writeFailures}/40`);
  t.true(readFailures <= 1, 'reads are retried');
  t.true(writeFailures >= 8, 'writes are not retried once they reached the server');
});

test('the retry budget caps the extra load on a 100% failing upstream', async (t) => {
  const app = await startEchoServer(0, 'a');
  app.failUnary = grpc.status.UNAVAILABLE;
  const { sc, client } = await echoMesh({ retries: { ...RETRY_ALL, maxAttempts: 5, budgetPercent: 20, minRetriesPerSecond: 1 } }, [app]);
  t.teardown(async () => { client.close(); await sc.proc.stop(); app.server.forceShutdown(); });
  const calls = 300;
  const before = app.record.calls;
  for (let i = 0; i < calls; i++) await code(unary(client, Buffer.from('x')));
  const extra = (app.record.calls - before - calls) / calls;
  t.log(`${calls} calls, ${app.record.calls - before} attempts: ${(extra * 100).toFixed(1)}% extra (budget 20% + 1/s; without a budget up to 400%)`);
  t.true(extra <= 0.2 + 15 / calls, `extra load ${(extra * 100).toFixed(1)}%`);
});

test('deadlines: the route timeout answers DEADLINE_EXCEEDED, caps the caller\'s grpc-timeout and propagates the remainder', async (t) => {
  const app = await startEchoServer(0, 'a');
  const server = await startSidecar({ appPort: app.port, service: 'echo' });
  const { sc, client } = await (async () => {
    const s = await startSidecar({
      config: {
        clusters: [{ name: 'echo', endpoints: [{ address: '127.0.0.1', port: server.inbound }] }],
        routes: [{ match: { service: 'echo' }, cluster: 'echo', timeoutMs: 1000 }],
      },
    });
    return { sc: s, client: echoClient(`127.0.0.1:${s.outbound}`, 'echo') };
  })();
  t.teardown(async () => { client.close(); await sc.proc.stop(); await server.proc.stop(); app.server.forceShutdown(); });
  const ok = await unary(client, Buffer.from('x'), undefined, { deadline: Date.now() + 10_000 });
  const seen = Number(ok.headers.get('x-seen-deadline-ms')[0]);
  t.true(seen > 0 && seen <= 1000, `the server two hops away saw ${seen} ms: the caller's 10 s capped at the route's 1 s`);
  const started = Date.now();
  const err = await unary(client, Buffer.from('x'), md({ 'x-sleep-ms': '3000' })).then(() => undefined, (e: grpc.ServiceError) => e);
  const took = Date.now() - started;
  t.is(err?.code, grpc.status.DEADLINE_EXCEEDED, 'not UNAVAILABLE');
  // Whoever notices first answers: this sidecar's timer, or the server enforcing the grpc-timeout it was sent.
  t.regex(err?.details ?? '', /deadline/i);
  t.true(took >= 900 && took < 2000, `answered after ${took} ms`);
});

test('per-try timeout: a slow first attempt is cut and retried', async (t) => {
  const a = await startEchoServer(0, 'slow');
  const b = await startEchoServer(0, 'fast');
  const { sc, client } = await echoMesh({ retries: { ...RETRY_ALL, retryOn: ['DEADLINE_EXCEEDED', 'UNAVAILABLE'], perTryTimeoutMs: 200 } }, [a, b]);
  t.teardown(async () => { client.close(); await sc.proc.stop(); a.server.forceShutdown(); b.server.forceShutdown(); });
  a.delayMs = 2000;
  for (let i = 0; i < 6; i++) {
    const started = Date.now();
    const res = await unary(client, Buffer.from('x'));
    t.is(String(res.headers.get('x-served-by')[0]), 'fast', 'every call ends on the fast instance');
    t.true(Date.now() - started < 1500, 'a slow attempt was cut at the per-try timeout, not waited out');
  }
});

test('fault injection: abort a percentage of calls with a chosen status, only with a header; delay adds latency', async (t) => {
  const app = await startEchoServer(0, 'a');
  const { sc, client } = await echoMesh({
    fault: { abort: { status: 'RESOURCE_EXHAUSTED', percent: 50 }, delay: { fixedMs: 150, percent: 100 }, onlyWithHeader: { name: 'x-chaos', exact: 'on' } },
  }, [app]);
  t.teardown(async () => { client.close(); await sc.proc.stop(); app.server.forceShutdown(); });
  let fastest = Infinity;
  for (let i = 0; i < 10; i++) {
    const began = Date.now();
    t.is(await code(unary(client, Buffer.from('x'))), 0, 'no header: no fault');
    fastest = Math.min(fastest, Date.now() - began);
  }
  // The delay applies to every call with the header (100%), so were it applied without one, no
  // call could be under 150 ms; a loaded machine can make some plain calls slow, not all of them.
  t.true(fastest < 150, `the fastest call without the header took ${fastest} ms`);
  let aborted = 0;
  const started = Date.now();
  const n = 40;
  for (let i = 0; i < n; i++) if ((await code(unary(client, Buffer.from('x'), md({ 'x-chaos': 'on' })))) === grpc.status.RESOURCE_EXHAUSTED) aborted++;
  const perCall = (Date.now() - started) / n;
  t.log(`${aborted}/${n} aborted, ${perCall.toFixed(0)} ms per call with a 150 ms delay`);
  t.true(aborted >= 8 && aborted <= 32, 'about half (5-sigma bounds for 40 draws)');
  t.true(perCall >= 140);
});

test('mirroring copies calls to another cluster without slowing the real ones', async (t) => {
  const primary = await startEchoServer(0, 'primary');
  const shadow = await startEchoServer(0, 'shadow');
  shadow.delayMs = 1500;
  const sc = await startSidecar({
    config: {
      clusters: [
        { name: 'echo', endpoints: [{ address: '127.0.0.1', port: primary.port }] },
        { name: 'shadow', endpoints: [{ address: '127.0.0.1', port: shadow.port }] },
      ],
      routes: [{ match: { service: 'echo' }, cluster: 'echo', mirror: { cluster: 'shadow', percent: 50 } }],
    },
  });
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
  t.teardown(async () => { client.close(); await sc.proc.stop(); primary.server.forceShutdown(); shadow.server.forceShutdown(); });
  const n = 60;
  const started = Date.now();
  for (let i = 0; i < n; i++) t.is(String((await unary(client, Buffer.from(`m${i}`))).headers.get('x-served-by')[0]), 'primary');
  const perCall = (Date.now() - started) / n;
  await new Promise((r) => setTimeout(r, 2000));
  const mirrored = shadow.record.calls;
  t.log(`${mirrored}/${n} calls mirrored (50%), ${perCall.toFixed(1)} ms per real call while the shadow takes 1.5 s`);
  t.true(perCall < 100, 'the slow shadow does not slow the real calls');
  t.true(mirrored >= 15 && mirrored <= 45, 'about half mirrored (5-sigma bounds for 60 draws)');
  t.is(shadow.record.lastMetadata?.get('x-remora-mirror')[0], 'true');
});

test('an idle stream is cancelled after idleTimeoutMs with DEADLINE_EXCEEDED; an active one is not', async (t) => {
  const app = await startEchoServer(0, 'a');
  const { sc, client } = await echoMesh({ idleTimeoutMs: 400 }, [app]);
  t.teardown(async () => { client.close(); await sc.proc.stop(); app.server.forceShutdown(); });
  const call = client.makeBidiStreamRequest(EchoService.bidi.path, identity, identity, new grpc.Metadata());
  const it = call[Symbol.asyncIterator]();
  for (let i = 0; i < 5; i++) {
    call.write(Buffer.from(`ping ${i}`));
    await it.next();
    await new Promise((r) => setTimeout(r, 200));
  }
  const started = Date.now();
  const err = await new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
  t.is(err.code, grpc.status.DEADLINE_EXCEEDED);
  t.regex(err.details, /idle for 400 ms/);
  t.true(Date.now() - started < 1500);
});
