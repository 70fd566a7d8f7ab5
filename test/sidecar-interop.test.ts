/**
 * The gRPC interop cases, run four ways: directly against the server, through one sidecar,
 * through a sidecar pair (client sidecar outbound → server sidecar inbound → server), and through
 * a pair that talks mutual TLS (the server side in STRICT mode, so plaintext cannot sneak in).
 * Every case must behave the same on all paths.
 */
import test, { type ExecutionContext } from 'ava';
import { startEchoServer, echoClient, unary, EchoService, grpc, identity, type ServerRecord } from './fixtures/echo-service.js';
import { startSidecar, type SidecarHandle } from './harness/sidecars.js';
import { certificateFileArgs, otherCa } from './harness/mesh-ca.js';

interface Path {
  readonly name: string;
  target: string;
}

const paths: Path[] = [
  { name: 'direct', target: '' },
  { name: 'one sidecar', target: '' },
  { name: 'sidecar pair', target: '' },
  { name: 'mTLS pair', target: '' },
];
let server: grpc.Server;
let record: ServerRecord;
const sidecars: SidecarHandle[] = [];
const clients = new Map<string, grpc.Client>();

test.before(async () => {
  const echo = await startEchoServer();
  server = echo.server;
  record = echo.record;
  const one = await startSidecar({ clusters: { echo: [echo.port] } });
  const serverSide = await startSidecar({ appPort: echo.port, service: 'echo' });
  const clientSide = await startSidecar({ clusters: { echo: [serverSide.inbound] } });
  const ca = await otherCa();
  const strict = { security: { mtls: [{ namespace: 'remora-system', mode: 'STRICT' }] } };
  const serverTls = await startSidecar({ appPort: echo.port, service: 'echo', config: strict, extraArgs: await certificateFileArgs(ca, 'spiffe://cluster.local/ns/default/sa/echo') });
  const clientTls = await startSidecar({
    config: { clusters: [{ name: 'echo', endpoints: [{ address: '127.0.0.1', port: serverTls.inbound, identity: 'spiffe://cluster.local/ns/default/sa/echo' }] }] },
    extraArgs: await certificateFileArgs(ca, 'spiffe://cluster.local/ns/default/sa/interop-client'),
  });
  sidecars.push(one, serverSide, clientSide, serverTls, clientTls);
  paths[3]!.target = `127.0.0.1:${clientTls.outbound}`;
  paths[0]!.target = `127.0.0.1:${echo.port}`;
  paths[1]!.target = `127.0.0.1:${one.outbound}`;
  paths[2]!.target = `127.0.0.1:${clientSide.outbound}`;
  for (const p of paths) clients.set(p.name, echoClient(p.target, 'echo.default.svc.cluster.local:50051'));
});

test.after.always(async () => {
  for (const c of clients.values()) c.close();
  await Promise.all(sidecars.map((s) => s.proc.stop()));
  server?.forceShutdown();
});

const client = (p: Path) => clients.get(p.name)!;

function md(entries: Record<string, string | Buffer>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(entries)) m.set(k, v);
  return m;
}

function failed(p: Promise<unknown>): Promise<grpc.ServiceError> {
  return p.then(
    () => { throw new Error('call succeeded but should have failed'); },
    (e: grpc.ServiceError) => e,
  );
}

function each(title: string, fn: (t: ExecutionContext, p: Path) => Promise<void>): void {
  for (const p of paths) test(`${title} [${p.name}]`, (t) => fn(t, p));
}

each('empty unary', async (t, p) => {
  const { response } = await unary(client(p), Buffer.alloc(0));
  t.is(response.length, 0);
});

each('16 MiB unary request and response', async (t, p) => {
  const big = Buffer.alloc(16 * 1024 * 1024, 7);
  big.writeUInt32BE(0xdeadbeef, big.length - 4);
  const { response } = await unary(client(p), big);
  t.is(response.length, big.length);
  t.true(response.equals(big));
});

each('server streaming: 500 messages arrive in order', async (t, p) => {
  const call = client(p).makeServerStreamRequest(EchoService.serverStream.path, identity, identity, Buffer.from('go'), md({ 'x-count': '500', 'x-size': '1000' }));
  let n = 0;
  for await (const m of call) {
    t.is((m as Buffer).length, 1000);
    n++;
  }
  t.is(n, 500);
});

each('client streaming: 200 messages counted by the server', async (t, p) => {
  const res = await new Promise<Buffer>((resolve, reject) => {
    const call = client(p).makeClientStreamRequest(EchoService.clientStream.path, identity, identity, new grpc.Metadata(), {}, (err, r) => (err ? reject(err) : resolve(r!)));
    for (let i = 0; i < 200; i++) call.write(Buffer.alloc(100, i));
    call.end();
  });
  t.deepEqual(JSON.parse(res.toString()), { bytes: 20_000, messages: 200 });
});

each('bidirectional ping-pong', async (t, p) => {
  const call = client(p).makeBidiStreamRequest(EchoService.bidi.path, identity, identity, new grpc.Metadata());
  const it = call[Symbol.asyncIterator]();
  for (let i = 0; i < 50; i++) {
    const ping = Buffer.from(`ping ${i}`);
    call.write(ping);
    const { value } = await it.next();
    t.true((value as Buffer).equals(ping));
  }
  call.end();
  t.true((await it.next()).done);
});

each('metadata in headers and trailers, ascii and -bin, both ways', async (t, p) => {
  const bin = Buffer.from([0, 1, 2, 250, 255]);
  const sent = md({ 'x-echo-text': 'hello world; a=b, c', 'x-echo-data-bin': bin });
  const result = await new Promise<{ headers: grpc.Metadata; trailers: grpc.Metadata }>((resolve, reject) => {
    let headers = new grpc.Metadata();
    const call = client(p).makeUnaryRequest(EchoService.unary.path, identity, identity, Buffer.from('x'), sent, {}, (err) => err && reject(err));
    call.on('metadata', (m) => (headers = m));
    call.on('status', (s) => resolve({ headers, trailers: s.metadata }));
  });
  t.true((result.headers.get('x-echo-data-bin')[0] as Buffer).equals(bin));
  t.true((result.trailers.get('x-echo-data-bin')[0] as Buffer).equals(bin));
  t.is(result.trailers.get('x-echo-text')[0], sent.get('x-echo-text')[0]);
});

for (const mode of ['trailers-only', 'after headers'] as const) {
  each(`error status with a UTF-8 message (${mode})`, async (t, p) => {
    const message = 'stock is ε-low: 在庫 ✗ 100%';
    const extra: Record<string, string> = mode === 'after headers' ? { 'x-fail-after-headers': '1' } : {};
    const err = await failed(unary(client(p), Buffer.from('x'), md({ 'x-status': String(grpc.status.FAILED_PRECONDITION), 'x-message': encodeURIComponent(message), ...extra })));
    t.is(err.code, grpc.status.FAILED_PRECONDITION);
    t.is(err.details, message);
  });
}

each('unimplemented method passes through as UNIMPLEMENTED', async (t, p) => {
  const err = await failed(unary(client(p), Buffer.from('x'), undefined, {}, '/remora.test.Echo/NoSuchMethod'));
  t.is(err.code, grpc.status.UNIMPLEMENTED);
});

each('deadline: grpc-timeout reaches the server and expiry is DEADLINE_EXCEEDED', async (t, p) => {
  const ok = await unary(client(p), Buffer.from('x'), undefined, { deadline: Date.now() + 5000 });
  t.is(ok.status.code, 0);
  const seen = Number(ok.headers.get('x-seen-deadline-ms')[0]);
  t.true(seen > 4000 && seen <= 5000, `server saw a deadline ${seen} ms away`);
  const started = Date.now();
  const err = await failed(unary(client(p), Buffer.from('x'), md({ 'x-sleep-ms': '3000' }), { deadline: Date.now() + 300 }));
  t.is(err.code, grpc.status.DEADLINE_EXCEEDED);
  t.true(Date.now() - started < 2000);
});

for (const p of [paths[2]!, paths[3]!]) test.serial(`client cancel reaches the server as a cancellation [${p.name}]`, async (t) => {
  const before = record.cancelled;
  const call = client(p).makeServerStreamRequest(EchoService.serverStream.path, identity, identity, Buffer.from('go'), md({ 'x-count': '100000', 'x-size': '100', 'x-sleep-ms': '5' }));
  await new Promise<void>((resolve) => call.once('data', () => resolve()));
  call.on('error', () => {});
  call.cancel();
  const deadline = Date.now() + 3000;
  while (record.cancelled === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.is(record.cancelled, before + 1, 'the server saw the cancel');
});
