/**
 * HTTP/2 written and read frame by frame over a plain or TLS socket, for sending what node's own
 * http2 client refuses to send (streams reset as soon as opened, endless CONTINUATION, a preface
 * one byte at a time, floods of SETTINGS and PING) and for playing an upstream that answers with
 * frames a well-behaved server never writes. Header blocks are HPACK literals without indexing and
 * without Huffman: every decoder must accept them, and no encoder state has to be kept.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readdir, readlink } from 'node:fs/promises';
import { rssBytes } from '../../lib/processes.js';
import { unary, grpc } from '../fixtures/echo-service.js';

export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flags = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** The name of an error code, for assertion messages. */
export function errorName(code: number): string {
  return Object.entries(ErrorCode).find(([, v]) => v === code)?.[0] ?? `0x${code.toString(16)}`;
}

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId & 0x7fffffff, 5);
  payload.copy(out, 9);
  return out;
}

export function settingsFrame(entries: ReadonlyArray<readonly [number, number]> = []): Buffer {
  const payload = Buffer.alloc(6 * entries.length);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

export const settingsAck = (): Buffer => frame(FrameType.SETTINGS, Flags.ACK, 0);

export function headersFrame(streamId: number, block: Buffer, opts: { endStream?: boolean; endHeaders?: boolean } = {}): Buffer {
  const flags = (opts.endStream ? Flags.END_STREAM : 0) | (opts.endHeaders === false ? 0 : Flags.END_HEADERS);
  return frame(FrameType.HEADERS, flags, streamId, block);
}

export function continuationFrame(streamId: number, block: Buffer, endHeaders: boolean): Buffer {
  return frame(FrameType.CONTINUATION, endHeaders ? Flags.END_HEADERS : 0, streamId, block);
}

export function dataFrame(streamId: number, payload: Buffer, endStream = false): Buffer {
  return frame(FrameType.DATA, endStream ? Flags.END_STREAM : 0, streamId, payload);
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, streamId, payload);
}

export function pingFrame(opaque: Buffer = Buffer.alloc(8), ack = false): Buffer {
  return frame(FrameType.PING, ack ? Flags.ACK : 0, 0, opaque);
}

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment & 0x7fffffff);
  return frame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

export function goawayFrame(lastStreamId: number, code: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(lastStreamId & 0x7fffffff);
  payload.writeUInt32BE(code, 4);
  return frame(FrameType.GOAWAY, 0, 0, payload);
}

/** An HPACK integer (RFC 7541 §5.1) whose first byte carries `firstByte`'s high bits. */
function hpackInteger(value: number, prefixBits: number, firstByte: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [firstByte | value];
  const out = [firstByte | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1');
  return Buffer.concat([Buffer.from(hpackInteger(bytes.length, 7, 0x00)), bytes]);
}

/** A header block of literal fields without indexing, new names, no Huffman (RFC 7541 §6.2.2). */
export function hpackLiterals(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]));
}

/** The request header fields of a gRPC call, pseudo-headers first as HTTP/2 requires. */
export function grpcRequestFields(authority: string, extra: ReadonlyArray<readonly [string, string]> = [], path = '/remora.test.Echo/Unary'): Array<readonly [string, string]> {
  return [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', authority],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
    ...extra,
  ];
}

/** A gRPC length-prefixed message: compressed flag, 4-byte length (which may lie), payload. */
export function grpcMessage(payload: Buffer, opts: { declaredLength?: number; compressed?: boolean } = {}): Buffer {
  const out = Buffer.alloc(5 + payload.length);
  out[0] = opts.compressed ? 1 : 0;
  out.writeUInt32BE(opts.declaredLength ?? payload.length, 1);
  payload.copy(out, 5);
  return out;
}

export interface RawConnectOptions {
  /** Connect with TLS (ALPN h2 is asked for unless the options say otherwise). */
  readonly tls?: tls.ConnectionOptions;
  /** Send the client preface and an empty SETTINGS at once (default true). */
  readonly preface?: boolean;
  /** Answer the peer's SETTINGS with an ACK, as the protocol asks (default true). */
  readonly ackSettings?: boolean;
}

/**
 * One HTTP/2 connection driven by hand. Incoming frames are parsed and kept (DATA payloads are
 * dropped after counting, so a test that reads a lot stays small).
 */
export class RawH2 {
  readonly received: Frame[] = [];
  readonly counts = new Map<number, number>();
  /** Bytes that came in on this connection, frames or not (a 505 reply, say). */
  bytesIn = 0;
  readonly closed: Promise<void>;
  closedAt: number | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  /** Set when the peer must first send a client preface (we are the server side). */
  private awaitingPreface: boolean;

  constructor(readonly socket: net.Socket, private readonly opts: { ackSettings: boolean; server: boolean }) {
    this.awaitingPreface = opts.server;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.closedAt = Date.now();
      this.wake();
      resolve();
    }));
  }

  static async connect(port: number, opts: RawConnectOptions = {}, host = '127.0.0.1'): Promise<RawH2> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s: net.Socket = opts.tls
        ? tls.connect({ host, port, ALPNProtocols: ['h2'], ...opts.tls }, () => resolve(s))
        : net.connect(port, host, () => resolve(s));
      s.once('error', reject);
    });
    socket.setNoDelay(true);
    const conn = new RawH2(socket, { ackSettings: opts.ackSettings ?? true, server: false });
    if (opts.preface ?? true) conn.send(Buffer.concat([CLIENT_PREFACE, settingsFrame()]));
    return conn;
  }

  get isClosed(): boolean {
    return this.closedAt !== undefined;
  }

  /**
   * Queues bytes; resolves once the socket has taken them (backpressure for floods), or after
   * `timeoutMs` if the peer stopped reading without closing.
   */
  send(bytes: Buffer, timeoutMs = 10_000): Promise<void> {
    if (this.socket.destroyed || this.socket.writableEnded) return Promise.resolve();
    return new Promise((resolve) => {
      if (this.socket.write(bytes)) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        this.socket.off('close', done);
        this.socket.off('drain', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }

  /** Sends the header fields of one request as a HEADERS frame (split into CONTINUATIONs when large). */
  async request(streamId: number, fields: ReadonlyArray<readonly [string, string]>, endStream = false, maxFrame = 16_384): Promise<void> {
    const block = hpackLiterals(fields);
    if (block.length <= maxFrame) return this.send(headersFrame(streamId, block, { endStream }));
    const parts: Buffer[] = [headersFrame(streamId, block.subarray(0, maxFrame), { endStream, endHeaders: false })];
    for (let at = maxFrame; at < block.length; at += maxFrame) {
      parts.push(continuationFrame(streamId, block.subarray(at, at + maxFrame), at + maxFrame >= block.length));
    }
    return this.send(Buffer.concat(parts));
  }

  count(type: number): number {
    return this.counts.get(type) ?? 0;
  }

  /** The first GOAWAY the peer sent, as { lastStreamId, code }. */
  goaway(): { lastStreamId: number; code: number } | undefined {
    const f = this.received.find((x) => x.type === FrameType.GOAWAY);
    return f && { lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4) };
  }

  /** Error codes of the RST_STREAM frames the peer sent, by stream. */
  resets(): Map<number, number> {
    const out = new Map<number, number>();
    for (const f of this.received) if (f.type === FrameType.RST_STREAM) out.set(f.streamId, f.payload.readUInt32BE(0));
    return out;
  }

  /** Resolves with the first frame (received so far or later) matching, or rejects after timeoutMs. */
  async waitFor(what: string, match: (f: Frame) => boolean, timeoutMs = 5_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(match);
      if (found) return found;
      if (this.isClosed) throw new Error(`connection closed before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  /** Resolves true once the peer has closed the connection, false if it is still open after timeoutMs. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    if (this.isClosed) return true;
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([this.closed.then(() => true), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), timeoutMs); })]);
    clearTimeout(timer);
    return result;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private onData(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (this.awaitingPreface) {
      if (this.buf.length < CLIENT_PREFACE.length) return;
      if (!this.buf.subarray(0, CLIENT_PREFACE.length).equals(CLIENT_PREFACE)) return void this.socket.destroy();
      this.buf = this.buf.subarray(CLIENT_PREFACE.length);
      this.awaitingPreface = false;
    }
    let any = false;
    while (this.buf.length >= 9) {
      const length = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + length) break;
      const f: Frame = {
        type: this.buf[3]!,
        flags: this.buf[4]!,
        streamId: this.buf.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.buf.subarray(9, 9 + length)),
      };
      this.buf = this.buf.subarray(9 + length);
      this.counts.set(f.type, this.count(f.type) + 1);
      this.received.push(f.type === FrameType.DATA ? { ...f, payload: Buffer.alloc(0) } : f);
      if (f.type === FrameType.SETTINGS && !(f.flags & Flags.ACK) && this.opts.ackSettings) void this.send(settingsAck());
      this.onFrame?.(f);
      any = true;
    }
    if (any) this.wake();
  }

  /** Called for each frame as it arrives (the server side of startRawH2Server answers from here). */
  onFrame: ((f: Frame) => void) | undefined;
}

export interface RawH2Server {
  readonly port: number;
  /** Every connection accepted so far. */
  readonly connections: RawH2[];
  close(): Promise<void>;
}

/**
 * An HTTP/2 server that sends its SETTINGS, ACKs the peer's, and hands every complete request
 * HEADERS frame (END_HEADERS set) to `onRequest`, which answers with whatever frames it likes.
 */
export async function startRawH2Server(onRequest: (conn: RawH2, streamId: number, headerFrame: Frame) => void): Promise<RawH2Server> {
  const connections: RawH2[] = [];
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const conn = new RawH2(socket, { ackSettings: true, server: true });
    connections.push(conn);
    conn.onFrame = (f) => {
      if (f.type === FrameType.HEADERS && f.flags & Flags.END_HEADERS && f.streamId % 2 === 1) onRequest(conn, f.streamId, f);
    };
    void conn.send(settingsFrame());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    close: () => new Promise<void>((resolve) => {
      for (const c of connections) c.destroy();
      server.close(() => resolve());
    }),
  };
}

/** The fields a gRPC server's response starts with. */
export const RESPONSE_FIELDS: ReadonlyArray<readonly [string, string]> = [[':status', '200'], ['content-type', 'application/grpc']];

/** Trailers carrying `code` (and a message, if any). */
export function trailerFields(code: number, message?: string): Array<readonly [string, string]> {
  return message === undefined ? [['grpc-status', String(code)]] : [['grpc-status', String(code)], ['grpc-message', encodeURIComponent(message)]];
}

// ---- Watching a sidecar while it is abused: a caller that must keep being served, its memory. ----

export interface BystanderReport {
  readonly calls: number;
  /** One line per failed or wrong call: the status and message, or what came back instead. */
  readonly failures: readonly string[];
}

export interface Bystander {
  /** Stops the loop, waits for the calls in flight, and says how they went. */
  stop(): Promise<BystanderReport>;
}

export interface BystanderOptions {
  /** Calls kept in flight at once (default 4). */
  readonly concurrency?: number;
  /** Metadata for every call (x-sleep-ms keeps calls in flight on the shared upstream connection). */
  readonly metadata?: () => grpc.Metadata;
  /** Bounds, whichever comes first (defaults 5,000 calls, 60 s). */
  readonly maxCalls?: number;
  readonly maxMs?: number;
  /** Checks each answer; returns what was wrong, or undefined. */
  readonly check?: (answer: { response: Buffer; headers: grpc.Metadata }, sent: Buffer) => string | undefined;
}

/**
 * A well-behaved caller that keeps making unary echo calls through `client` until stopped, each
 * with its own body that must come back unchanged; every failure or wrong answer is recorded.
 */
export function keepCalling(client: grpc.Client, opts: BystanderOptions = {}): Bystander {
  const failures: string[] = [];
  let calls = 0;
  let stopped = false;
  const deadline = Date.now() + (opts.maxMs ?? 60_000);
  const maxCalls = opts.maxCalls ?? 5_000;
  const worker = async (w: number): Promise<void> => {
    while (!stopped && calls < maxCalls && Date.now() < deadline) {
      const body = Buffer.from(`bystander ${w} call ${calls++}`);
      try {
        const answer = await unary(client, body, opts.metadata?.() ?? new grpc.Metadata(), { deadline: Date.now() + 10_000 });
        const wrong = opts.check ? opts.check(answer, body) : (answer.response.equals(body) ? undefined : `answer ${JSON.stringify(answer.response.toString())} to ${JSON.stringify(body.toString())}`);
        if (wrong !== undefined) failures.push(wrong);
      } catch (err) {
        const e = err as grpc.ServiceError;
        failures.push(`${grpc.status[e.code] ?? e.code}: ${e.details}`);
      }
    }
  };
  const running = Promise.all(Array.from({ length: opts.concurrency ?? 4 }, (_, w) => worker(w)));
  return {
    async stop() {
      stopped = true;
      await running;
      return { calls, failures };
    },
  };
}

/** Samples a process's resident memory every 100 ms until stopped; resolves with the peak. */
export function watchRss(pid: number): { stop(): Promise<number> } {
  let peak = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      peak = Math.max(peak, await rssBytes(pid).catch(() => 0));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return Math.max(peak, await rssBytes(pid).catch(() => 0));
    },
  };
}

/** How many sockets a process holds open (its /proc fd table), to tell whether connections leak. */
export async function openSockets(pid: number): Promise<number> {
  const fds = await readdir(`/proc/${pid}/fd`);
  let sockets = 0;
  for (const fd of fds) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (target.startsWith('socket:')) sockets++;
  }
  return sockets;
}

export const MiB = 2 ** 20;
