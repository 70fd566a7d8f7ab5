/**
 * Hostile input on a real sidecar's inbound mTLS port (PERMISSIVE: plaintext and mTLS sniffed on
 * one port), with certificates from files (no control plane): garbage, handshakes that stall,
 * clients that cannot prove a mesh identity. Expired, not-yet-valid and foreign-CA certificates
 * are covered by test/mtls.test.ts; here are the refusals it does not cover, and many callers of
 * both kinds on fresh connections at once, each reaching the app with its own identity.
 * Limits: LISTENER_LIMITS in sidecar/listener/listener.ts, docs/hostile-input.md.
 */
import test, { type ExecutionContext } from 'ava';
import net from 'node:net';
import tls from 'node:tls';
import { startEchoServer, unary, grpc, type EchoServer } from './fixtures/echo-service.js';
import { startSidecar, eventually, type SidecarHandle } from './harness/sidecars.js';
import { certificateFileArgs, leafFrom, otherCa, type TestCa, type TestLeaf } from './harness/mesh-ca.js';
import { RawH2, keepCalling, openSockets, type Bystander } from './harness/raw-h2.js';
import { LISTENER_LIMITS } from '../sidecar/listener/listener.js';

const id = (sa: string): string => `spiffe://cluster.local/ns/default/sa/${sa}`;
const SERVER_ID = id('server');
const xfcc = (caller: string): string => `By=${SERVER_ID};URI=${id(caller)}`;

interface Rig {
  readonly ca: TestCa;
  readonly app: EchoServer;
  readonly sc: SidecarHandle;
}

async function rig(t: ExecutionContext): Promise<Rig> {
  const ca = await otherCa();
  const app = await startEchoServer(0, 'app');
  const sc = await startSidecar({ appPort: app.port, clusters: {}, extraArgs: await certificateFileArgs(ca, SERVER_ID) });
  t.teardown(async () => {
    await sc.proc.stop();
    app.server.forceShutdown();
  });
  await eventually('the sidecar holds its certificate', async () => (await fetch(`http://127.0.0.1:${sc.stats}/healthz/ready`)).status === 200, 20_000);
  return { ca, app, sc };
}

/** A client of its own connection (grpc-js would share one between identical clients otherwise). */
function client(port: number, creds: grpc.ChannelCredentials): grpc.Client {
  return new grpc.Client(`127.0.0.1:${port}`, creds, {
    'grpc.default_authority': 'app',
    'grpc.enable_retries': 0,
    'grpc.use_local_subchannel_pool': 1,
    // A name for TLS SNI: an IP address there is not allowed (RFC 6066) and node warns about it.
    'grpc.ssl_target_name_override': 'remora.test',
  });
}

function mtls(ca: TestCa, leaf: TestLeaf): grpc.ChannelCredentials {
  // Mesh certificates carry SPIFFE IDs, not DNS names: the chain is what the client checks.
  return grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(leaf.keyPem), Buffer.from(leaf.certPem), { checkServerIdentity: () => undefined });
}

/** The x-forwarded-client-cert the app saw for one call ('' for none), or the failure. */
async function seenBy(c: grpc.Client, md = new grpc.Metadata()): Promise<string> {
  return unary(c, Buffer.from('who'), md, { deadline: Date.now() + 5_000 }).then(
    (a) => String(a.headers.get('x-seen-client-cert')[0]),
    (e: grpc.ServiceError) => `refused: ${grpc.status[e.code]}`,
  );
}

/** An mTLS caller that must keep reaching the app as itself. */
async function bystander(t: ExecutionContext, r: Rig): Promise<Bystander> {
  const c = client(r.sc.inbound, mtls(r.ca, await leafFrom(r.ca, id('bystander'))));
  t.teardown(() => c.close());
  t.is(await seenBy(c), xfcc('bystander'));
  return keepCalling(c, {
    concurrency: 2,
    check: (answer, sent) => {
      const seen = String(answer.headers.get('x-seen-client-cert')[0]);
      if (seen !== xfcc('bystander')) return `the app saw ${JSON.stringify(seen)}`;
      return answer.response.equals(sent) ? undefined : 'wrong answer';
    },
  });
}

/** The first bytes a real TLS client sends: its ClientHello. */
async function captureClientHello(): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      server.once('connection', (s) => s.once('data', (chunk: Buffer) => { resolve(chunk); s.destroy(); }));
      tls.connect({ host: '127.0.0.1', servername: 'remora.test', port, ALPNProtocols: ['h2'], rejectUnauthorized: false }).on('error', () => {});
      setTimeout(() => reject(new Error('no ClientHello captured')), 5_000);
    });
  } finally {
    server.close();
  }
}

/** A TLS connection to the port; resolves once handshaken (or refused: then `error`). */
async function tlsConnect(port: number, opts: tls.ConnectionOptions): Promise<{ socket: tls.TLSSocket; error?: Error; closed: Promise<number> }> {
  const socket = tls.connect({ host: '127.0.0.1', servername: 'remora.test', port, checkServerIdentity: () => undefined, ...opts });
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  const error = await new Promise<Error | undefined>((resolve) => {
    socket.once('secureConnect', () => resolve(undefined));
    socket.once('error', (e) => resolve(e));
    socket.once('close', () => resolve(new Error('closed during the handshake')));
    setTimeout(() => resolve(new Error('no handshake within 10 s')), 10_000);
  });
  socket.on('error', () => {});
  socket.resume(); // a socket nobody reads never learns that the peer closed it
  return error === undefined ? { socket, closed } : { socket, error, closed };
}

test('garbage and stalled handshakes on the mTLS port are closed within bounds while an mTLS caller keeps being served', async (t) => {
  const r = await rig(t);
  const by = await bystander(t, r);
  const socketsBefore = await openSockets(r.sc.proc.pid);
  const leaf = await leafFrom(r.ca, id('stalled'));
  const hello = await captureClientHello();
  const started = Date.now();

  // A TLS record header, then noise: refused at once.
  const tlsNoise = await RawH2.connect(r.sc.inbound, { preface: false });
  await tlsNoise.send(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40]), Buffer.alloc(64, 0xee)]));
  // Neither TLS nor HTTP/2: a readable refusal, then closed.
  const noise = await RawH2.connect(r.sc.inbound, { preface: false });
  await noise.send(Buffer.alloc(64 * 1024, 0x58));
  // A ClientHello, then silence.
  const hellos = await Promise.all(Array.from({ length: 10 }, async () => {
    const c = await RawH2.connect(r.sc.inbound, { preface: false });
    await c.send(hello);
    return c;
  }));
  // A complete mTLS handshake with a good certificate, then never the HTTP/2 preface.
  const mute = await Promise.all(Array.from({ length: 5 }, () => tlsConnect(r.sc.inbound, { ALPNProtocols: ['h2'], ca: r.ca.certPem, key: leaf.keyPem, cert: leaf.certPem })));
  t.teardown(() => {
    for (const c of [tlsNoise, noise, ...hellos]) c.destroy();
    for (const m of mute) m.socket.destroy();
  });
  t.deepEqual(mute.map((m) => m.error?.message), mute.map(() => undefined), 'the certificate was good');

  t.true(await tlsNoise.closedWithin(3_000), 'TLS noise: still open');
  t.true(await noise.closedWithin(3_000), 'noise: still open');
  t.regex(noise.bytesIn > 0 ? 'answered' : '', /answered/, 'noise got the readable HTTP/1.1 refusal');
  const bound = LISTENER_LIMITS.handshakeTimeoutMs + 4_000;
  const closedAt = await Promise.all([
    ...hellos.map(async (c) => (await c.closedWithin(bound)) ? c.closedAt! : Infinity),
    ...mute.map((m) => Promise.race([m.closed, new Promise<number>((res) => setTimeout(() => res(Infinity), bound))])),
  ]);
  const held = closedAt.map((at) => at - started);
  t.log(`stalled handshakes closed after ${held.join(', ')} ms (10 ClientHellos, then 5 silent after TLS)`);
  t.true(held.every((ms) => ms <= bound + 1_000), `a stalled handshake was held ${Math.max(...held)} ms`);
  t.true(held.every((ms) => ms >= LISTENER_LIMITS.handshakeTimeoutMs - 500), `a stalled handshake was closed after only ${Math.min(...held)} ms`);
  const until = Date.now() + 10_000;
  while ((await openSockets(r.sc.proc.pid)) > socketsBefore && Date.now() < until) await new Promise((res) => setTimeout(res, 200));
  t.true((await openSockets(r.sc.proc.pid)) <= socketsBefore, 'the sidecar let go of every socket');
  const report = await by.stop();
  t.deepEqual(report.failures, []);
  t.is(r.sc.proc.exitCode, null);
});

test('refused at the handshake: no client certificate, a certificate without a SPIFFE ID, one from another CA with the mesh CA\'s very name, TLS 1.2, no h2 in ALPN; none reaches the app', async (t) => {
  const r = await rig(t);
  const by = await bystander(t, r);
  const good = await leafFrom(r.ca, id('caller'));
  // otherCa() names every CA alike, so this one has exactly the mesh CA's subject: only the
  // signature can tell them apart.
  const namesake = await otherCa();
  const cases: ReadonlyArray<readonly [string, tls.ConnectionOptions]> = [
    ['no client certificate', { ALPNProtocols: ['h2'], ca: r.ca.certPem }],
    ['the mesh CA\'s own certificate (a valid chain, no SPIFFE ID)', { ALPNProtocols: ['h2'], ca: r.ca.certPem, key: r.ca.keyPem, cert: r.ca.certPem }],
    ['a certificate from a CA with the mesh CA\'s name', { ALPNProtocols: ['h2'], ca: r.ca.certPem, ...(await leafFrom(namesake, id('caller')).then((l) => ({ key: l.keyPem, cert: l.certPem }))) }],
    ['TLS 1.2', { ALPNProtocols: ['h2'], ca: r.ca.certPem, key: good.keyPem, cert: good.certPem, maxVersion: 'TLSv1.2' }],
    ['ALPN http/1.1 only', { ALPNProtocols: ['http/1.1'], ca: r.ca.certPem, key: good.keyPem, cert: good.certPem }],
  ];
  for (const [what, opts] of cases) {
    const conn = await tlsConnect(r.sc.inbound, opts);
    // TLS 1.3 client authentication completes after the client's handshake: a refusal can come
    // as an alert right after 'secureConnect'. Either way the sidecar must close the connection.
    const closedBy = await Promise.race([conn.closed.then(() => true), new Promise<boolean>((res) => setTimeout(() => res(false), 3_000))]);
    t.true(closedBy, `${what}: the sidecar kept the connection`);
    conn.socket.destroy();
  }
  // And a gRPC caller with each kind of bad credentials gets no answer from the app.
  const noCert = client(r.sc.inbound, grpc.credentials.createSsl(Buffer.from(r.ca.certPem), null, null, { checkServerIdentity: () => undefined }));
  const caOnly = client(r.sc.inbound, mtls(r.ca, { keyPem: r.ca.keyPem, certPem: r.ca.certPem }));
  const foreign = client(r.sc.inbound, mtls(r.ca, await leafFrom(namesake, id('caller'))));
  t.teardown(() => { for (const c of [noCert, caOnly, foreign]) c.close(); });
  for (const [what, c] of [['no certificate', noCert], ['no SPIFFE ID', caOnly], ['namesake CA', foreign]] as const) {
    t.regex(await seenBy(c), /^refused: UNAVAILABLE$/, what);
  }
  const report = await by.stop();
  t.deepEqual(report.failures, []);
  t.is(r.sc.proc.exitCode, null);
});

test('PERMISSIVE: 40 callers on fresh connections at once, plaintext and mTLS interleaved, each reaches the app as itself; a plaintext caller cannot forge an identity', async (t) => {
  const r = await rig(t);
  const hello = await captureClientHello();
  // Stalled handshakes on the same port while the callers connect.
  const stalled = await Promise.all(Array.from({ length: 10 }, async () => {
    const c = await RawH2.connect(r.sc.inbound, { preface: false });
    await c.send(hello);
    return c;
  }));
  t.teardown(() => { for (const c of stalled) c.destroy(); });
  const callers = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
    const name = `caller-${i}`;
    const creds = i % 2 === 0 ? grpc.credentials.createInsecure() : mtls(r.ca, await leafFrom(r.ca, id(name)));
    return { name, plaintext: i % 2 === 0, c: client(r.sc.inbound, creds) };
  }));
  t.teardown(() => { for (const { c } of callers) c.close(); });
  const seen = await Promise.all(callers.map(async ({ c }) => Promise.all([seenBy(c), seenBy(c), seenBy(c)])));
  t.deepEqual(seen, callers.map(({ name, plaintext }) => Array(3).fill(plaintext ? '' : xfcc(name))));
  // A plaintext caller that sends the header itself: the app never sees it.
  const forged = new grpc.Metadata();
  forged.set('x-forwarded-client-cert', xfcc('admin'));
  t.is(await seenBy(callers[0]!.c, forged), '', 'a forged x-forwarded-client-cert reached the app');
  t.is(r.sc.proc.exitCode, null);
});
