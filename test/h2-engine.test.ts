/**
 * The sidecar's own HTTP/2 engine (sidecar/h2/) against real peers on real sockets: node:http2
 * (nghttp2) as client and as server, @grpc/grpc-js both ways, TLS with ALPN, and a raw socket
 * that writes frames by hand for the protocol errors no library would send. Every expectation is
 * RFC 9113 behaviour or what node:http2 does, since the proxy was written against node:http2.
 */
import test, { type ExecutionContext } from 'ava';
import net from 'node:net';
import tls from 'node:tls';
import http2, { type IncomingHttpHeaders } from 'node:http2';
import { createHash, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { H2Session } from '../sidecar/h2/session.js';
import type { H2Stream } from '../sidecar/h2/stream.js';
import { connect, type ConnectOptions } from '../sidecar/h2/connect.js';
import { ErrorCode as EngineErrorCode } from '../sidecar/h2/frames.js';
import { HpackDecoder } from '../sidecar/h2/hpack/decoder.js';
import { UPSTREAM_SESSION_OPTIONS } from '../sidecar/upstream/endpoint.js';
import {
  ErrorCode,
  Flags,
  FrameType,
  RawH2,
  continuationFrame,
  dataFrame,
  frame,
  grpcRequestFields,
  headersFrame,
  hpackLiterals,
  pingFrame,
  windowUpdateFrame,
  type Frame,
} from './harness/raw-h2.js';
import {
  CLIENT_OPTIONS,
  SERVER_OPTIONS,
  answerGrpc,
  type AnyServerStream,
  collectStream,
  connectEngine,
  connectNode,
  delay,
  engineCall,
  grpcFrame,
  grpcMessages,
  grpcRequestHeaders,
  nodeCall,
  readBody,
  sha256,
  startEngineServer,
  startNodeServer,
  until,
  within,
  type CallResult,
  type EngineServer,
  type NodeServer,
} from './fixtures/h2-engine-helpers.js';
import { selfSigned } from './fixtures/self-signed.js';

const MiB = 1 << 20;
const TEST_TIMEOUT_MS = 20_000;

const UNARY = '/remora.test.Echo/Unary';
const SERVER_STREAM = '/remora.test.Echo/ServerStream';
const HOLD = '/remora.test.Echo/Hold';
const TRAILERS_ONLY = '/remora.test.Echo/TrailersOnly';
const BIG = '/remora.test.Echo/Big';
const HEADER_ECHO = '/remora.test.Echo/HeaderEcho';

/** The 5 MiB a BIG call answers with; the request carries its own 5 MiB. */
const BIG_RESPONSE = randomBytes(5 * MiB);
const BIG_RESPONSE_HASH = sha256(BIG_RESPONSE);
const SERVER_STREAM_MESSAGES = 1_000;

function streamMessage(i: number): Buffer {
  return Buffer.from(`message ${i} of the server stream`);
}

/** `count` custom headers of `valueBytes` random (base64) characters each: x-big-0 ... */
function bigHeaders(count: number, valueBytes: number): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let i = 0; i < count; i++) headers[`x-big-${i}`] = randomBytes(valueBytes).toString('base64').slice(0, valueBytes);
  return headers;
}

function pickBigHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (name.startsWith('x-big-')) out[name] = String(value);
  return out;
}

function hashOf(headers: IncomingHttpHeaders | undefined, name: string): string | undefined {
  const v = headers?.[name];
  return v === undefined ? undefined : String(v);
}

// ---- The test service, served by our engine and (mirrored) by node:http2 ----

interface ServiceLog<S extends AnyServerStream> {
  /** Server-side streams of HOLD calls, in arrival order (they are answered or reset by the test). */
  readonly held: S[];
  /** Server-side streams as they closed: rstCode and aborted, in close order. */
  readonly closed: Array<{ path: string; rstCode: number | undefined; aborted: boolean }>;
}

/**
 * The test service, the same on our engine and on node:http2. UNARY echoes each message and adds
 * trailer x-trailer; SERVER_STREAM answers 1,000 messages; BIG hashes the request (trailer
 * x-request-sha256) and answers BIG_RESPONSE; TRAILERS_ONLY answers with HEADERS + END_STREAM
 * carrying grpc-status 5; HEADER_ECHO returns every x-big-* header in its response headers; HOLD
 * waits for the test.
 */
function testService<S extends AnyServerStream>(log: ServiceLog<S>): (stream: S, headers: IncomingHttpHeaders) => void {
  return (stream, headers) => {
    const path = String(headers[':path']);
    stream.once('close', () => log.closed.push({ path, rstCode: stream.rstCode, aborted: stream.aborted }));
    switch (path) {
      case UNARY:
        void readBody(stream).then((body) => answerGrpc(stream, grpcMessages(body), { 'x-trailer': 'yes' }), () => {});
        return;
      case SERVER_STREAM:
        void readBody(stream).then(() => {
          const messages = Array.from({ length: SERVER_STREAM_MESSAGES }, (_, i) => streamMessage(i));
          answerGrpc(stream, messages);
        }, () => {});
        return;
      case BIG: {
        const hash = createHash('sha256');
        stream.on('data', (c: Buffer) => hash.update(c));
        stream.once('end', () => {
          stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' }, { waitForTrailers: true });
          stream.once('wantTrailers', () => stream.sendTrailers({ 'x-request-sha256': hash.digest('hex') }));
          stream.end(BIG_RESPONSE);
        });
        return;
      }
      case TRAILERS_ONLY:
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'not found' }, { endStream: true });
        return;
      case HEADER_ECHO:
        stream.respond({ ':status': 200, ...pickBigHeaders(headers) }, { endStream: true });
        return;
      case HOLD:
        log.held.push(stream);
        return;
      default:
        stream.respond({ ':status': 404 }, { endStream: true });
    }
  };
}

type EngineLog = ServiceLog<H2Stream>;
type NodeLog = ServiceLog<http2.ServerHttp2Stream>;

async function engineServer(t: ExecutionContext, log: EngineLog = { held: [], closed: [] }, options = SERVER_OPTIONS): Promise<EngineServer> {
  const server = await startEngineServer(testService(log), options);
  t.teardown(() => server.close());
  return server;
}

async function nodeServer(t: ExecutionContext, log: NodeLog = { held: [], closed: [] }, options: http2.ServerOptions = {}): Promise<NodeServer> {
  const server = await startNodeServer(testService(log), options);
  t.teardown(() => server.close());
  return server;
}

async function nodeClient(t: ExecutionContext, port: number, options: http2.ClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  const client = await connectNode(port, options);
  t.teardown(() => client.destroy());
  return client;
}

async function engineClient(t: ExecutionContext, port: number, options: Partial<ConnectOptions> = {}): Promise<H2Session> {
  const session = await connectEngine(port, options);
  t.teardown(() => session.destroy());
  return session;
}

function grpcStatus(result: CallResult): string | undefined {
  return hashOf(result.trailers ?? result.headers, 'grpc-status');
}

// ---- Checks shared by both directions: a call's outcome as the client saw it ----

function checkUnaryEcho(t: ExecutionContext, result: CallResult, payloads: readonly Buffer[]): void {
  t.is(result.rstCode, 0, 'the call ended normally');
  t.true(result.ended, "the body's end was seen");
  t.is(Number(result.headers?.[':status']), 200);
  t.is(result.headers?.['content-type'], 'application/grpc');
  t.is(grpcStatus(result), '0');
  t.is(hashOf(result.trailers, 'x-trailer'), 'yes');
  t.deepEqual(grpcMessages(result.body).map((m) => m.toString('hex')), payloads.map((p) => p.toString('hex')));
}

function checkServerStream(t: ExecutionContext, result: CallResult): void {
  t.is(result.rstCode, 0);
  t.is(grpcStatus(result), '0');
  const messages = grpcMessages(result.body);
  t.is(messages.length, SERVER_STREAM_MESSAGES);
  t.true(messages.every((m, i) => m.equals(streamMessage(i))), 'every message intact and in order');
}

function checkBig(t: ExecutionContext, result: CallResult, requestHash: string): void {
  t.is(result.rstCode, 0);
  t.is(result.body.length, BIG_RESPONSE.length);
  t.is(sha256(result.body), BIG_RESPONSE_HASH, 'the 5 MiB response arrived intact');
  t.is(hashOf(result.trailers, 'x-request-sha256'), requestHash, 'the 5 MiB request arrived intact');
}

function checkTrailersOnly(t: ExecutionContext, result: CallResult): void {
  t.is(result.rstCode, 0);
  t.is(Number(result.headers?.[':status']), 200);
  t.is(hashOf(result.headers, 'grpc-status'), '5', 'the status is in the (only) headers');
  t.is(hashOf(result.headers, 'grpc-message'), 'not found');
  t.is(result.trailers, undefined);
  t.is(result.body.length, 0);
}

// =====================================================================================
// 1. node:http2 client (nghttp2) -> our server session
// =====================================================================================

test('node client -> engine server: unary echo with trailers', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await engineServer(t);
  const client = await nodeClient(t, server.port);
  const payloads = [Buffer.from('hello'), randomBytes(300)];
  const result = await within('unary call', 5_000, nodeCall(client, grpcRequestHeaders('x', UNARY), Buffer.concat(payloads.map(grpcFrame))));
  checkUnaryEcho(t, result, payloads);
});

test('node client -> engine server: 100 concurrent streams on one connection', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await engineServer(t);
  const client = await nodeClient(t, server.port);
  const payloads = Array.from({ length: 100 }, (_, i) => Buffer.from(`call ${i} ${randomBytes(8).toString('hex')}`));
  const results = await within('100 calls', 10_000, Promise.all(payloads.map((p) => nodeCall(client, grpcRequestHeaders('x', UNARY), grpcFrame(p)))));
  results.forEach((r, i) => checkUnaryEcho(t, r, [payloads[i]!]));
  t.is(server.sessions.length, 1, 'all on one connection');
});

test('node client -> engine server: 5 MiB request and 5 MiB response, flow control both ways', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await engineServer(t);
  const client = await nodeClient(t, server.port);
  const request = randomBytes(5 * MiB);
  const result = await within('5 MiB both ways', 15_000, nodeCall(client, grpcRequestHeaders('x', BIG), request));
  checkBig(t, result, sha256(request));
});

test('node client -> engine server: a server stream of 1,000 messages', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await engineServer(t);
  const client = await nodeClient(t, server.port);
  const result = await within('server stream', 10_000, nodeCall(client, grpcRequestHeaders('x', SERVER_STREAM), grpcFrame(Buffer.from('go'))));
  checkServerStream(t, result);
});

test('node client -> engine server: the client cancels (RST_STREAM CANCEL); our stream closes with rstCode 8, aborted', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const log: EngineLog = { held: [], closed: [] };
  const server = await engineServer(t, log);
  const client = await nodeClient(t, server.port);
  const req = client.request(grpcRequestHeaders('x', HOLD));
  req.on('error', () => {});
  req.write(grpcFrame(Buffer.from('wait')));
  await until('the server sees the call', 5_000, () => log.held.length === 1);
  const held = log.held[0]!;
  const closed = new Promise<void>((resolve) => held.once('close', () => resolve()));
  req.close(http2.constants.NGHTTP2_CANCEL);
  await within("our stream's close", 5_000, closed);
  t.is(held.rstCode, EngineErrorCode.CANCEL);
  t.true(held.aborted);
  t.true(held.closed);
  t.is(server.sessions[0]!.openStreams, 0, 'the session forgot the stream');
  // And the connection carries on.
  const after = await within('a call after the cancel', 5_000, nodeCall(client, grpcRequestHeaders('x', UNARY), grpcFrame(Buffer.from('next'))));
  checkUnaryEcho(t, after, [Buffer.from('next')]);
});

test('node client -> engine server: a trailers-only answer carries the status in its headers', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const log: EngineLog = { held: [], closed: [] };
  const server = await engineServer(t, log);
  const client = await nodeClient(t, server.port);
  const result = await within('trailers-only call', 5_000, nodeCall(client, grpcRequestHeaders('x', TRAILERS_ONLY)));
  checkTrailersOnly(t, result);
  await until('the server stream closes', 2_000, () => log.closed.length === 1);
  t.deepEqual(log.closed[0], { path: TRAILERS_ONLY, rstCode: 0, aborted: false });
});

test('node client -> engine server: our graceful close() sends GOAWAY NO_ERROR; in-flight calls finish, then the connection closes', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const log: EngineLog = { held: [], closed: [] };
  const server = await engineServer(t, log);
  const client = await nodeClient(t, server.port);
  const calls = [0, 1].map((i) => {
    const req = client.request(grpcRequestHeaders('x', HOLD));
    req.end(grpcFrame(Buffer.from(`in flight ${i}`)));
    return collectStream(req);
  });
  await until('the server holds both calls', 5_000, () => log.held.length === 2);
  const goaway = new Promise<[number, number]>((resolve) => client.once('goaway', (code: number, last: number) => resolve([code, last])));
  const session = server.sessions[0]!;
  const sessionClosed = new Promise<void>((resolve) => session.once('close', () => resolve()));
  session.close();
  t.deepEqual(await within('GOAWAY at the client', 5_000, goaway), [0, 3]);
  t.false(session.destroyed, 'still open while calls are in flight');
  for (const held of log.held) void readBody(held).then((body) => answerGrpc(held, grpcMessages(body)), () => {});
  const results = await within('the in-flight calls', 5_000, Promise.all(calls));
  for (const [i, r] of results.entries()) {
    t.is(r.rstCode, 0, `call ${i}`);
    t.deepEqual(grpcMessages(r.body), [Buffer.from(`in flight ${i}`)]);
  }
  await within('our session closes after its last stream', 5_000, sessionClosed);
});

test('node client -> engine server: the client goes away mid-call; our stream closes aborted and the session closes', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const log: EngineLog = { held: [], closed: [] };
  const server = await engineServer(t, log);
  const client = await nodeClient(t, server.port);
  const req = client.request(grpcRequestHeaders('x', HOLD));
  req.on('error', () => {});
  req.write(grpcFrame(Buffer.from('half a call')));
  await until('the server holds the call', 5_000, () => log.held.length === 1);
  const held = log.held[0]!;
  const session = server.sessions[0]!;
  const streamClosed = new Promise<void>((resolve) => held.once('close', () => resolve()));
  const sessionClosed = new Promise<void>((resolve) => session.once('close', () => resolve()));
  client.destroy();
  await within("our stream's close", 5_000, streamClosed);
  t.true(held.aborted);
  t.not(held.rstCode, 0);
  await within("our session's close", 5_000, sessionClosed);
  t.true(session.destroyed);
});

test('node client -> engine server: stream setTimeout fires after silence', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const log: EngineLog = { held: [], closed: [] };
  const server = await engineServer(t, log);
  const client = await nodeClient(t, server.port);
  const req = client.request(grpcRequestHeaders('x', HOLD));
  req.on('error', () => {});
  req.write(grpcFrame(Buffer.from('then nothing')));
  await until('the server holds the call', 5_000, () => log.held.length === 1);
  const held = log.held[0]!;
  const startedAt = Date.now();
  const fired = new Promise<number>((resolve) => held.setTimeout(150, () => resolve(Date.now() - startedAt)));
  const after = await within("the stream's timeout", 3_000, fired);
  t.true(after >= 140, `fired after ${after} ms`);
  t.false(held.closed, 'a timeout alone does not close the stream');
});

test('node client -> engine server: our server pauses a 20 MiB request body; the client is held by our window, and after resume every byte arrives', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const log: EngineLog = { held: [], closed: [] };
  const server = await engineServer(t, log);
  const client = await nodeClient(t, server.port);
  const body = randomBytes(20 * MiB);
  const req = client.request(grpcRequestHeaders('x', HOLD));
  const outcome = collectStream(req);
  req.end(body);
  await until('the server holds the call', 5_000, () => log.held.length === 1);
  const held = log.held[0]!;
  held.pause();
  const chunks: Buffer[] = [];
  held.on('data', (c: Buffer) => chunks.push(c));
  // Nobody reads: the client may send the stream window (1 MiB) and no more.
  await delay(500);
  const socket = server.sockets[0]!;
  t.true(socket.bytesRead < SERVER_OPTIONS.streamWindow + 256 * 1024, `read ${socket.bytesRead} bytes from the client while paused`);
  t.is(chunks.length, 0, "no 'data' while paused");
  const ended = new Promise<void>((resolve) => held.once('end', () => resolve()));
  held.resume();
  await within('the whole body', 10_000, ended);
  t.is(sha256(chunks), sha256(body), 'every byte, in order');
  held.respond({ ':status': 200 }, { endStream: true });
  t.is((await within('the answer', 5_000, outcome)).rstCode, 0);
});

// =====================================================================================
// 2. our client session (connect) -> node:http2 server
// =====================================================================================

test('engine client -> node server: unary echo with trailers', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await nodeServer(t);
  const session = await engineClient(t, server.port);
  const payloads = [Buffer.from('hello'), randomBytes(300)];
  const result = await within('unary call', 5_000, engineCall(session, grpcRequestHeaders('x', UNARY), Buffer.concat(payloads.map(grpcFrame))));
  checkUnaryEcho(t, result, payloads);
});

test('engine client -> node server: the last stream id (2^31-1) is used, then request() throws and the session closes gracefully', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await nodeServer(t);
  const session = await engineClient(t, server.port);
  // Reaching 2^31 streams for real would take hours: start the session near the end.
  (session as unknown as { nextStreamId: number }).nextStreamId = 2 ** 31 - 1;
  const last = await within('the call on the last stream id', 5_000, engineCall(session, grpcRequestHeaders('x', UNARY), grpcFrame(Buffer.from('last'))));
  checkUnaryEcho(t, last, [Buffer.from('last')]);
  const err = t.throws(() => session.request(grpcRequestHeaders('x', UNARY)));
  t.is((err as NodeJS.ErrnoException | undefined)?.code, 'ERR_HTTP2_OUT_OF_STREAMS');
  t.true(session.closed);
});

test('engine client -> node server: 100 concurrent streams on one connection', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await nodeServer(t);
  const session = await engineClient(t, server.port);
  const payloads = Array.from({ length: 100 }, (_, i) => Buffer.from(`call ${i} ${randomBytes(8).toString('hex')}`));
  const results = await within('100 calls', 10_000, Promise.all(payloads.map((p) => engineCall(session, grpcRequestHeaders('x', UNARY), grpcFrame(p)))));
  results.forEach((r, i) => checkUnaryEcho(t, r, [payloads[i]!]));
  t.is(server.sessions.length, 1);
});

test('engine client -> node server: 5 MiB request and 5 MiB response, flow control both ways', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await nodeServer(t);
  const session = await engineClient(t, server.port);
  const request = randomBytes(5 * MiB);
  const result = await within('5 MiB both ways', 15_000, engineCall(session, grpcRequestHeaders('x', BIG), request));
  checkBig(t, result, sha256(request));
});

test('engine client -> node server: a server stream of 1,000 messages', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await nodeServer(t);
  const session = await engineClient(t, server.port);
  const result = await within('server stream', 10_000, engineCall(session, grpcRequestHeaders('x', SERVER_STREAM), grpcFrame(Buffer.from('go'))));
  checkServerStream(t, result);
});

test('engine client -> node server: our client cancels; the server stream sees RST_STREAM CANCEL', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const log: NodeLog = { held: [], closed: [] };
  const server = await nodeServer(t, log);
  const session = await engineClient(t, server.port);
  const stream = session.request(grpcRequestHeaders('x', HOLD));
  const outcome = collectStream(stream);
  stream.write(grpcFrame(Buffer.from('wait')));
  await until('the server sees the call', 5_000, () => log.held.length === 1);
  const held = log.held[0]!;
  const serverClosed = new Promise<void>((resolve) => held.once('close', () => resolve()));
  stream.close(EngineErrorCode.CANCEL);
  const result = await within('our close', 5_000, outcome);
  t.is(result.rstCode, EngineErrorCode.CANCEL);
  t.true(result.aborted);
  await within("the server stream's close", 5_000, serverClosed);
  t.is(held.rstCode, http2.constants.NGHTTP2_CANCEL);
});

test('engine client -> node server: a trailers-only answer carries the status in its headers', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await nodeServer(t);
  const session = await engineClient(t, server.port);
  const result = await within('trailers-only call', 5_000, engineCall(session, grpcRequestHeaders('x', TRAILERS_ONLY)));
  checkTrailersOnly(t, result);
});

test("engine client -> node server: the server's MAX_CONCURRENT_STREAMS of 2 holds 10 calls to 2 at a time, all complete", async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  let open = 0;
  let maxOpen = 0;
  const server = await startNodeServer((stream) => {
    open++;
    maxOpen = Math.max(maxOpen, open);
    stream.once('close', () => open--);
    void readBody(stream).then(async (body) => {
      await delay(30); // long enough for the other calls to pile up behind the limit
      answerGrpc(stream, grpcMessages(body));
    }, () => {});
  }, { settings: { maxConcurrentStreams: 2 } });
  t.teardown(() => server.close());
  const session = await engineClient(t, server.port);
  // The limit can only be kept once it is known (RFC 9113 5.1.2): wait for the server's SETTINGS.
  if (!session.settled) await within('the server SETTINGS', 5_000, new Promise((resolve) => session.once('remoteSettings', resolve)));
  t.is(session.remoteSettings.maxConcurrentStreams, 2);
  const payloads = Array.from({ length: 10 }, (_, i) => Buffer.from(`queued call ${i}`));
  const results = await within('10 calls', 10_000, Promise.all(payloads.map((p) => engineCall(session, grpcRequestHeaders('x', UNARY), grpcFrame(p)))));
  for (const [i, r] of results.entries()) {
    t.is(r.rstCode, 0, `call ${i} completed`);
    t.deepEqual(grpcMessages(r.body), [payloads[i]!]);
  }
  t.is(maxOpen, 2, 'never more than 2 open at the server');
});

test('engine client -> node server: graceful GOAWAY (session.close) lets in-flight calls finish; request() then throws', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const log: NodeLog = { held: [], closed: [] };
  const server = await nodeServer(t, log);
  const session = await engineClient(t, server.port);
  const calls = [0, 1].map((i) => {
    const stream = session.request(grpcRequestHeaders('x', HOLD));
    stream.end(grpcFrame(Buffer.from(`in flight ${i}`)));
    return collectStream(stream);
  });
  await until('the server holds both calls', 5_000, () => log.held.length === 2);
  const goaway = new Promise<[number, number]>((resolve) => session.once('goaway', (code: number, last: number) => resolve([code, last])));
  server.sessions[0]!.close();
  const [code, lastStreamId] = await within('GOAWAY', 5_000, goaway);
  t.is(code, 0);
  t.is(lastStreamId, 3);
  t.throws(() => session.request(grpcRequestHeaders('x', UNARY)), { message: /GOAWAY/ });
  const sessionClosed = new Promise<void>((resolve) => session.once('close', () => resolve()));
  for (const held of log.held) void readBody(held).then((body) => answerGrpc(held, grpcMessages(body)), () => {});
  const results = await within('the in-flight calls', 5_000, Promise.all(calls));
  for (const [i, r] of results.entries()) {
    t.is(r.rstCode, 0, `in-flight call ${i} completed`);
    t.is(grpcStatus(r), '0');
    t.deepEqual(grpcMessages(r.body), [Buffer.from(`in flight ${i}`)]);
  }
  await within('our session closes once its streams are done', 5_000, sessionClosed);
});

test('engine client -> node server: GOAWAY with a lower last stream id refuses the streams above it (REFUSED_STREAM)', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const log: NodeLog = { held: [], closed: [] };
  const server = await nodeServer(t, log);
  const session = await engineClient(t, server.port);
  const streams = [0, 1, 2].map((i) => {
    const stream = session.request(grpcRequestHeaders('x', HOLD));
    stream.end(grpcFrame(Buffer.from(`call ${i}`)));
    return stream;
  });
  const outcomes = streams.map(collectStream);
  await until('the server holds three calls', 5_000, () => log.held.length === 3);
  t.deepEqual(streams.map((s) => s.id), [1, 3, 5]);
  server.sessions[0]!.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
  const refused = await within('the streams above 1 close', 5_000, Promise.all(outcomes.slice(1)));
  for (const r of refused) {
    t.is(r.rstCode, EngineErrorCode.REFUSED_STREAM);
    t.true(r.aborted);
  }
  t.throws(() => session.request(grpcRequestHeaders('x', UNARY)), { message: /GOAWAY/ });
  const first = log.held.find((s) => s.id === 1)!;
  void readBody(first).then((body) => answerGrpc(first, grpcMessages(body)), () => {});
  const completed = await within('stream 1 completes', 5_000, outcomes[0]!);
  t.is(completed.rstCode, 0);
  t.deepEqual(grpcMessages(completed.body), [Buffer.from('call 0')]);
});

test('engine client -> node server: the server destroys the socket mid-call; our stream closes with a reset code, the session closes', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const log: NodeLog = { held: [], closed: [] };
  const server = await nodeServer(t, log);
  const session = await engineClient(t, server.port);
  const stream = session.request(grpcRequestHeaders('x', HOLD));
  const outcome = collectStream(stream);
  stream.write(grpcFrame(Buffer.from('half a call')));
  await until('the server holds the call', 5_000, () => log.held.length === 1);
  const sessionClosed = new Promise<void>((resolve) => session.once('close', () => resolve()));
  server.sockets[0]!.destroy();
  const result = await within('our stream closes', 5_000, outcome);
  t.not(result.rstCode, undefined);
  t.not(result.rstCode, 0);
  t.true(result.aborted);
  await within('our session closes', 5_000, sessionClosed);
  t.true(session.destroyed);
});

test('engine client -> node server: calls made before the connection is up go out once it is', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await nodeServer(t);
  const session = connect('127.0.0.1', server.port, CLIENT_OPTIONS);
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  // No wait for 'connect': the proxy puts calls on a session that is still connecting.
  const payloads = Array.from({ length: 5 }, (_, i) => Buffer.from(`early ${i}`));
  const results = await within('early calls', 5_000, Promise.all(payloads.map((p) => engineCall(session, grpcRequestHeaders('x', UNARY), grpcFrame(p)))));
  results.forEach((r, i) => checkUnaryEcho(t, r, [payloads[i]!]));
});

test('engine client -> node server: a 1xx answer is a headers event before the response', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await startNodeServer((stream) => {
    stream.additionalHeaders({ ':status': 103, link: '</a>; rel=preload' });
    stream.respond({ ':status': 200 }, { endStream: true });
  });
  t.teardown(() => server.close());
  const session = await engineClient(t, server.port);
  const stream = session.request({ ':method': 'GET', ':path': '/', ':scheme': 'http', ':authority': 'x' }, { endStream: true });
  const events: string[] = [];
  stream.on('headers', (h: IncomingHttpHeaders) => events.push(`headers ${h[':status']} ${h.link}`));
  stream.on('response', (h: IncomingHttpHeaders) => events.push(`response ${h[':status']}`));
  const result = await within('the answer', 5_000, collectStream(stream));
  t.is(result.rstCode, 0);
  t.deepEqual(events, ['headers 103 </a>; rel=preload', 'response 200']);
});

test("engine client -> node server: the server's SETTINGS (a smaller initial window, a larger max frame) apply to a body already being sent", async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await startNodeServer((stream) => {
    void readBody(stream).then((body) => {
      stream.respond({ ':status': 200 }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'x-request-sha256': sha256(body), 'x-request-bytes': String(body.length) }));
      stream.end();
    }, () => {});
  }, { settings: { initialWindowSize: 16 * 1024, maxFrameSize: 64 * 1024 } });
  t.teardown(() => server.close());
  const session = connect('127.0.0.1', server.port, CLIENT_OPTIONS);
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  // Written at once, before the server's SETTINGS lower the window below the 65,535 assumed
  // until then: the stream's send window goes negative and must be waited out.
  const body = randomBytes(3 * MiB);
  const result = await within('the upload', 10_000, engineCall(session, { ':method': 'POST', ':path': '/upload', ':scheme': 'http', ':authority': 'x' }, body));
  t.is(result.rstCode, 0);
  t.is(hashOf(result.trailers, 'x-request-bytes'), String(body.length));
  t.is(hashOf(result.trailers, 'x-request-sha256'), sha256(body));
  t.is(session.remoteSettings.maxFrameSize, 64 * 1024);
});

// =====================================================================================
// 3. @grpc/grpc-js both ways
// =====================================================================================

const identity = (b: Buffer): Buffer => b;

test('grpc-js client -> engine server: unary and server streaming', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await engineServer(t);
  const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const payload = randomBytes(1000);
  const unary = await within('grpc-js unary', 5_000, new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(UNARY, identity, identity, payload, (err, value) => (err ? reject(err) : resolve(value!)));
  }));
  t.true(unary.equals(payload), 'the unary answer echoes the request');

  const call = client.makeServerStreamRequest(SERVER_STREAM, identity, identity, Buffer.from('go'));
  const messages: Buffer[] = [];
  call.on('data', (m: Buffer) => messages.push(m));
  const status = await within('grpc-js server stream', 10_000, new Promise<grpc.StatusObject>((resolve) => {
    call.on('error', () => {});
    call.on('status', resolve);
  }));
  t.is(status.code, grpc.status.OK);
  t.is(messages.length, SERVER_STREAM_MESSAGES);
  t.true(messages.every((m, i) => m.equals(streamMessage(i))));
});

test('engine client (UPSTREAM_SESSION_OPTIONS) -> grpc-js server: unary and server streaming, status 0 in trailers', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = new grpc.Server();
  const service: grpc.ServiceDefinition = {
    Unary: { path: UNARY, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
    ServerStream: { path: SERVER_STREAM, requestStream: false, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  };
  server.addService(service, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request),
    ServerStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      for (let i = 0; i < SERVER_STREAM_MESSAGES; i++) call.write(streamMessage(i));
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.teardown(() => server.forceShutdown());
  const session = await engineClient(t, port, UPSTREAM_SESSION_OPTIONS);
  const payload = randomBytes(1000);
  const unary = await within('unary', 5_000, engineCall(session, grpcRequestHeaders(`127.0.0.1:${port}`, UNARY), grpcFrame(payload)));
  t.is(unary.rstCode, 0);
  t.is(Number(unary.headers?.[':status']), 200);
  t.is(hashOf(unary.trailers, 'grpc-status'), '0', 'status 0 in trailers');
  t.deepEqual(grpcMessages(unary.body), [payload]);

  const streamed = await within('server stream', 10_000, engineCall(session, grpcRequestHeaders(`127.0.0.1:${port}`, SERVER_STREAM), grpcFrame(Buffer.from('go'))));
  checkServerStream(t, streamed);
  t.is(hashOf(streamed.trailers, 'grpc-status'), '0');
});

// =====================================================================================
// 4. Backpressure
// =====================================================================================

interface Pump {
  /** Bytes write() took so far. */
  accepted: number;
  falseReturns: number;
  drains: number;
  readonly hash: ReturnType<typeof createHash>;
}

/**
 * Writes `total` bytes of fresh random 64 KiB chunks the way a proxy does: write until write()
 * says false, then wait for 'drain'. Each chunk is a new buffer, since the engine keeps references.
 */
function pumpInto(stream: H2Stream, total: number, pump: Pump): void {
  const write = (): void => {
    while (pump.accepted < total) {
      const chunk = randomBytes(Math.min(64 * 1024, total - pump.accepted));
      pump.hash.update(chunk);
      pump.accepted += chunk.length;
      if (!stream.write(chunk)) {
        pump.falseReturns++;
        stream.once('drain', () => {
          pump.drains++;
          write();
        });
        return;
      }
    }
    stream.end();
  };
  write();
}

test('backpressure: a client that stops reading holds our writes to its window; after it resumes, all 50 MiB arrive and drain fired', async (t) => {
  t.timeout(60_000);
  const total = 50 * MiB;
  const pump: Pump = { accepted: 0, falseReturns: 0, drains: 0, hash: createHash('sha256') };
  const server = await startEngineServer((stream) => {
    stream.respond({ ':status': 200 });
    pumpInto(stream, total, pump);
  });
  t.teardown(() => server.close());
  const client = await nodeClient(t, server.port);
  const req = client.request({ ':method': 'POST', ':path': '/bulk' }, { endStream: true });
  req.on('error', () => {});
  req.pause();
  await within('the response', 5_000, new Promise((resolve) => req.once('response', resolve)));
  // Let the writer run into the client's window; then it must sit still.
  let last = -1;
  await until('the writer stops', 10_000, () => {
    const still = pump.accepted === last;
    last = pump.accepted;
    return still && pump.accepted > 0;
  });
  await delay(300);
  const heldAt = pump.accepted;
  t.is(pump.accepted, last, 'nothing more was accepted while the client was not reading');
  t.true(heldAt < 2 * MiB, `write() accepted only about the peer's window while it read nothing (${heldAt} bytes)`);
  t.true(pump.falseReturns >= 1, 'write() returned false');
  t.true(server.sockets[0]!.writableLength < 2 * MiB, `the socket holds little (${server.sockets[0]!.writableLength} bytes)`);

  const received = createHash('sha256');
  let bytes = 0;
  req.on('data', (c: Buffer) => {
    received.update(c);
    bytes += c.length;
  });
  req.resume();
  await within('the 50 MiB', 40_000, new Promise((resolve) => req.once('end', resolve)));
  t.is(bytes, total);
  t.is(received.digest('hex'), pump.hash.digest('hex'), 'every byte intact and in order');
  t.true(pump.drains >= 1, "'drain' fired");
});

test("backpressure: a writer that refills from 'drain' keeps going when one WINDOW_UPDATE empties the queue (big peer windows)", async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  // A peer with large windows (grpc-go's BDP estimation, or our own 1 MiB upstream window) returns
  // window in big steps: one WINDOW_UPDATE covers everything queued, so 'drain' fires with the
  // queue empty, and the writer refills it from inside that 'drain'.
  const total = 24 * MiB;
  const pump: Pump = { accepted: 0, falseReturns: 0, drains: 0, hash: createHash('sha256') };
  const server = await startEngineServer((stream) => {
    stream.respond({ ':status': 200 });
    pumpInto(stream, total, pump);
  });
  t.teardown(() => server.close());
  const client = await nodeClient(t, server.port, { settings: { initialWindowSize: 4 * MiB } });
  client.setLocalWindowSize(32 * MiB);
  const req = client.request({ ':method': 'POST', ':path': '/bulk' }, { endStream: true });
  const received = createHash('sha256');
  let bytes = 0;
  req.on('data', (c: Buffer) => {
    received.update(c);
    bytes += c.length;
  });
  const ended = new Promise((resolve) => req.once('end', resolve));
  const outcome = collectStream(req);
  try {
    await within(`all ${total} bytes`, 10_000, ended);
  } catch (err) {
    t.fail(`${(err as Error).message}: stalled at ${bytes} of ${total} bytes received, ${pump.accepted} accepted by write(), ${pump.drains} drains`);
    return;
  }
  await outcome;
  t.is(bytes, total);
  t.is(received.digest('hex'), pump.hash.digest('hex'));
});

test("backpressure: our client pauses a response; data that arrived with the stream's end is still delivered on resume", async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const body = randomBytes(256 * 1024);
  let serverDone!: () => void;
  const serverClosed = new Promise<void>((resolve) => (serverDone = resolve));
  const server = await startNodeServer((stream) => {
    stream.once('close', () => serverDone());
    stream.respond({ ':status': 200 }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(body);
  });
  t.teardown(() => server.close());
  const session = await engineClient(t, server.port);
  const stream = session.request({ ':method': 'POST', ':path': '/paused', ':scheme': 'http', ':authority': 'x' }, { endStream: true });
  // A proxy pauses the upstream response while its downstream is slow; 256 KiB fits in our window,
  // so the whole answer, trailers and END_STREAM included, arrives while we are paused.
  stream.pause();
  const outcome = collectStream(stream);
  await within('the server finishes', 5_000, serverClosed);
  await delay(100);
  stream.resume();
  const result = await within('our stream closes', 5_000, outcome);
  t.is(result.body.length, body.length, 'the bytes queued while paused are delivered');
  t.true(result.body.equals(body));
  t.true(result.ended, "'end' is emitted");
  t.is(hashOf(result.trailers, 'grpc-status'), '0');
  t.is(result.rstCode, 0);
});

// =====================================================================================
// 5. Large headers
// =====================================================================================

test('large headers: 40 KiB of request headers (CONTINUATION) reach our server and come back in the response', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await engineServer(t);
  const client = await nodeClient(t, server.port, { maxSendHeaderBlockLength: MiB, settings: { maxHeaderListSize: MiB } });
  const big = bigHeaders(40, 1000);
  const result = await within('the call', 5_000, nodeCall(client, { ...grpcRequestHeaders('x', HEADER_ECHO), ...big }));
  t.is(result.rstCode, 0);
  t.is(Number(result.headers?.[':status']), 200);
  t.deepEqual(pickBigHeaders(result.headers ?? {}), big);
});

test('large headers: our encoder splits a 40 KiB response header block into HEADERS + CONTINUATION at the peer max frame size', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await engineServer(t);
  const conn = await RawH2.connect(server.port);
  t.teardown(() => conn.destroy());
  const big = bigHeaders(40, 1000);
  await conn.request(1, [...grpcRequestFields('x', [], HEADER_ECHO), ...Object.entries(big)], true);
  const last = await conn.waitFor('the end of the response header block', (f) => f.streamId === 1 && (f.type === FrameType.HEADERS || f.type === FrameType.CONTINUATION) && (f.flags & Flags.END_HEADERS) !== 0);
  const blockFrames = conn.received.filter((f) => f.streamId === 1 && (f.type === FrameType.HEADERS || f.type === FrameType.CONTINUATION));
  t.is(blockFrames[0]!.type, FrameType.HEADERS);
  t.true(blockFrames.length >= 2, 'CONTINUATION was needed');
  t.true(blockFrames.slice(1).every((f) => f.type === FrameType.CONTINUATION));
  t.true(blockFrames.every((f) => f.payload.length <= 16_384), 'no frame over the peer max frame size');
  t.is(blockFrames.at(-1), last);
  t.true(blockFrames.slice(0, -1).every((f) => (f.flags & Flags.END_HEADERS) === 0));
  t.true((blockFrames[0]!.flags & Flags.END_STREAM) !== 0, 'END_STREAM rides on the HEADERS frame');
  const decoded = new HpackDecoder().decode(Buffer.concat(blockFrames.map((f) => f.payload)), { maxHeaderListBytes: MiB, maxHeaderListPairs: 1000 });
  t.false(decoded.tooLarge);
  const fields = new Map<string, string>();
  for (let i = 0; i < decoded.fields.length; i += 2) fields.set(decoded.fields[i]!, decoded.fields[i + 1]!);
  t.is(fields.get(':status'), '200');
  for (const [name, value] of Object.entries(big)) t.is(fields.get(name), value, name);
});

test('large headers: our client sends 40 KiB of request headers to node:http2 and reads them back', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await nodeServer(t, { held: [], closed: [] }, { settings: { maxHeaderListSize: MiB }, maxSendHeaderBlockLength: MiB });
  const session = await engineClient(t, server.port);
  const big = bigHeaders(40, 1000);
  const result = await within('the call', 5_000, engineCall(session, { ...grpcRequestHeaders('x', HEADER_ECHO), ...big }));
  t.is(result.rstCode, 0);
  t.deepEqual(pickBigHeaders(result.headers ?? {}), big);
});

test('large headers: a request over maxHeaderListBytes is reset with ENHANCE_YOUR_CALM; the connection stays usable', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await engineServer(t);
  const client = await nodeClient(t, server.port, { maxSendHeaderBlockLength: MiB, settings: { maxHeaderListSize: MiB } });
  // 80 KiB of fields against a 64 KiB limit (but well under the 2 x 64 KiB CONTINUATION-flood cutoff).
  const tooBig = bigHeaders(80, 1000);
  const refused = await within('the oversized call', 5_000, nodeCall(client, { ...grpcRequestHeaders('x', HEADER_ECHO), ...tooBig }));
  t.is(refused.rstCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  t.is(refused.headers, undefined);
  t.false(client.destroyed);
  const after = await within('a call after it', 5_000, nodeCall(client, grpcRequestHeaders('x', UNARY), grpcFrame(Buffer.from('still here'))));
  checkUnaryEcho(t, after, [Buffer.from('still here')]);
  t.is(server.sessions.length, 1, 'the same connection');
});

// =====================================================================================
// 6. Protocol errors, frame by frame
// =====================================================================================

async function rawPeer(t: ExecutionContext, preface = true): Promise<{ conn: RawH2; server: EngineServer }> {
  const server = await engineServer(t);
  const conn = await RawH2.connect(server.port, { preface });
  t.teardown(() => conn.destroy());
  return { conn, server };
}

async function expectGoaway(t: ExecutionContext, conn: RawH2, code: number): Promise<void> {
  const f = await conn.waitFor('GOAWAY', (x) => x.type === FrameType.GOAWAY);
  t.is(f.payload.readUInt32BE(4), code, `GOAWAY ${code}`);
  t.true(await conn.closedWithin(3_000), 'the connection closes after the GOAWAY');
}

test('protocol: a bad preface closes the connection', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { conn } = await rawPeer(t, false);
  await conn.send(Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n'));
  t.true(await conn.closedWithin(3_000));
  t.is(conn.count(FrameType.HEADERS), 0);
});

test('protocol: a frame over 16384 bytes gets GOAWAY FRAME_SIZE_ERROR', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { conn } = await rawPeer(t);
  // A HEADERS frame: a field block, so a connection error (RFC 9113 4.2).
  await conn.send(frame(FrameType.HEADERS, Flags.END_HEADERS, 1, Buffer.alloc(16_385)));
  await expectGoaway(t, conn, ErrorCode.FRAME_SIZE_ERROR);
});

test('protocol: DATA on stream 0 gets GOAWAY PROTOCOL_ERROR', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { conn } = await rawPeer(t);
  await conn.send(dataFrame(0, Buffer.from('nope')));
  await expectGoaway(t, conn, ErrorCode.PROTOCOL_ERROR);
});

test('protocol: a WINDOW_UPDATE that overflows the connection window gets GOAWAY FLOW_CONTROL_ERROR', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { conn } = await rawPeer(t);
  await conn.send(windowUpdateFrame(0, 2 ** 31 - 1));
  await expectGoaway(t, conn, ErrorCode.FLOW_CONTROL_ERROR);
});

test('protocol: HEADERS with an invalid HPACK index gets GOAWAY COMPRESSION_ERROR', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { conn } = await rawPeer(t);
  // 0xbf: indexed field 63, the second dynamic entry, of an empty dynamic table.
  await conn.send(headersFrame(1, Buffer.from([0x82, 0xbf]), { endStream: true }));
  await expectGoaway(t, conn, ErrorCode.COMPRESSION_ERROR);
});

test('protocol: an uppercase header name resets that stream with PROTOCOL_ERROR only', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { conn } = await rawPeer(t);
  await conn.send(headersFrame(1, hpackLiterals([...grpcRequestFields('x', [], TRAILERS_ONLY), ['X-Upper', 'v']]), { endStream: true }));
  const rst = await conn.waitFor('RST_STREAM on stream 1', (f) => f.type === FrameType.RST_STREAM && f.streamId === 1);
  t.is(rst.payload.readUInt32BE(0), ErrorCode.PROTOCOL_ERROR);
  // The connection is fine: the next stream is answered.
  await conn.send(headersFrame(3, hpackLiterals(grpcRequestFields('x', [], TRAILERS_ONLY)), { endStream: true }));
  await conn.waitFor('the answer on stream 3', (f) => f.type === FrameType.HEADERS && f.streamId === 3);
  t.is(conn.count(FrameType.GOAWAY), 0);
  t.false(conn.isClosed);
});

test('protocol: PING is answered with an ACK carrying the same payload', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { conn } = await rawPeer(t);
  const payload = Buffer.from('8 bytes!');
  await conn.send(pingFrame(payload));
  const ack = await conn.waitFor('PING ACK', (f) => f.type === FrameType.PING && (f.flags & Flags.ACK) !== 0);
  t.true(ack.payload.equals(payload));
  t.is(ack.streamId, 0);
});

test('protocol: SETTINGS is answered with an ACK, and our SETTINGS advertise the configured limits', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { conn } = await rawPeer(t);
  const ack = await conn.waitFor('SETTINGS ACK', (f) => f.type === FrameType.SETTINGS && (f.flags & Flags.ACK) !== 0);
  t.is(ack.payload.length, 0);
  const ours: Frame = await conn.waitFor('our SETTINGS', (f) => f.type === FrameType.SETTINGS && (f.flags & Flags.ACK) === 0);
  const settings = new Map<number, number>();
  for (let p = 0; p < ours.payload.length; p += 6) settings.set(ours.payload.readUInt16BE(p), ours.payload.readUInt32BE(p + 2));
  t.is(settings.get(0x3), SERVER_OPTIONS.maxConcurrentStreams);
  t.is(settings.get(0x4), SERVER_OPTIONS.streamWindow);
  t.is(settings.get(0x6), SERVER_OPTIONS.maxHeaderListBytes);
  t.is(settings.get(0x2), 0, 'push disabled');
});

test('protocol: a CONTINUATION flood past 2 x maxHeaderListBytes gets GOAWAY ENHANCE_YOUR_CALM', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { conn } = await rawPeer(t);
  const junk = Buffer.alloc(16_384, 0x41);
  await conn.send(headersFrame(1, junk, { endHeaders: false }));
  const limit = 2 * SERVER_OPTIONS.maxHeaderListBytes;
  for (let sent = junk.length; sent <= limit + junk.length && !conn.isClosed; sent += junk.length) {
    await conn.send(continuationFrame(1, junk, false));
  }
  await expectGoaway(t, conn, ErrorCode.ENHANCE_YOUR_CALM);
});

test('protocol: DATA beyond the stream window we advertised gets RST_STREAM FLOW_CONTROL_ERROR', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { conn } = await rawPeer(t);
  await conn.send(headersFrame(1, hpackLiterals(grpcRequestFields('x', [], HOLD))));
  // The HOLD handler reads nothing, so no WINDOW_UPDATE comes for the stream: 1 MiB and one byte more.
  const chunk = Buffer.alloc(16_384, 0x42);
  for (let sent = 0; sent < SERVER_OPTIONS.streamWindow; sent += chunk.length) await conn.send(dataFrame(1, chunk));
  await conn.send(dataFrame(1, Buffer.from([1])));
  const reset = await conn.waitFor('RST_STREAM or GOAWAY', (f) => (f.type === FrameType.RST_STREAM && f.streamId === 1) || f.type === FrameType.GOAWAY);
  t.is(reset.type === FrameType.RST_STREAM ? reset.payload.readUInt32BE(0) : reset.payload.readUInt32BE(4), ErrorCode.FLOW_CONTROL_ERROR);
});

test('protocol: padded HEADERS (with PRIORITY) and padded DATA are accepted with the padding stripped', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { conn } = await rawPeer(t);
  const data: Buffer[] = [];
  conn.onFrame = (f) => {
    if (f.type === FrameType.DATA && f.streamId === 1) data.push(f.payload);
  };
  const block = hpackLiterals(grpcRequestFields('x', [], UNARY));
  // Pad length 4, then 5 bytes of priority (dependency 0, weight 16), the block, 4 bytes of padding.
  const headersPayload = Buffer.concat([Buffer.from([4]), Buffer.from([0, 0, 0, 0, 16]), block, Buffer.alloc(4)]);
  await conn.send(frame(FrameType.HEADERS, Flags.END_HEADERS | Flags.PADDED | Flags.PRIORITY, 1, headersPayload));
  const message = grpcFrame(Buffer.from('padded'));
  await conn.send(frame(FrameType.DATA, Flags.PADDED | Flags.END_STREAM, 1, Buffer.concat([Buffer.from([10]), message, Buffer.alloc(10)])));
  await conn.waitFor('the trailers', (f) => f.type === FrameType.HEADERS && f.streamId === 1 && (f.flags & Flags.END_STREAM) !== 0);
  t.deepEqual(grpcMessages(Buffer.concat(data)), [Buffer.from('padded')]);
  t.is(conn.count(FrameType.RST_STREAM), 0);
});

test('protocol: streams over our MAX_CONCURRENT_STREAMS, opened before the client acknowledged our SETTINGS, are refused (REFUSED_STREAM); the connection carries on', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const log: EngineLog = { held: [], closed: [] };
  const server = await startEngineServer(testService(log), { ...SERVER_OPTIONS, maxConcurrentStreams: 2 });
  t.teardown(() => server.close());
  // Until a client acknowledges our SETTINGS it may assume no limit (RFC 9113 5.1.2, 6.5.3), as
  // every client does that opens calls at once on a new connection: the excess is refused, a
  // stream error, and REFUSED_STREAM tells the client it may retry (nghttp2 does the same).
  const conn = await RawH2.connect(server.port, { ackSettings: false });
  t.teardown(() => conn.destroy());
  for (const id of [1, 3, 5]) await conn.send(headersFrame(id, hpackLiterals(grpcRequestFields('x', [], HOLD))));
  const rst = await conn.waitFor('RST_STREAM on stream 5', (f) => (f.type === FrameType.RST_STREAM && f.streamId === 5) || f.type === FrameType.GOAWAY);
  t.is(rst.type, FrameType.RST_STREAM, rst.type === FrameType.GOAWAY ? `GOAWAY ${rst.payload.readUInt32BE(4)} instead of a stream error` : 'a stream error');
  if (rst.type !== FrameType.RST_STREAM) return;
  t.is(rst.payload.readUInt32BE(0), ErrorCode.REFUSED_STREAM);
  await until('two held', 2_000, () => log.held.length === 2);
  t.deepEqual(log.held.map((s) => s.id), [1, 3]);
  log.held[0]!.respond({ ':status': 200 }, { endStream: true });
  await conn.waitFor('the answer on stream 1', (f) => f.type === FrameType.HEADERS && f.streamId === 1);
  t.is(conn.count(FrameType.GOAWAY), 0);
});

// =====================================================================================
// 7. PING and session timeouts
// =====================================================================================

test('ping: our client pings node:http2 and gets the round trip; node pings our server', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await nodeServer(t);
  const session = await engineClient(t, server.port);
  const [err, ms, payload] = await within('our PING answered', 5_000, new Promise<[Error | null, number, Buffer]>((resolve) => {
    t.true(session.ping((e, d, p) => resolve([e, d, p])));
  }));
  t.is(err, null);
  t.true(ms >= 0 && ms < 5_000, `round trip ${ms} ms`);
  t.is(payload.length, 8);

  const ours = await engineServer(t);
  const client = await nodeClient(t, ours.port);
  const nodeRtt = await within("node's PING answered", 5_000, new Promise<number>((resolve, reject) => {
    client.ping(Buffer.from('abcdefgh'), (e, d, p) => (e ? reject(e) : p.equals(Buffer.from('abcdefgh')) ? resolve(d) : reject(new Error('payload changed'))));
  }));
  t.true(nodeRtt >= 0);
});

test("session setTimeout: 'timeout' fires once per quiet spell, and again only after new activity", async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await nodeServer(t);
  const session = await engineClient(t, server.port);
  await delay(200); // let the SETTINGS exchange finish
  let timeouts = 0;
  session.setTimeout(100, () => timeouts++);
  await delay(1_000); // ten periods of silence
  t.is(timeouts, 1, 'one timeout for one quiet spell');
  await within('PING', 5_000, new Promise((resolve) => session.ping(resolve)));
  await delay(500);
  t.is(timeouts, 2, 'a second timeout after activity and new silence');
  t.false(session.destroyed, 'a timeout alone does not close the session');
});

// =====================================================================================
// 8. TLS
// =====================================================================================

const PEM = selfSigned('h2-engine-test');

test('tls: connect() with a secureContext to a node:http2 secure server (ALPN h2) makes a call', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const server = await startNodeServer(testService<http2.ServerHttp2Stream>({ held: [], closed: [] }), {}, { key: PEM.key, cert: PEM.cert });
  t.teardown(() => server.close());
  let identityChecked = false;
  const session = await engineClient(t, server.port, {
    secureContext: tls.createSecureContext({ ca: PEM.cert }),
    checkServerIdentity: (host, cert) => {
      identityChecked = true;
      return tls.checkServerIdentity(host, cert);
    },
  });
  t.true(session.encrypted);
  t.is(session.alpnProtocol, 'h2');
  const result = await within('a call over TLS', 5_000, engineCall(session, grpcRequestHeaders('x', UNARY), grpcFrame(Buffer.from('secret'))));
  checkUnaryEcho(t, result, [Buffer.from('secret')]);
  t.true(identityChecked, 'checkServerIdentity was consulted');
});

test('tls: a TLS server without ALPN h2 makes the session emit error and close', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  for (const alpn of [undefined, ['http/1.1']]) {
    const server = tls.createServer({ key: PEM.key, cert: PEM.cert, ...(alpn ? { ALPNProtocols: alpn } : {}) }, (socket) => socket.on('error', () => {}));
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as net.AddressInfo).port;
    const session = connect('127.0.0.1', port, { ...CLIENT_OPTIONS, secureContext: tls.createSecureContext({ ca: PEM.cert }) });
    t.teardown(() => session.destroy());
    const errors: Error[] = [];
    session.on('error', (e: Error) => errors.push(e));
    let connected = false;
    session.once('connect', () => (connected = true));
    await within(`close (server ALPN ${JSON.stringify(alpn)})`, 5_000, new Promise((resolve) => session.once('close', resolve)));
    await delay(10);
    t.is(errors.length, 1, `one 'error' (server ALPN ${JSON.stringify(alpn)})`);
    t.false(connected, "no 'connect'");
    t.true(session.destroyed);
  }
});

