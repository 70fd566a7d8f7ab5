/**
 * Malformed gRPC framing through a real `remora sidecar`: length prefixes that lie (short, over
 * the app's maximum), compressed flags without an encoding, and upstreams that send frames after
 * their trailers. The sidecar forwards messages as bytes and never decodes them, so the contract
 * is transparency: a caller gets through the sidecar (outbound, outbound with retries, inbound)
 * exactly the answer it gets from the app directly, the sidecar buffers nothing unbounded, and a
 * well-behaved caller keeps being served. See docs/hostile-input.md.
 */
import test, { type ExecutionContext } from 'ava';
import http2, { type IncomingHttpHeaders } from 'node:http2';
import { startEchoServer, echoClient, unary, grpc, type EchoServer } from './fixtures/echo-service.js';
import { startRawUpstream } from './fixtures/raw-h2.js';
import { startSidecar, type SidecarHandle } from './harness/sidecars.js';
import {
  ErrorCode,
  MiB,
  RESPONSE_FIELDS,
  dataFrame,
  grpcMessage,
  headersFrame,
  hpackLiterals,
  keepCalling,
  rstStreamFrame,
  startRawH2Server,
  trailerFields,
  watchRss,
  type RawH2,
  type RawH2Server,
} from './harness/raw-h2.js';
import { rssBytes } from '../lib/processes.js';

const RETRIES = { maxAttempts: 3, retryOn: ['UNAVAILABLE'], backoffBaseMs: 5, backoffMaxMs: 20, retryNonIdempotent: true };

interface Answer {
  readonly status: string | undefined;
  readonly message: string | undefined;
  readonly body: string;
}

/**
 * One call written by hand with node's http2 client: `chunks` go out as they are, then `bulk`
 * bytes of filler (bounded, with backpressure) and the end of the request. Resolves once the
 * stream is closed, or with what came so far after `timeoutMs`.
 */
async function rawGrpcCall(port: number, authority: string, chunks: readonly Buffer[], opts: { headers?: Record<string, string>; bulk?: number; timeoutMs?: number } = {}): Promise<Answer & { sent: number }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  try {
    return await new Promise((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': '/remora.test.Echo/Unary', ':authority': authority, 'content-type': 'application/grpc', te: 'trailers', ...opts.headers });
      let head: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders | undefined;
      const body: Buffer[] = [];
      let sent = 0;
      req.on('response', (h) => (head = h));
      req.on('trailers', (h) => (trailers = h));
      req.on('data', (c: Buffer) => body.push(c));
      req.on('error', () => {});
      const timer = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), opts.timeoutMs ?? 15_000);
      req.on('close', () => {
        clearTimeout(timer);
        const src = trailers ?? head;
        const message = src['grpc-message'];
        resolve({
          status: src['grpc-status'] === undefined ? undefined : String(src['grpc-status']),
          message: message === undefined ? undefined : decodeURIComponent(String(message)),
          body: Buffer.concat(body).toString('latin1'),
          sent,
        });
      });
      for (const c of chunks) {
        sent += c.length;
        req.write(c);
      }
      const filler = Buffer.alloc(64 * 1024, 0x66);
      const pump = (): void => {
        while (sent < (opts.bulk ?? 0) && !req.closed && !req.destroyed) {
          sent += filler.length;
          if (!req.write(filler)) return void req.once('drain', pump);
        }
        if (!req.closed && !req.destroyed) req.end();
      };
      pump();
    });
  } finally {
    session.close();
  }
}

interface Rig {
  readonly app: EchoServer;
  readonly sc: SidecarHandle;
}

async function rig(t: ExecutionContext, extra: { clusters?: Array<Record<string, unknown>>; routes?: Array<Record<string, unknown>> } = {}): Promise<Rig> {
  const app = await startEchoServer(0, 'app');
  const sc = await startSidecar({
    appPort: app.port,
    config: {
      clusters: [{ name: 'echo', endpoints: [{ address: '127.0.0.1', port: app.port }] }, ...(extra.clusters ?? [])],
      routes: [{ match: { service: 'echo-retry' }, cluster: 'echo', retries: RETRIES }, { match: { service: 'echo' }, cluster: 'echo' }, ...(extra.routes ?? [])],
    },
  });
  t.teardown(async () => {
    await sc.proc.stop();
    app.server.forceShutdown();
  });
  return { app, sc };
}

function bystanderOf(t: ExecutionContext, port: number): ReturnType<typeof keepCalling> {
  const client = echoClient(`127.0.0.1:${port}`, 'echo');
  t.teardown(() => client.close());
  return keepCalling(client, { concurrency: 2 });
}

const MALFORMED: ReadonlyArray<readonly [string, readonly Buffer[], Record<string, string>?]> = [
  ['a length prefix of 100 over 5 bytes, then the end of the stream', [grpcMessage(Buffer.from('hello'), { declaredLength: 100 })]],
  ['3 bytes of a 5-byte prefix, then the end of the stream', [Buffer.from([0, 0, 0])]],
  ['the compressed flag without grpc-encoding', [grpcMessage(Buffer.from('hello'), { compressed: true })]],
  ['the compressed flag, grpc-encoding gzip, bytes that are not gzip', [grpcMessage(Buffer.from('hello'), { compressed: true })], { 'grpc-encoding': 'gzip' }],
  ['two messages to a unary method', [grpcMessage(Buffer.from('one')), grpcMessage(Buffer.from('two'))]],
  ['an empty request body', []],
];

test('malformed request framing: through the sidecar (outbound, with retries, inbound) the caller gets exactly what the app answers directly', async (t) => {
  const { app, sc } = await rig(t);
  const by = bystanderOf(t, sc.outbound);
  const paths: ReadonlyArray<readonly [string, number, string]> = [
    ['outbound', sc.outbound, 'echo'],
    ['outbound with retries', sc.outbound, 'echo-retry'],
    ['inbound', sc.inbound, 'echo'],
  ];
  for (const [what, chunks, headers] of MALFORMED) {
    const direct = await rawGrpcCall(app.port, 'echo', chunks, { headers });
    t.truthy(direct.status, `${what}: the app gave no status`);
    t.log(`${what}: ${direct.status === undefined ? 'no status' : grpc.status[Number(direct.status)]} ${JSON.stringify(direct.message)}`);
    for (const [path, port, authority] of paths) {
      const via = await rawGrpcCall(port, authority, chunks, { headers });
      t.deepEqual({ status: via.status, message: via.message, body: via.body }, { status: direct.status, message: direct.message, body: direct.body }, `${what}, ${path}`);
    }
  }
  const report = await by.stop();
  t.deepEqual(report.failures, []);
  t.is(sc.proc.exitCode, null);
});

test('a length prefix of 4 GiB followed by 64 MiB, and a real 20 MiB message, on plain and retrying routes: answered, streamed through, never buffered', async (t) => {
  const { app, sc } = await rig(t);
  const by = bystanderOf(t, sc.outbound);
  const before = await rssBytes(sc.proc.pid);
  const rss = watchRss(sc.proc.pid);
  const lying = [grpcMessage(Buffer.alloc(0), { declaredLength: 0xffff_fff0 })];
  const direct = await rawGrpcCall(app.port, 'echo', lying, { bulk: 8 * MiB });
  t.is(direct.status, String(grpc.status.RESOURCE_EXHAUSTED), `the app's own answer: ${direct.status} ${direct.message}`);
  for (const [path, port, authority] of [['outbound', sc.outbound, 'echo'], ['outbound with retries', sc.outbound, 'echo-retry'], ['inbound', sc.inbound, 'echo']] as const) {
    const started = Date.now();
    const via = await rawGrpcCall(port, authority, lying, { bulk: 64 * MiB, timeoutMs: 20_000 });
    t.is(via.status, direct.status, `${path}: ${via.message}`);
    t.is(via.message, direct.message, path);
    t.true(Date.now() - started < 20_000, `${path}: the call did not finish`);
  }
  // A retrying route keeps at most its replay buffer (64 KiB) of a request; a 20 MiB message is
  // sent on without being kept, and comes back whole.
  const big = Buffer.alloc(20 * MiB, 0x62);
  for (const authority of ['echo', 'echo-retry']) {
    const client = echoClient(`127.0.0.1:${sc.outbound}`, authority);
    const answer = await unary(client, big, new grpc.Metadata(), { deadline: Date.now() + 30_000 }).finally(() => client.close());
    t.true(answer.response.equals(big), `${authority}: the 20 MiB echo came back intact`);
  }
  const peak = await rss.stop();
  t.log(`sidecar RSS ${(before / MiB).toFixed(0)} MiB → peak ${(peak / MiB).toFixed(0)} MiB after 192 MiB of lying request bytes and 80 MiB of real messages`);
  // Less than any one of the 64 MiB requests: none of them was kept.
  t.true(peak - before < 48 * MiB, `sidecar memory grew by ${((peak - before) / MiB).toFixed(0)} MiB`);
  const report = await by.stop();
  t.deepEqual(report.failures, []);
  t.is(sc.proc.exitCode, null);
});

test('a request bigger than the replay buffer whose rest arrives during a retry backoff is not retried without its bytes: the caller gets the original failure', async (t) => {
  // The first attempt fails at once (UNAVAILABLE, retry after 1 s); the caller sends 16 KiB, and
  // 104 KiB more during the backoff. The replay buffer (64 KiB) overflows while no attempt is
  // running and is emptied, and the retry goes out with an empty request: the app answers OK to
  // 0 bytes. Under load the retry sometimes never ends its request instead, and the call hangs.
  // Correct is either the whole request, or the first attempt's UNAVAILABLE, promptly.
  const attempts: number[] = [];
  const up = await startRawUpstream((stream, headers) => {
    if (headers[':path'] !== '/remora.test.Echo/ClientStream') {
      // Anything else the sidecar asks on its own (server reflection, say) is not an attempt.
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpc.status.UNIMPLEMENTED) }, { endStream: true });
      return;
    }
    const attempt = attempts.push(0) - 1;
    if (attempt === 0) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpc.status.UNAVAILABLE), 'grpc-retry-pushback-ms': '1000' }, { endStream: true });
      return;
    }
    stream.on('data', (c: Buffer) => (attempts[attempt]! += c.length));
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-bytes-seen': String(attempts[attempt]) }));
      stream.end();
    });
  });
  const sc = await startSidecar({
    config: {
      clusters: [{ name: 'up', endpoints: [{ address: '127.0.0.1', port: up.port }] }],
      routes: [{ match: { service: 'up' }, cluster: 'up', retries: { ...RETRIES, maxAttempts: 2 } }],
    },
  });
  t.teardown(async () => {
    await sc.proc.stop();
    up.server.close();
  });
  const message = grpcMessage(Buffer.alloc(120_000, 0x62));
  const session = http2.connect(`http://127.0.0.1:${sc.outbound}`);
  session.on('error', () => {});
  t.teardown(() => session.close());
  const answer = await new Promise<{ status: string | undefined; seen: string | undefined }>((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': '/remora.test.Echo/ClientStream', ':authority': 'up', 'content-type': 'application/grpc', te: 'trailers' });
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    req.on('response', (h) => (head = h));
    req.on('trailers', (h) => (trailers = h));
    req.on('error', () => {});
    // Bounded: the retry can also hang, its request never ended (seen under load).
    const giveUp = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), 10_000);
    req.on('close', () => {
      clearTimeout(giveUp);
      const status = (trailers ?? head)['grpc-status'];
      resolve({ status: status === undefined ? undefined : String(status), seen: trailers?.['x-bytes-seen'] as string | undefined });
    });
    req.write(message.subarray(0, 16_384));
    setTimeout(() => req.end(message.subarray(16_384)), 300);
  });
  t.log(`caller got status ${answer.status ?? 'none within 10 s'}; the app saw ${JSON.stringify(attempts)} bytes per attempt of ${message.length}`);
  if (answer.status === '0') t.is(Number(answer.seen), message.length, 'an OK answer must be to the whole request');
  else t.is(answer.status, String(grpc.status.UNAVAILABLE));
});

/** What a raw upstream writes after a complete, correct answer (headers, 'hello', trailers OK). */
const AFTER_TRAILERS: Readonly<Record<string, (stream: number) => Buffer>> = {
  'a DATA frame': (id) => dataFrame(id, grpcMessage(Buffer.from('extra'))),
  'a second trailers block': (id) => headersFrame(id, hpackLiterals(trailerFields(grpc.status.INTERNAL, 'second trailers')), { endStream: true }),
  'RST_STREAM INTERNAL_ERROR': (id) => rstStreamFrame(id, ErrorCode.INTERNAL_ERROR),
};

function answerThen(after: ((id: number) => Buffer) | undefined, split: boolean) {
  return (conn: RawH2, id: number): void => {
    const answer = Buffer.concat([
      headersFrame(id, hpackLiterals(RESPONSE_FIELDS)),
      dataFrame(id, grpcMessage(Buffer.from('hello'))),
      headersFrame(id, hpackLiterals(trailerFields(0)), { endStream: true }),
    ]);
    if (after === undefined) return void conn.send(answer);
    if (split) {
      void conn.send(answer);
      setTimeout(() => void conn.send(after(id)), 20);
    } else void conn.send(Buffer.concat([answer, after(id)]));
  };
}

test('frames after the trailers (DATA, more trailers, RST_STREAM; in the same write or just after): the caller gets the first, complete answer', async (t) => {
  const servers: Array<{ name: string; server: RawH2Server }> = [];
  t.teardown(async () => { for (const s of servers) await s.server.close(); });
  for (const [what, after] of Object.entries(AFTER_TRAILERS)) {
    for (const split of [false, true]) servers.push({ name: `${what}${split ? ', just after' : ', same write'}`, server: await startRawH2Server(answerThen(after, split)) });
  }
  const clusters = servers.map((s, i) => ({ name: `raw${i}`, endpoints: [{ address: '127.0.0.1', port: s.server.port }] }));
  const routes = servers.map((_s, i) => ({ match: { service: `raw${i}` }, cluster: `raw${i}` }));
  const { sc } = await rig(t, { clusters, routes });
  const by = bystanderOf(t, sc.outbound);
  for (const [i, s] of servers.entries()) {
    const client = echoClient(`127.0.0.1:${sc.outbound}`, `raw${i}`);
    for (let call = 0; call < 3; call++) {
      const got = await unary(client, Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 5_000 }).then(
        (a) => `OK ${a.response.toString()}`,
        (e: grpc.ServiceError) => `${grpc.status[e.code]} ${e.details}`,
      );
      t.is(got, 'OK hello', `${s.name}, call ${call + 1}`);
    }
    client.close();
  }
  const report = await by.stop();
  t.deepEqual(report.failures, [], 'calls to the well-behaved app were not disturbed');
  t.is(sc.proc.exitCode, null);
});

test('an upstream answer with a lying length prefix is passed through as the app sent it; one without trailers becomes INTERNAL', async (t) => {
  const truncated = await startRawH2Server((conn, id) => void conn.send(Buffer.concat([
    headersFrame(id, hpackLiterals(RESPONSE_FIELDS)),
    dataFrame(id, grpcMessage(Buffer.from('hello'), { declaredLength: 100 })),
    headersFrame(id, hpackLiterals(trailerFields(0)), { endStream: true }),
  ])));
  const noTrailers = await startRawH2Server((conn, id) => void conn.send(Buffer.concat([
    headersFrame(id, hpackLiterals(RESPONSE_FIELDS)),
    dataFrame(id, grpcMessage(Buffer.from('hello')), true),
  ])));
  t.teardown(async () => { await truncated.close(); await noTrailers.close(); });
  const { sc } = await rig(t, {
    clusters: [{ name: 'truncated', endpoints: [{ address: '127.0.0.1', port: truncated.port }] }, { name: 'no-trailers', endpoints: [{ address: '127.0.0.1', port: noTrailers.port }] }],
    routes: [{ match: { service: 'truncated' }, cluster: 'truncated' }, { match: { service: 'no-trailers' }, cluster: 'no-trailers' }],
  });
  const outcome = async (target: string, authority: string): Promise<string> => {
    const client = echoClient(target, authority);
    return unary(client, Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 5_000 }).then(
      (a) => `OK ${a.response.toString()}`,
      (e: grpc.ServiceError) => `${grpc.status[e.code]}`,
    ).finally(() => client.close());
  };
  const direct = await outcome(`127.0.0.1:${truncated.port}`, 'truncated');
  t.not(direct, 'OK hello', 'grpc-js refuses a message cut short');
  t.is(await outcome(`127.0.0.1:${sc.outbound}`, 'truncated'), direct, 'the same through the sidecar');
  const raw = await rawGrpcCall(sc.outbound, 'no-trailers', [grpcMessage(Buffer.from('x'))]);
  t.is(raw.status, String(grpc.status.INTERNAL));
  t.regex(raw.message ?? '', /without trailers/);
  t.is(sc.proc.exitCode, null);
});

test('after an upstream wrote garbage right behind its trailers, the dead connection is found by a keepalive PING and retired: later calls fail or succeed, none hangs until its deadline', async (t) => {
  // The garbage makes nghttp2 end the session with a GOAWAY, after which node stops reading it
  // but reports nothing (no 'error', 'goaway' or 'close'); the pool keeps handing it out and the
  // streams opened on it never get an answer. The first call itself is answered right.
  const server = await startRawH2Server(answerThen(() => Buffer.from('this is not an HTTP/2 frame, just garbage\r\n'), false));
  t.teardown(() => server.close());
  const { sc } = await rig(t, {
    clusters: [{ name: 'junk', endpoints: [{ address: '127.0.0.1', port: server.port }] }],
    routes: [{ match: { service: 'junk' }, cluster: 'junk' }],
  });
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'junk');
  t.teardown(() => client.close());
  const outcomes: string[] = [];
  for (let call = 0; call < 3; call++) {
    // Deadlines past the sidecar's upstream keepalive (a PING after 5 s of silence, 10 s to answer).
    outcomes.push(await unary(client, Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 30_000 }).then(
      (a) => `OK ${a.response.toString()}`,
      (e: grpc.ServiceError) => `${grpc.status[e.code]}`,
    ));
  }
  t.log(`outcomes: ${outcomes.join(', ')}`);
  t.is(sc.proc.exitCode, null);
  t.false(outcomes.includes('DEADLINE_EXCEEDED'), 'a call hung until its deadline');
});
