/**
 * What the chaos drills found, each through a real `remora sidecar` process and real gRPC servers
 * on loopback:
 * - a fresh sidecar retries the very first call that fails (it learns the methods' idempotency by
 *   reflection as soon as a retrying route's cluster is applied, not at the first failure);
 * - the panic threshold: endpoints all failing health checks still take calls;
 * - a unary answer is held until its status, so a connection lost between message and status is
 *   retried however long the gap; a stream's messages are not held back;
 * - per-try timeouts: an attempt cut after its response headers ends DEADLINE_EXCEEDED (not
 *   INTERNAL), and one stuck on a connect that never completes moves on at once.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { freePort, startRemora, type Proc } from '../lib/processes.js';
import { loadDemoPackage } from '../demo-services/protos.js';
import { CatalogServiceClient, GetProductRequest, GetProductResponse, ListProductsRequest, ListProductsResponse } from '../protos/gen/remora/demo/v1/catalog.js';
import { startEchoServer, echoClient, unary, type EchoServer } from './fixtures/echo-service.js';
import { eventually, getJson, startSidecar, type SidecarHandle } from './harness/sidecars.js';

const CATALOG = 'remora.demo.v1.CatalogService';
const RETRIES = { maxAttempts: 3, retryOn: ['UNAVAILABLE'], backoffBaseMs: 5, backoffMaxMs: 20 };

interface ClusterView {
  name: string;
  panic: boolean;
  idempotency: { methods: number; learning: boolean; problem: string | null };
  stats: { retries: number };
  endpoints: { address: string; healthy: boolean | null; lastHealthCheck: string | null }[];
}

const clusterOf = async (sc: SidecarHandle, name: string): Promise<ClusterView | undefined> =>
  (await getJson<ClusterView[]>(sc.admin, '/clusters')).find((c) => c.name === name);

async function startDemo(t: ExecutionContext, instance: string, extra: string[] = []): Promise<Proc> {
  const proc = await startRemora(['demo-service', '--name', 'catalog', '--port', '0', '--instance', instance, ...extra], { portsFile: true });
  t.teardown(() => proc.stop());
  return proc;
}

function catalogClient(t: ExecutionContext, sc: SidecarHandle): CatalogServiceClient {
  const client = new CatalogServiceClient(`127.0.0.1:${sc.outbound}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'catalog', 'grpc.enable_retries': 0 });
  t.teardown(() => client.close());
  return client;
}

function getProduct(client: CatalogServiceClient): Promise<{ code: number; instance: string; details: string }> {
  return new Promise((resolve) => {
    client.getProduct(GetProductRequest.fromPartial({ id: 'p-001' }), new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => {
      resolve(err ? { code: err.code, instance: '', details: err.details } : { code: 0, instance: res.instance, details: '' });
    });
  });
}

function catalogSidecar(t: ExecutionContext, ports: number[]): Promise<SidecarHandle> {
  return startSidecar({
    config: {
      clusters: [{ name: 'catalog', endpoints: ports.map((port) => ({ address: '127.0.0.1', port })), loadBalancing: { policy: 'ROUND_ROBIN' } }],
      routes: [{ match: { service: 'catalog' }, cluster: 'catalog', timeoutMs: 8000, retries: RETRIES }],
    },
  }).then((sc) => {
    t.teardown(() => sc.proc.stop());
    return sc;
  });
}

test('a fresh sidecar retries the very first call that fails UNAVAILABLE (idempotency learnt when the route is applied)', async (t) => {
  const failing = await startDemo(t, 'failing', ['--error-rate', '1', '--error-code', 'UNAVAILABLE']);
  const steady = await startDemo(t, 'steady');
  const ports = [failing.ports.grpc!, steady.ports.grpc!];

  // Calls at once: round robin over two endpoints sends the first or the second call to the
  // failing one first. Nothing was learnt by a failure before; GetProduct is NO_SIDE_EFFECTS only
  // per the servers' reflection, so a retry proves the sidecar knew it in time.
  const sc = await catalogSidecar(t, ports);
  const client = catalogClient(t, sc);
  const first = await getProduct(client);
  const second = await getProduct(client);
  t.deepEqual([first, second].map((r) => `${r.code} ${r.instance} ${r.details}`), ['0 steady ', '0 steady ']);
  const view = await clusterOf(sc, 'catalog');
  t.true((view?.stats.retries ?? 0) >= 1, `the failing replica was tried and the call retried: ${JSON.stringify(view?.stats)}`);

  // Without any call at all, a sidecar whose route retries learns the methods on its own.
  const idle = await catalogSidecar(t, ports);
  const learnt = await eventually('the idle sidecar learns the methods by reflection', async () => {
    const v = await clusterOf(idle, 'catalog');
    return v !== undefined && v.idempotency.methods > 0 && v;
  });
  t.true(learnt.idempotency.learning);
  t.is(learnt.stats.retries, 0);
});

test('panic threshold: three endpoints all failing health checks still take calls, which succeed on the two that answer', async (t) => {
  const apps: EchoServer[] = [await startEchoServer(0, 'a'), await startEchoServer(0, 'b')];
  t.teardown(() => { for (const a of apps) a.server.forceShutdown(); });
  for (const a of apps) a.setServing(false);
  const dead = await freePort();
  const endpoints = [...apps.map((a) => a.port), dead].map((port) => ({ address: '127.0.0.1', port }));
  const healthCheck = { intervalMs: 200, timeoutMs: 200, unhealthyThreshold: 1 };
  const sc = await startSidecar({
    config: {
      clusters: [
        { name: 'echo', endpoints, healthCheck, loadBalancing: { policy: 'ROUND_ROBIN' } },
        { name: 'strict', endpoints, healthCheck, panicThresholdPercent: 0 },
      ],
      // Retries only for connects refused by the dead one: a call is never sent twice otherwise.
      routes: [
        { match: { service: 'echo' }, cluster: 'echo', retries: RETRIES },
        { match: { service: 'strict' }, cluster: 'strict' },
      ],
    },
  });
  t.teardown(() => sc.proc.stop());
  for (const name of ['echo', 'strict']) {
    await eventually(`every endpoint of ${name} fails its health checks`, async () => {
      const v = await clusterOf(sc, name);
      return v !== undefined && v.endpoints.every((e) => e.healthy === false) && v;
    });
  }
  t.true((await clusterOf(sc, 'echo'))?.panic, '/clusters shows the panic');
  t.false((await clusterOf(sc, 'strict'))?.panic, 'panicThresholdPercent 0: never');

  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
  t.teardown(() => client.close());
  const before = apps.map((a) => a.record.calls);
  const served = new Map<string, number>();
  for (let i = 0; i < 30; i++) {
    const { headers } = await unary(client, Buffer.from('x'), undefined, { deadline: Date.now() + 10_000 });
    const by = String(headers.get('x-served-by')[0]);
    served.set(by, (served.get(by) ?? 0) + 1);
  }
  t.log('30 calls in a panic, served by', Object.fromEntries(served));
  t.deepEqual([...served.keys()].sort(), ['a', 'b'], 'both live endpoints take calls');
  t.true(apps.every((a, i) => a.record.calls > before[i]!));

  const strict = echoClient(`127.0.0.1:${sc.outbound}`, 'strict');
  t.teardown(() => strict.close());
  const err = await unary(strict, Buffer.from('x')).then(() => undefined, (e: grpc.ServiceError) => e);
  t.is(err?.code, grpc.status.UNAVAILABLE);
  t.regex(err?.details ?? '', /no endpoint of cluster strict can take the call: 3 endpoints, 3 failing health checks/);
});

/**
 * A catalog server that answers GetProduct with its message, then loses the connection `gapMs`
 * later, before any status: grpc-js sends a unary answer's message and status together, so the
 * method is registered here as a server stream (the same bytes on the wire). ListProducts sends
 * two messages `gapMs` apart. It serves reflection of the real catalog.proto, so the sidecar knows
 * GetProduct is unary and ListProducts a server stream.
 */
async function startLossyCatalog(t: ExecutionContext, gapMs: number): Promise<{ port: number; hits: () => number }> {
  const server = new grpc.Server();
  const raw = <T>(path: string): grpc.MethodDefinition<Buffer, T> => ({
    path, requestStream: false, responseStream: true,
    requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b,
    responseSerialize: (v: T) => v as Buffer, responseDeserialize: (b: Buffer) => b as T,
  });
  let hits = 0;
  const product = { id: 'p-001', name: 'lossy', category: 'x', priceCents: 1 };
  server.addService({ getProduct: raw<Buffer>(`/${CATALOG}/GetProduct`), listProducts: raw<Buffer>(`/${CATALOG}/ListProducts`) }, {
    getProduct: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      hits++;
      call.write(Buffer.from(GetProductResponse.encode({ product, instance: 'lossy' }).finish()));
      setTimeout(() => server.forceShutdown(), gapMs);
    },
    listProducts: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const msg = Buffer.from(ListProductsResponse.encode({ product, instance: 'lossy' }).finish());
      call.write(msg);
      setTimeout(() => { call.write(msg); call.end(); }, gapMs);
    },
  });
  new ReflectionService(loadDemoPackage(), { services: [CATALOG] }).addToServer(server);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.teardown(() => server.forceShutdown());
  return { port, hits: () => hits };
}

test('a unary answer waits for its status: a connection lost 400 ms after the message is retried; a stream is not held back', async (t) => {
  const GAP_MS = 400;
  const lossy = await startLossyCatalog(t, GAP_MS);
  const steady = await startDemo(t, 'steady');
  const sc = await startSidecar({
    config: {
      clusters: [
        { name: 'catalog', endpoints: [lossy.port, steady.ports.grpc!].map((port) => ({ address: '127.0.0.1', port })), loadBalancing: { policy: 'ROUND_ROBIN' } },
        { name: 'lossy', endpoints: [{ address: '127.0.0.1', port: lossy.port }] },
      ],
      routes: [
        { match: { service: 'catalog' }, cluster: 'catalog', timeoutMs: 8000, retries: RETRIES },
        { match: { service: 'lossy' }, cluster: 'lossy', timeoutMs: 8000, retries: RETRIES },
      ],
    },
  });
  t.teardown(() => sc.proc.stop());
  for (const name of ['catalog', 'lossy']) {
    await eventually(`${name} knows its methods`, async () => ((await clusterOf(sc, name))?.idempotency.methods ?? 0) > 0);
  }

  // ListProducts (a known server stream): the first message goes downstream at once, not with the second.
  const streams = new CatalogServiceClient(`127.0.0.1:${sc.outbound}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'lossy' });
  t.teardown(() => streams.close());
  const arrivals: number[] = [];
  await new Promise<void>((resolve, reject) => {
    const call = streams.listProducts(ListProductsRequest.fromPartial({}), new grpc.Metadata(), { deadline: Date.now() + 10_000 });
    call.on('data', () => arrivals.push(Date.now()));
    call.on('error', reject);
    call.on('end', () => resolve());
  });
  t.is(arrivals.length, 2);
  t.true(arrivals[1]! - arrivals[0]! >= GAP_MS / 2, `the stream's messages arrived ${arrivals[1]! - arrivals[0]!} ms apart (sent ${GAP_MS} ms apart)`);

  // GetProduct until a call lands on the lossy server first (round robin: the first or second).
  const client = catalogClient(t, sc);
  const results: string[] = [];
  for (let i = 0; i < 6 && lossy.hits() === 0; i++) {
    const r = await getProduct(client);
    results.push(`${r.code} ${r.instance} ${r.details}`);
  }
  t.is(lossy.hits(), 1);
  t.true(results.every((r) => r === '0 steady '), `every call answered by the steady replica: ${JSON.stringify(results)}`);
  t.true(((await clusterOf(sc, 'catalog'))?.stats.retries ?? 0) >= 1);
});

test('an attempt cut by the per-try timeout after its response headers came ends DEADLINE_EXCEEDED, not INTERNAL', async (t) => {
  // Response headers, then nothing: what a replica stalled by a starved CPU looks like.
  const server = new grpc.Server();
  let calls = 0;
  server.addService({ stall: { path: '/remora.test.Stall/Unary', requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } }, {
    stall: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
      calls++;
      call.sendMetadata(new grpc.Metadata());
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.teardown(() => server.forceShutdown());
  const sc = await startSidecar({
    config: {
      clusters: [{ name: 'stall', endpoints: [{ address: '127.0.0.1', port }] }],
      routes: [{ match: { service: 'stall' }, cluster: 'stall', timeoutMs: 8000, retries: { ...RETRIES, retryOn: ['DEADLINE_EXCEEDED'], perTryTimeoutMs: 300, maxAttempts: 2, retryNonIdempotent: true } }],
    },
  });
  t.teardown(() => sc.proc.stop());
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'stall');
  t.teardown(() => client.close());
  const err = await unary(client, Buffer.from('x'), undefined, { deadline: Date.now() + 10_000 }, '/remora.test.Stall/Unary').then(() => undefined, (e: grpc.ServiceError) => e);
  t.is(err?.code, grpc.status.DEADLINE_EXCEEDED, err?.details);
  t.regex(err?.details ?? '', /per-try timeout of 300 ms exceeded on 127\.0\.0\.1:\d+ \(attempt 2; no retry: all 2 attempts made\)/);
  t.is(calls, 2);
});

test('a per-try timeout moves a call on from an endpoint whose connect never completes', async (t) => {
  // A listener whose process stopped accepting (blocked, without using CPU): once its accept queue
  // is full, the kernel ignores new SYNs and a connect to it just waits, like a peer that is dying.
  const silent = spawn(process.execPath, ['-e', `
    const net = require('node:net');
    const server = net.createServer();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(server.address().port + '\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0));
    });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => { silent.kill('SIGKILL'); });
  const silentPort = await new Promise<number>((resolve, reject) => {
    silent.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
    silent.once('exit', (code) => reject(new Error(`the silent listener exited with ${code}`)));
  });
  // Fill its accept queue, so that the sidecar's own connect is the one left waiting.
  const fillers: Socket[] = [];
  for (let i = 0; i < 4; i++) fillers.push(connect(silentPort, '127.0.0.1').on('error', () => {}));
  t.teardown(() => { for (const s of fillers) s.destroy(); });
  await new Promise((r) => setTimeout(r, 200));

  const app = await startEchoServer(0, 'live');
  t.teardown(() => app.server.forceShutdown());
  const sc = await startSidecar({
    config: {
      clusters: [{ name: 'echo', endpoints: [silentPort, app.port].map((port) => ({ address: '127.0.0.1', port })), loadBalancing: { policy: 'ROUND_ROBIN' }, connectTimeoutMs: 20_000 }],
      routes: [{ match: { service: 'echo' }, cluster: 'echo', timeoutMs: 10_000, retries: { ...RETRIES, retryOn: ['DEADLINE_EXCEEDED', 'UNAVAILABLE'], perTryTimeoutMs: 300, retryNonIdempotent: true } }],
    },
  });
  t.teardown(() => sc.proc.stop());
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
  t.teardown(() => client.close());
  const took: number[] = [];
  for (let i = 0; i < 4; i++) {
    const started = Date.now();
    const { headers } = await unary(client, Buffer.from('x'), undefined, { deadline: Date.now() + 15_000 });
    took.push(Date.now() - started);
    t.is(String(headers.get('x-served-by')[0]), 'live');
  }
  t.log(`call durations ${took.join(', ')} ms (per-try timeout 300 ms, connect timeout 20 s)`);
  t.true(took.every((ms) => ms < 5_000), 'no call waited for the connect to give up');
  t.true(((await clusterOf(sc, 'echo'))?.stats.retries ?? 0) >= 1, 'a first attempt went to the silent endpoint');
});
