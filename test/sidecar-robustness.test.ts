/**
 * Bad input and misbehaving peers: the sidecar answers with a clear gRPC (or HTTP) error, never
 * hangs or crashes, and keeps serving the next call.
 */
import test from 'ava';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { startEchoServer, echoClient, unary, EchoService, grpc, identity } from './fixtures/echo-service.js';
import { startRawUpstream, rawCall, grpcFrame, answerOk, hardReset } from './fixtures/raw-h2.js';
import { startSidecar, getJson } from './harness/sidecars.js';
import { certificateFileArgs, leafFrom, otherCa } from './harness/mesh-ca.js';
import { freePort, rssBytes } from '../lib/processes.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

async function stillServes(port: number, t: { is: (a: unknown, b: unknown) => void }): Promise<void> {
  const res = await rawCall(port, { ':authority': 'echo' }, grpcFrame(Buffer.from('hi')));
  t.is(res.grpcStatus, 0);
}

test('an HTTP/1.1 request gets a readable 505, and the sidecar keeps serving', async (t) => {
  const echo = await startEchoServer();
  const sc = await startSidecar({ clusters: { echo: [echo.port] } });
  t.teardown(async () => { await sc.proc.stop(); echo.server.forceShutdown(); });
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    http.get(`http://127.0.0.1:${sc.outbound}/`, (r) => {
      let body = '';
      r.on('data', (c) => (body += c));
      r.on('end', () => resolve({ status: r.statusCode!, body }));
    }).on('error', reject);
  });
  t.is(res.status, 505);
  t.regex(res.body, /gRPC over HTTP\/2/);
  await stillServes(sc.outbound, t);
});

test('unknown :authority is UNIMPLEMENTED naming the service; missing content-type is HTTP 415', async (t) => {
  const echo = await startEchoServer();
  const sc = await startSidecar({ clusters: { echo: [echo.port] } });
  t.teardown(async () => { await sc.proc.stop(); echo.server.forceShutdown(); });
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'payments.shop.svc.cluster.local:8080');
  const err = await unary(client, Buffer.from('x')).then(() => undefined, (e: grpc.ServiceError) => e);
  client.close();
  t.is(err?.code, grpc.status.UNIMPLEMENTED);
  t.regex(err?.details ?? '', /no route for service "payments"/);

  const res = await rawCall(sc.outbound, { ':authority': 'echo', 'content-type': 'text/plain' }, Buffer.from('hello'));
  t.is(Number(res.headers[':status']), 415);
  t.regex(res.grpcMessage ?? '', /gRPC only/);
  await stillServes(sc.outbound, t);
});

test('a malformed gRPC length prefix gets an error status, and the next call works', async (t) => {
  const echo = await startEchoServer();
  const sc = await startSidecar({ clusters: { echo: [echo.port] } });
  t.teardown(async () => { await sc.proc.stop(); echo.server.forceShutdown(); });
  const bad = Buffer.from([0, 0, 0, 0, 100, 0x61, 0x62, 0x63]); // claims 100 bytes, carries 3
  const res = await rawCall(sc.outbound, { ':authority': 'echo' }, bad);
  t.truthy(res.grpcStatus, `expected an error status, got ${res.grpcStatus}`);
  t.not(res.grpcStatus, 0);
  await stillServes(sc.outbound, t);
});

test('connect failure is a fast UNAVAILABLE with the cause, not a hang', async (t) => {
  const dead = await freePort();
  const sc = await startSidecar({ clusters: { dead: [dead] } });
  t.teardown(() => sc.proc.stop());
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'dead');
  for (let i = 0; i < 3; i++) {
    const started = Date.now();
    const err = await unary(client, Buffer.from('x')).then(() => undefined, (e: grpc.ServiceError) => e);
    t.is(err?.code, grpc.status.UNAVAILABLE);
    t.regex(err?.details ?? '', new RegExp(`127\\.0\\.0\\.1:${dead}.*ECONNREFUSED`));
    t.true(Date.now() - started < 1000);
  }
  client.close();
});

test('upstream resets map to gRPC statuses: REFUSED_STREAM → UNAVAILABLE, CANCEL mid-response → CANCELLED, crash → UNAVAILABLE', async (t) => {
  const up = await startRawUpstream((stream, headers) => {
    const mode = headers['x-mode'];
    if (mode === 'refuse') stream.close(NGHTTP2_REFUSED_STREAM);
    else if (mode === 'cancel-mid') {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.write(grpcFrame(Buffer.from('partial')), () => setTimeout(() => hardReset(stream, NGHTTP2_CANCEL), 20));
    } else if (mode === 'crash') stream.session?.destroy();
    else answerOk(stream);
  });
  const sc = await startSidecar({ clusters: { echo: [up.port] } });
  t.teardown(async () => { await sc.proc.stop(); up.server.close(); });
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
  t.teardown(() => client.close());
  const code = (mode: string) =>
    new Promise<number>((resolve) => {
      const m = new grpc.Metadata();
      m.set('x-mode', mode);
      client.makeUnaryRequest(EchoService.unary.path, identity, identity, Buffer.from('x'), m, (err) => resolve(err ? err.code : 0));
    });
  t.is(await code('refuse'), grpc.status.UNAVAILABLE);
  t.is(await code('cancel-mid'), grpc.status.CANCELLED);
  t.is(await code('crash'), grpc.status.UNAVAILABLE);
  t.is(await code('ok'), 0);
});

test('a full upstream session (max concurrent streams) makes the pool open another', async (t) => {
  const up = await startRawUpstream((stream) => setTimeout(() => answerOk(stream), 300), { maxConcurrentStreams: 2 });
  const sc = await startSidecar({ clusters: { echo: [up.port] } });
  t.teardown(async () => { await sc.proc.stop(); up.server.close(); });
  // Warm one session so the sidecar has the peer's SETTINGS before the burst.
  t.is((await rawCall(sc.outbound, { ':authority': 'echo' }, grpcFrame(Buffer.from('x')))).grpcStatus, 0);
  const results = await Promise.all(Array.from({ length: 10 }, () => rawCall(sc.outbound, { ':authority': 'echo' }, grpcFrame(Buffer.from('x')))));
  t.deepEqual(results.map((r) => r.grpcStatus), Array(10).fill(0));
  t.true(up.sessions() >= 5, `upstream saw ${up.sessions()} sessions`);
});

test('a burst of calls to a cold endpoint shares one new session', async (t) => {
  const up = await startRawUpstream((stream) => setTimeout(() => answerOk(stream), 50));
  const sc = await startSidecar({ clusters: { echo: [up.port] } });
  t.teardown(async () => { await sc.proc.stop(); up.server.close(); });
  const results = await Promise.all(Array.from({ length: 20 }, () => rawCall(sc.outbound, { ':authority': 'echo' }, grpcFrame(Buffer.from('x')))));
  t.deepEqual(results.map((r) => r.grpcStatus), Array(20).fill(0));
  t.is(up.sessions(), 1);
});

test('GOAWAY from upstream: the in-flight call finishes and new calls use a new session', async (t) => {
  let first = true;
  let firstArrived: () => void;
  const arrived = new Promise<void>((r) => (firstArrived = r));
  const up = await startRawUpstream((stream, _h, session) => {
    if (first) {
      first = false;
      session.close(); // graceful GOAWAY: this stream still completes
      firstArrived();
      setTimeout(() => answerOk(stream, Buffer.from('first')), 300);
    } else answerOk(stream, Buffer.from('second'));
  });
  const sc = await startSidecar({ clusters: { echo: [up.port] } });
  t.teardown(async () => { await sc.proc.stop(); up.server.close(); });
  const a = rawCall(sc.outbound, { ':authority': 'echo' }, grpcFrame(Buffer.from('x')));
  await arrived;
  await new Promise((r) => setTimeout(r, 50)); // the GOAWAY is on its way to the sidecar
  const b = await rawCall(sc.outbound, { ':authority': 'echo' }, grpcFrame(Buffer.from('x')));
  t.is(b.grpcStatus, 0);
  t.is((await a).grpcStatus, 0);
  t.is(up.sessions(), 2);
});

test('backpressure: a caller that stops reading a huge server stream does not grow sidecar memory', async (t) => {
  let written = 0;
  const chunk = grpcFrame(Buffer.alloc(64 * 1024, 0x7a));
  const up = await startRawUpstream((stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    const pump = () => {
      while (!stream.destroyed && written < 4096 * chunk.length) {
        written += chunk.length;
        if (!stream.write(chunk)) return void stream.once('drain', pump);
      }
    };
    pump();
  });
  const sc = await startSidecar({ clusters: { echo: [up.port] } });
  t.teardown(async () => { await sc.proc.stop(); up.server.close(); });
  const before = await rssBytes(sc.proc.pid);
  const session = http2.connect(`http://127.0.0.1:${sc.outbound}`);
  session.on('error', () => {});
  const req = session.request({ ':method': 'POST', ':path': '/remora.test.Echo/ServerStream', ':authority': 'echo', 'content-type': 'application/grpc', te: 'trailers' });
  req.on('error', () => {});
  req.end(grpcFrame(Buffer.from('go')));
  let received = 0;
  await new Promise<void>((resolve) => req.once('data', (c: Buffer) => { received += c.length; req.pause(); resolve(); }));
  let peak = 0;
  for (let i = 0; i < 12; i++) {
    await new Promise((r) => setTimeout(r, 250));
    peak = Math.max(peak, await rssBytes(sc.proc.pid));
  }
  req.close(NGHTTP2_CANCEL);
  session.close();
  t.log(`upstream wrote ${(written / 2 ** 20).toFixed(1)} MiB; sidecar RSS ${(before / 2 ** 20).toFixed(0)} → peak ${(peak / 2 ** 20).toFixed(0)} MiB`);
  t.true(written < 64 * 2 ** 20, 'backpressure reached the upstream: it could not write more than flow-control windows allow');
  t.true(peak - before < 64 * 2 ** 20, 'sidecar memory stayed bounded');
});

test('SIGTERM drains: the in-flight call finishes, new connections are refused, exit code 0', async (t) => {
  const echo = await startEchoServer();
  const sc = await startSidecar({ clusters: { echo: [echo.port] } });
  t.teardown(() => echo.server.forceShutdown());
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
  const slow = new grpc.Metadata();
  slow.set('x-sleep-ms', '1500');
  const inflight = unary(client, Buffer.from('slow'), slow);
  // SIGTERM only once the call is at the app: a call still on its way to the sidecar would be
  // refused by the drain's GOAWAY, rightly, and that is not what this test is about.
  const until = Date.now() + 10_000;
  while (echo.record.calls === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  t.is(echo.record.calls, 1, 'the call reached the app');
  const exited = sc.proc.stop('SIGTERM', 10_000);
  const res = await inflight;
  t.is(res.response.toString(), 'slow');
  t.is(await exited, 0);
  client.close();
  const ready = await getJson<unknown>(sc.stats, '/healthz/ready').then(() => 'up', () => 'down');
  t.is(ready, 'down');
});

/**
 * A minimal HTTP/2 server written frame by frame, so a response's HEADERS, DATA and trailers leave
 * in ONE socket write (node's own server may flush them separately).
 */
function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}
function literal(name: string, value: string): Buffer {
  // Literal header field without indexing, new name, no Huffman (short strings only).
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}
async function startOneWriteUpstream(tlsOptions?: tls.TlsOptions): Promise<{ port: number; close(): void }> {
  const onSocket = (socket: net.Socket): void => {
    let buf = Buffer.alloc(0);
    let prefaceSeen = false;
    socket.on('error', () => {});
    socket.write(frame(0x4, 0, 0, Buffer.alloc(0))); // our SETTINGS (defaults)
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!prefaceSeen) {
        if (buf.length < 24) return;
        buf = buf.subarray(24);
        prefaceSeen = true;
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) return;
        const type = buf[3]!;
        const flags = buf[4]!;
        const streamId = buf.readUInt32BE(5) & 0x7fffffff;
        buf = buf.subarray(9 + len);
        if (type === 0x4 && !(flags & 0x1)) socket.write(frame(0x4, 0x1, 0, Buffer.alloc(0))); // ACK their SETTINGS
        if (type === 0x1) {
          // HEADERS (:status 200 = static index 8, content-type = static name 31), DATA, trailers: one write.
          const head = Buffer.concat([Buffer.from([0x88, 0x5f, 16]), Buffer.from('application/grpc'), literal('x-upstream', 'one-write')]);
          socket.write(Buffer.concat([
            frame(0x1, 0x4, streamId, head),
            frame(0x0, 0x0, streamId, grpcFrame(Buffer.from('hello'))),
            frame(0x1, 0x5, streamId, literal('grpc-status', '0')),
          ]));
        }
      }
    });
  };
  const server = tlsOptions ? tls.createServer({ ...tlsOptions, ALPNProtocols: ['h2'] }, onSocket) : net.createServer(onSocket);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

for (const overTls of [false, true]) test(`an upstream whose headers and first message arrive in one read${overTls ? ' over mTLS' : ''}: forwarded intact, no default headers, no crash`, async (t) => {
  // node emits a client stream's 'response' on the next tick, while DATA processed in the same
  // callback can be emitted at once: forwarding it before responding made node send default
  // headers and the sidecar crash (ERR_HTTP2_HEADERS_SENT). That race needed the bench's load to
  // show (two-hop-mtls); this test pins the one-write response path, on which it happens.
  const serverId = 'spiffe://cluster.local/ns/default/sa/upstream';
  const ca = overTls ? await otherCa() : undefined;
  const leaf = ca ? await leafFrom(ca, serverId) : undefined;
  const upstream = await startOneWriteUpstream(ca && leaf ? { key: leaf.keyPem, cert: leaf.certPem, ca: ca.certPem, requestCert: true, minVersion: 'TLSv1.3' } : undefined);
  const sc = ca
    ? await startSidecar({
        config: { clusters: [{ name: 'one', endpoints: [{ address: '127.0.0.1', port: upstream.port, identity: serverId }] }] },
        extraArgs: await certificateFileArgs(ca, 'spiffe://cluster.local/ns/default/sa/caller'),
      })
    : await startSidecar({ clusters: { one: [upstream.port] } });
  const c = echoClient(`127.0.0.1:${sc.outbound}`, 'one');
  t.teardown(async () => {
    c.close();
    await sc.proc.stop();
    upstream.close();
  });
  const results = await Promise.all(Array.from({ length: 50 }, () => unary(c, Buffer.from('x')).then(
    (r) => `${String(r.headers.get('x-upstream')[0])} ${r.response.toString()}`,
    (e: grpc.ServiceError) => `error ${e.code} ${e.details}`,
  )));
  t.deepEqual([...new Set(results)], ['one-write hello'], "every call got the upstream's own headers and message");
  t.is(sc.proc.exitCode, null, 'the sidecar is still running');
});
