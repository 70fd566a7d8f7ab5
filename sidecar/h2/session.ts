/**
 * An HTTP/2 connection, either end: frames in and out of one socket, HPACK, flow control both
 * ways, SETTINGS, PING, GOAWAY and RST_STREAM, and the limits a proxy needs against its peers.
 * It keeps the parts of node's Http2Session interface the sidecar uses ('stream', 'connect',
 * 'remoteSettings', 'goaway', 'close', 'error', request(), close(), destroy(), ping(), setTimeout())
 * so the proxy code reads the same; underneath, a forwarded call costs a few frame parses and
 * writes instead of node's per-stream Duplex objects and C++ round trips.
 *
 * Writes made while handling one socket read (or in one tick) go out together: the socket is
 * corked at the first write and uncorked on the next tick.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  ErrorCode,
  FRAME_HEADER_BYTES,
  Flag,
  FrameType,
  MAX_ALLOWED_FRAME_SIZE,
  MAX_WINDOW,
  SETTINGS_ACK,
  SettingId,
  errorName,
  frameHeader,
  goawayFrame,
  headersFrames,
  pingFrame,
  rstStreamFrame,
  settingsFrame,
  windowUpdateFrame,
  writeFrameHeader,
  type Settings,
} from './frames.js';
import { HpackDecoder } from './hpack/decoder.js';
import { HpackEncoder } from './hpack/encoder.js';
import { HpackError } from './hpack/errors.js';
import { toFieldList, toHeaderObject } from './headers.js';
import { H2Stream } from './stream.js';

export interface SessionOptions {
  /** Our receive window per stream (SETTINGS_INITIAL_WINDOW_SIZE). */
  readonly streamWindow: number;
  /** Our receive window for the whole connection. */
  readonly connectionWindow: number;
  /** Streams the peer may open at once (server side; advertised). */
  readonly maxConcurrentStreams?: number;
  /** Header list limit, as HTTP/2 counts it (advertised as SETTINGS_MAX_HEADER_LIST_SIZE). */
  readonly maxHeaderListBytes: number;
  /** Fields per header list. */
  readonly maxHeaderListPairs: number;
}

/** A peer that makes us queue this much output (control-frame answers it does not read) is dropped. */
const MAX_UNREAD_OUTPUT_BYTES = 4 * 1024 * 1024;
/** Frames that each need an answer (SETTINGS, PING) in one read: more is a flood (nghttp2's limit too). */
const MAX_ANSWERS_PER_BATCH = 1_000;
/**
 * Frames that do nothing but cost us work (empty DATA without END_STREAM, frames for streams
 * already reset, streams we had to refuse) before the connection is closed: CVE-2019-9518 floods.
 * node's defaults (maxSessionInvalidFrames, maxSessionRejectedStreams).
 */
const MAX_INVALID_FRAMES = 1_000;
const MAX_REJECTED_STREAMS = 100;
/** A header block (HEADERS + CONTINUATION) larger than this ends the connection: CONTINUATION flood. */
const MAX_HEADER_BLOCK_FACTOR = 2;
const MAX_STREAM_ID = 2 ** 31 - 1;
/** DATA payloads up to this size are copied behind their frame header (one write instead of two). */
const COPY_DATA_BELOW = 2048;

class ConnectionError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

interface PendingPing {
  readonly payload: Buffer;
  readonly sentAt: bigint;
  readonly callback: (err: Error | null, durationMs: number, payload: Buffer) => void;
}

export class H2Session extends EventEmitter {
  readonly streams = new Map<number, H2Stream>();
  readonly isServer: boolean;
  readonly encrypted: boolean;
  closed = false;
  destroyed = false;
  /** The peer's settings as last received (the protocol defaults until its SETTINGS arrive). */
  remoteSettings: Settings = {};
  readonly localSettings: Settings;
  /** Set once the peer's first SETTINGS arrived. */
  settled = false;
  /** GOAWAY from the peer: its last stream id and code. */
  goawayReceived: { code: number; lastStreamId: number } | undefined = undefined;
  /** host:port this client session connected to, the default :authority. */
  authority = '';
  /** @internal half the stream window: consumed bytes are returned in WINDOW_UPDATEs this big */
  readonly streamWindowUpdateAt: number;

  private readonly decoder = new HpackDecoder();
  private readonly encoder = new HpackEncoder();
  private readonly limits: { maxHeaderListBytes: number; maxHeaderListPairs: number };
  private readonly maxConcurrent: number;
  private input: Buffer | null = null;
  private prefaceLeft: number;
  /** Header block in progress (HEADERS without END_HEADERS): its stream, flags and fragments. */
  private blockStream = 0;
  private blockFlags = 0;
  private blockParts: Buffer[] = [];
  private blockBytes = 0;
  // Flow control
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME_SIZE;
  private peerMaxConcurrent = Number.MAX_SAFE_INTEGER;
  private connSendWindow = DEFAULT_WINDOW;
  /** What the peer may still send on the connection; bytes come back as readers consume them. */
  private connRecvWindow: number;
  private connConsumed = 0;
  private readonly connWindowUpdateAt: number;
  /** Streams with data queued for want of window, in the order they blocked. */
  private readonly blockedStreams = new Set<H2Stream>();
  // Streams
  private nextStreamId: number;
  private lastPeerStreamId = 0;
  /** Client streams waiting for a free slot under the peer's MAX_CONCURRENT_STREAMS. */
  private readonly waiting: Array<{ stream: H2Stream; headers: OutgoingHttpHeaders | IncomingHttpHeaders; endStream: boolean }> = [];
  private openLocal = 0;
  private openRemote = 0;
  private goawaySent = false;
  private readonly pings: PendingPing[] = [];
  // Output batching and timeouts
  private corked = false;
  private answersThisBatch = 0;
  private invalidFrames = 0;
  private rejectedStreams = 0;
  private heldOutput: Buffer[] | null = null;
  /** Bumped on every read and write: the inactivity timer compares it. */
  private activity = 0;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private timeoutActivity = -1;
  private timedOut = false;
  /** The peer acknowledged our SETTINGS: from then on it knows our limits. */
  private settingsAcked = false;

  constructor(readonly socket: Socket, role: 'server' | 'client', private readonly opts: SessionOptions) {
    super();
    this.isServer = role === 'server';
    this.encrypted = 'encrypted' in socket && (socket as { encrypted?: boolean }).encrypted === true;
    this.nextStreamId = this.isServer ? 2 : 1;
    this.prefaceLeft = this.isServer ? CLIENT_PREFACE.length : 0;
    this.maxConcurrent = opts.maxConcurrentStreams ?? 1000;
    this.limits = { maxHeaderListBytes: opts.maxHeaderListBytes, maxHeaderListPairs: opts.maxHeaderListPairs };
    this.streamWindowUpdateAt = Math.max(1, opts.streamWindow >>> 1);
    this.connWindowUpdateAt = Math.max(1, opts.connectionWindow >>> 1);
    this.connRecvWindow = Math.max(DEFAULT_WINDOW, opts.connectionWindow);
    this.localSettings = {
      enablePush: false,
      initialWindowSize: opts.streamWindow,
      maxHeaderListSize: opts.maxHeaderListBytes,
      ...(this.isServer ? { maxConcurrentStreams: this.maxConcurrent } : {}),
    };
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => this.destroy(err));
    socket.on('close', () => this.destroy());
    socket.on('end', () => this.destroy());
    // A listener that sniffed the first bytes paused the socket; a 'data' listener alone does not undo that.
    socket.resume();
  }

  /** Sends our preface (client) and SETTINGS plus the connection window; call once the socket is connected. */
  start(): void {
    if (!this.isServer) this.write(CLIENT_PREFACE);
    this.write(settingsFrame(this.localSettings));
    if (this.opts.connectionWindow > DEFAULT_WINDOW) this.write(windowUpdateFrame(0, this.opts.connectionWindow - DEFAULT_WINDOW));
  }

  get alpnProtocol(): string | undefined {
    return this.encrypted ? 'h2' : 'h2c';
  }

  // ---- output ----

  private write(buf: Buffer): void {
    if (this.destroyed) return;
    this.activity++;
    if (this.heldOutput !== null) {
      this.heldOutput.push(buf);
      return;
    }
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(uncork, this);
    }
    this.socket.write(buf);
  }

  /**
   * @internal Until released, output is kept here rather than written: a TLS socket must not be
   * written before its handshake is done.
   */
  holdOutput(): void {
    this.heldOutput ??= [];
  }

  /** @internal */
  releaseOutput(): void {
    const held = this.heldOutput;
    this.heldOutput = null;
    if (held !== null) for (const b of held) this.write(b);
  }

  /** @internal */
  uncork(): void {
    this.corked = false;
    this.answersThisBatch = 0;
    if (!this.destroyed) this.socket.uncork();
  }

  /** @internal */
  sendWindowUpdate(streamId: number, increment: number): void {
    this.write(windowUpdateFrame(streamId, increment));
  }

  /** @internal Received bytes nobody holds any more: their share of the connection window goes back. */
  connectionConsumed(n: number): void {
    this.connConsumed += n;
    if (this.connConsumed < this.connWindowUpdateAt || this.destroyed) return;
    this.connRecvWindow += this.connConsumed;
    this.write(windowUpdateFrame(0, this.connConsumed));
    this.connConsumed = 0;
  }

  /** @internal */
  sendHeaders(stream: H2Stream, headers: OutgoingHttpHeaders | IncomingHttpHeaders | Readonly<Record<string, string>>, endStream: boolean): void {
    const block = this.encoder.encode(toFieldList(headers));
    this.write(headersFrames(stream.id, block, endStream, this.peerMaxFrame));
  }

  /**
   * @internal Sends as much of `chunk` from `offset` as the windows allow, as DATA frames; the
   * number of bytes sent. An empty chunk with `endStream` is the bare END_STREAM frame.
   */
  sendData(stream: H2Stream, chunk: Buffer, offset: number, endStream: boolean): number {
    if (chunk.length === 0) {
      if (endStream) this.write(frameHeader(0, FrameType.DATA, Flag.END_STREAM, stream.id));
      return 0;
    }
    let sent = 0;
    let left = chunk.length - offset;
    while (left > 0) {
      const n = Math.min(left, stream.sendWindow, this.connSendWindow, this.peerMaxFrame);
      if (n <= 0) break;
      const start = offset + sent;
      if (n < COPY_DATA_BELOW) {
        const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n);
        writeFrameHeader(frame, 0, n, FrameType.DATA, 0, stream.id);
        chunk.copy(frame, FRAME_HEADER_BYTES, start, start + n);
        this.write(frame);
      } else {
        this.write(frameHeader(n, FrameType.DATA, 0, stream.id));
        this.write(start === 0 && n === chunk.length ? chunk : chunk.subarray(start, start + n));
      }
      stream.sendWindow -= n;
      this.connSendWindow -= n;
      sent += n;
      left -= n;
    }
    return sent;
  }

  /** @internal A stream has data queued: it is sent as window arrives. */
  blocked(stream: H2Stream): void {
    this.blockedStreams.add(stream);
  }

  private flushBlocked(): void {
    for (const s of this.blockedStreams) {
      if (this.connSendWindow <= 0) return;
      if (s.closed || s.id === 0) {
        if (s.closed) this.blockedStreams.delete(s);
        continue;
      }
      if (s.sendWindow <= 0) continue;
      if (s.sendQueued()) this.blockedStreams.delete(s);
    }
  }

  // ---- client API ----

  /** Opens a stream (client side). Throws once the session is closing or closed. */
  request(headers: OutgoingHttpHeaders | IncomingHttpHeaders, options?: { endStream?: boolean }): H2Stream {
    if (this.destroyed) throw Object.assign(new Error('The session has been destroyed'), { code: 'ERR_HTTP2_INVALID_SESSION' });
    if (this.closed || this.goawayReceived !== undefined) throw Object.assign(new Error('New streams cannot be created after receiving a GOAWAY'), { code: 'ERR_HTTP2_GOAWAY_SESSION' });
    if (this.nextStreamId + 2 * this.waiting.length > MAX_STREAM_ID) {
      // Stream ids are never reused: a connection that used them all is done (RFC 9113 5.1.1).
      this.close();
      throw Object.assign(new Error('This session has used all its stream ids'), { code: 'ERR_HTTP2_OUT_OF_STREAMS' });
    }
    const stream = new H2Stream(this, this.opts.streamWindow, this.peerInitialWindow);
    const endStream = options?.endStream === true;
    // As node's request() does: pseudo-headers the caller left out get the defaults. Forwarded
    // requests carry them all, so the hot path never copies.
    if (headers[':scheme'] === undefined || headers[':method'] === undefined || headers[':path'] === undefined || headers[':authority'] === undefined) {
      headers = {
        ':method': 'GET',
        ':scheme': this.encrypted ? 'https' : 'http',
        ':path': '/',
        ':authority': this.authority,
        ...headers,
      };
    }
    if (this.openLocal >= this.peerMaxConcurrent || this.waiting.length > 0) {
      this.waiting.push({ stream, headers, endStream });
    } else {
      this.openStream(stream, headers, endStream);
    }
    return stream;
  }

  private openStream(stream: H2Stream, headers: OutgoingHttpHeaders | IncomingHttpHeaders, endStream: boolean): void {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    stream.opened(id);
    // It waited for a slot: the peer's window may have changed meanwhile.
    stream.sendWindow = this.peerInitialWindow;
    this.streams.set(id, stream);
    this.openLocal++;
    this.sendHeaders(stream, headers, endStream);
    if (endStream) {
      stream.writableEnded = true;
      stream.localEnded = true;
    } else {
      stream.afterHeaders();
    }
  }

  private openWaiting(): void {
    while (this.waiting.length > 0 && this.openLocal < this.peerMaxConcurrent && !this.destroyed) {
      const w = this.waiting.shift()!;
      if (w.stream.closed) continue;
      this.openStream(w.stream, w.headers, w.endStream);
    }
  }

  // ---- session API ----

  /** Graceful: GOAWAY, no new streams; the connection closes when the last stream ends. */
  close(callback?: () => void): void {
    if (callback) this.once('close', callback);
    if (this.closed || this.destroyed) return;
    this.closed = true;
    this.sendGoaway(ErrorCode.NO_ERROR, '');
    for (const w of this.waiting.splice(0)) this.finishStream(w.stream, ErrorCode.REFUSED_STREAM, false);
    this.maybeFinish();
  }

  /** Now: every open stream ends (reset), GOAWAY with `code` if given, the socket closes. */
  destroy(err?: Error, code?: number): void {
    if (this.destroyed) return;
    // Before the streams' 'close': their owners read the session's error (ECONNREFUSED, say) to explain their failure.
    if (err !== undefined) process.nextTick(emitSessionError, this, err);
    if (code !== undefined && !this.socket.destroyed) this.sendGoaway(code, err?.message ?? '');
    const rst = code ?? ErrorCode.CANCEL;
    for (const w of this.waiting.splice(0)) this.finishStream(w.stream, rst, false, err);
    for (const s of [...this.streams.values()]) this.finishStream(s, rst, false, err);
    this.closed = true;
    this.destroyed = true;
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
    if (this.timeoutTimer !== undefined) clearTimeout(this.timeoutTimer);
    for (const p of this.pings.splice(0)) p.callback(new Error('session closed before the PING was answered'), 0, p.payload);
    // Read nothing more; destroySoon lets a GOAWAY we just wrote reach the peer, then closes.
    if (!this.socket.destroyed) {
      this.socket.pause();
      this.socket.destroySoon();
      setTimeout(destroySocket, 1_000, this.socket).unref();
    }
    process.nextTick(emitSessionClose, this);
  }

  /** Sends a PING; `callback` gets the round trip in ms. False if the session is gone. */
  ping(callback: (err: Error | null, durationMs: number, payload: Buffer) => void): boolean {
    if (this.destroyed) return false;
    if (this.pings.length >= 10) throw Object.assign(new Error('too many PINGs in flight'), { code: 'ERR_HTTP2_PING_CANCEL' });
    const payload = Buffer.allocUnsafe(8);
    payload.writeDoubleBE(Math.random());
    this.pings.push({ payload, sentAt: process.hrtime.bigint(), callback });
    this.write(pingFrame(payload, false));
    return true;
  }

  /** 'timeout' (and `callback`) once the connection saw no frame either way for `ms`; fires once per quiet spell. */
  setTimeout(ms: number, callback?: () => void): void {
    if (callback) this.on('timeout', callback);
    if (this.timeoutTimer !== undefined) clearInterval(this.timeoutTimer);
    this.timeoutTimer = undefined;
    if (ms <= 0) return;
    this.timeoutActivity = this.activity;
    this.timeoutTimer = setInterval(checkSessionTimeout, ms, this);
    this.timeoutTimer.unref();
  }

  /** @internal */
  checkTimeout(): void {
    if (this.destroyed) return;
    if (this.activity !== this.timeoutActivity) {
      this.timeoutActivity = this.activity;
      this.timedOut = false;
      return;
    }
    // Once per quiet spell: the next needs activity first.
    if (this.timedOut) return;
    this.timedOut = true;
    this.emit('timeout');
  }

  /** Streams open in either direction. */
  get openStreams(): number {
    return this.streams.size;
  }

  private sendGoaway(code: number, debug: string): void {
    if (this.goawaySent && code === ErrorCode.NO_ERROR) return;
    this.goawaySent = true;
    this.write(goawayFrame(this.lastPeerStreamId, code, debug.slice(0, 256)));
  }

  private maybeFinish(): void {
    if (this.closed && !this.destroyed && this.streams.size === 0 && this.waiting.length === 0) this.destroy();
  }

  /**
   * @internal Ends a stream: `sendReset` sends RST_STREAM `code` when it was open on the wire.
   * `aborted` unless both sides finished normally.
   */
  finishStream(stream: H2Stream, code: number, sendReset: boolean, err?: Error): void {
    if (stream.closed) return;
    if (!stream.wireClosed) {
      stream.wireClosed = true;
      const id = stream.id;
      if (sendReset && id !== 0 && !this.destroyed) this.write(rstStreamFrame(id, code));
      if (id !== 0 && this.streams.delete(id)) {
        if ((id & 1) === (this.isServer ? 0 : 1)) this.openLocal--;
        else this.openRemote--;
      }
      this.blockedStreams.delete(stream);
      if (!this.isServer) this.openWaiting();
    }
    // A normal end while a paused reader has not had all of it: 'close' comes after its 'end', as in node.
    if (code === ErrorCode.NO_ERROR && !sendReset && err === undefined && stream.hasUnreadInput()) {
      stream.closeWhenRead();
    } else {
      stream.closedWith(code, code !== ErrorCode.NO_ERROR || !stream.localEnded, err);
    }
    this.maybeFinish();
  }

  // ---- input ----

  private onData(chunk: Buffer): void {
    if (this.destroyed) return;
    this.activity++;
    const buf = this.input === null ? chunk : Buffer.concat([this.input, chunk]);
    this.input = null;
    let off = 0;
    try {
      if (this.prefaceLeft > 0) {
        const start = CLIENT_PREFACE.length - this.prefaceLeft;
        const n = Math.min(this.prefaceLeft, buf.length);
        if (!buf.subarray(0, n).equals(CLIENT_PREFACE.subarray(start, start + n))) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'bad connection preface');
        this.prefaceLeft -= n;
        off = n;
        if (this.prefaceLeft > 0) return;
      }
      while (buf.length - off >= FRAME_HEADER_BYTES) {
        const length = (buf[off]! << 16) | (buf[off + 1]! << 8) | buf[off + 2]!;
        if (length > DEFAULT_MAX_FRAME_SIZE) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes is over our SETTINGS_MAX_FRAME_SIZE`);
        if (buf.length - off < FRAME_HEADER_BYTES + length) break;
        const type = buf[off + 3]!;
        const flags = buf[off + 4]!;
        const id = buf.readUInt32BE(off + 5) & 0x7fffffff;
        const start = off + FRAME_HEADER_BYTES;
        off = start + length;
        this.onFrame(type, flags, id, buf, start, off);
        if (this.destroyed) return;
      }
    } catch (err) {
      if (err instanceof ConnectionError) {
        this.protocolError(err.code, err.message);
        return;
      }
      throw err;
    }
    if (off < buf.length) this.input = buf.subarray(off);
  }

  private protocolError(code: number, message: string): void {
    const err = Object.assign(new Error(`HTTP/2 ${errorName(code)}: ${message}`), { code: 'ERR_HTTP2_SESSION_ERROR', errno: code });
    this.destroy(err, code);
  }

  private onFrame(type: number, flags: number, id: number, buf: Buffer, start: number, end: number): void {
    // Each side's first frame is its SETTINGS (RFC 9113 3.4).
    if (!this.settled && (type !== FrameType.SETTINGS || flags & Flag.ACK)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `frame type ${type} before the peer's SETTINGS`);
    if (this.blockStream !== 0 && type !== FrameType.CONTINUATION) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `frame type ${type} inside a header block`);
    switch (type) {
      case FrameType.DATA:
        return this.onDataFrame(flags, id, buf, start, end);
      case FrameType.HEADERS:
        return this.onHeadersFrame(flags, id, buf, start, end);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, id, buf, start, end);
      case FrameType.RST_STREAM:
        return this.onRstStream(id, buf, start, end);
      case FrameType.SETTINGS:
        return this.onSettings(flags, id, buf, start, end);
      case FrameType.PING:
        return this.onPing(flags, id, buf, start, end);
      case FrameType.GOAWAY:
        return this.onGoaway(id, buf, start, end);
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(id, buf, start, end);
      case FrameType.PRIORITY:
        if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (end - start !== 5) this.resetStream(id, ErrorCode.FRAME_SIZE_ERROR);
        return;
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE, though we disabled push');
      default:
        return; // unknown frame types are ignored (RFC 9113 4.1)
    }
  }

  /** Strips padding; throws when the pad length does not fit. */
  private unpad(flags: number, buf: Buffer, start: number, end: number): number {
    if (!(flags & Flag.PADDED)) return end;
    if (end - start < 1) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'padded frame without a pad length');
    const pad = buf[start]!;
    if (pad >= end - start) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'padding longer than the frame');
    return end - pad;
  }

  private onDataFrame(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    const length = end - start;
    // Flow control counts the whole payload, padding included, whatever becomes of the stream. The
    // connection window comes back only as readers consume their data, so what one connection
    // can make us hold is bounded by it (node's maxSessionMemory did this before).
    if (length > this.connRecvWindow) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, `DATA of ${length} bytes over the connection window of ${this.connRecvWindow}`);
    this.connRecvWindow -= length;
    if (length === 0 && !(flags & Flag.END_STREAM)) this.invalidFrame();
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${id}`);
      // A stream we already closed: its late frames are dropped.
      this.connectionConsumed(length);
      return;
    }
    let refused = -1;
    if (stream.remoteEnded) {
      this.invalidFrame();
      refused = ErrorCode.STREAM_CLOSED;
    } else if (!this.isServer && !stream.responded) {
      refused = ErrorCode.PROTOCOL_ERROR;
    } else if (length > stream.recvWindow) {
      refused = ErrorCode.FLOW_CONTROL_ERROR;
    }
    if (refused >= 0) {
      this.connectionConsumed(length);
      return this.resetStream(id, refused);
    }
    stream.recvWindow -= length;
    const dataEnd = this.unpad(flags, buf, start, end);
    const dataStart = flags & Flag.PADDED ? start + 1 : start;
    // Padding (and the pad length) reaches no reader: its window comes back at once.
    if (length > dataEnd - dataStart) stream.acknowledge(length - (dataEnd - dataStart));
    if (dataEnd > dataStart) stream.receiveData(buf.subarray(dataStart, dataEnd));
    if (flags & Flag.END_STREAM && !stream.closed) stream.receiveEnd();
  }

  private isIdle(id: number): boolean {
    const peerInitiated = (id & 1) === (this.isServer ? 1 : 0);
    return peerInitiated ? id > this.lastPeerStreamId : id >= this.nextStreamId;
  }

  private resetStream(id: number, code: number): void {
    const stream = this.streams.get(id);
    if (stream !== undefined) this.finishStream(stream, code, true);
    else this.write(rstStreamFrame(id, code));
  }

  private onHeadersFrame(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let from = flags & Flag.PADDED ? start + 1 : start;
    const to = this.unpad(flags, buf, start, end);
    if (flags & Flag.PRIORITY) from += 5;
    if (from > to) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS too short for its flags');
    const fragment = buf.subarray(from, to);
    if (flags & Flag.END_HEADERS) return this.onHeaderBlock(id, flags, fragment);
    this.blockStream = id;
    this.blockFlags = flags;
    this.blockParts = [fragment];
    this.blockBytes = fragment.length;
  }

  private onContinuation(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (this.blockStream === 0 || id !== this.blockStream) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without a header block in progress on its stream');
    this.blockBytes += end - start;
    if (this.blockBytes > this.limits.maxHeaderListBytes * MAX_HEADER_BLOCK_FACTOR) {
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `header block over ${this.limits.maxHeaderListBytes * MAX_HEADER_BLOCK_FACTOR} bytes (CONTINUATION flood)`);
    }
    this.blockParts.push(buf.subarray(start, end));
    if (!(flags & Flag.END_HEADERS)) return;
    const block = Buffer.concat(this.blockParts);
    const headerFlags = this.blockFlags;
    this.blockStream = 0;
    this.blockParts = [];
    this.onHeaderBlock(id, headerFlags, block);
  }

  private onHeaderBlock(id: number, flags: number, block: Buffer): void {
    // Decoded whatever becomes of the stream: the HPACK table must stay in step with the peer's.
    let decoded;
    try {
      decoded = this.decoder.decode(block, this.limits);
    } catch (err) {
      if (err instanceof HpackError) throw new ConnectionError(ErrorCode.COMPRESSION_ERROR, err.message);
      throw err;
    }
    const endStream = (flags & Flag.END_STREAM) !== 0;
    const stream = this.streams.get(id);
    if (stream !== undefined) return this.onStreamHeaders(stream, decoded.fields, decoded.tooLarge, endStream, flags);
    if (this.isServer && (id & 1) === 1 && id > this.lastPeerStreamId) return this.onNewStream(id, decoded.fields, decoded.tooLarge, endStream, flags);
    if (this.isIdle(id)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${id}, which nobody opened`);
    // A stream already closed: late trailers after our reset, say. Nothing to do.
  }

  private onNewStream(id: number, fields: string[], tooLarge: boolean, endStream: boolean, flags: number): void {
    if (this.goawaySent) {
      this.lastPeerStreamId = id;
      return; // after our GOAWAY, new streams are ignored (RFC 9113 6.8)
    }
    if (this.openRemote >= this.maxConcurrent) {
      // Before it acknowledged our SETTINGS a client may not know the limit (RFC 9113 6.5.3): refuse
      // the stream. After, it broke a limit it knew, and is not trusted with the connection further
      // (the GOAWAY's last stream id says this one was not processed).
      if (this.settingsAcked) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `stream ${id} is over the ${this.maxConcurrent} concurrent streams we advertised`);
      this.lastPeerStreamId = id;
      return this.rejectStream(id, ErrorCode.REFUSED_STREAM);
    }
    this.lastPeerStreamId = id;
    if (tooLarge || fields.length / 2 > this.limits.maxHeaderListPairs) return this.rejectStream(id, ErrorCode.ENHANCE_YOUR_CALM);
    const headers = toHeaderObject(fields, 'request');
    if (typeof headers === 'string') return this.rejectStream(id, ErrorCode.PROTOCOL_ERROR);
    const stream = new H2Stream(this, this.opts.streamWindow, this.peerInitialWindow);
    stream.id = id;
    this.streams.set(id, stream);
    this.openRemote++;
    if (endStream) stream.remoteEnded = true;
    this.emit('stream', stream, headers, flags);
  }

  private rejectStream(id: number, code: number): void {
    this.write(rstStreamFrame(id, code));
    if (++this.rejectedStreams > MAX_REJECTED_STREAMS) throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `over ${MAX_REJECTED_STREAMS} streams refused`);
  }

  private invalidFrame(): void {
    if (++this.invalidFrames > MAX_INVALID_FRAMES) throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `over ${MAX_INVALID_FRAMES} frames that did nothing (empty DATA, DATA after END_STREAM)`);
  }

  private answer(frame: Buffer): void {
    if (++this.answersThisBatch > MAX_ANSWERS_PER_BATCH) throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `over ${MAX_ANSWERS_PER_BATCH} SETTINGS/PING frames at once`);
    this.guardUnreadOutput();
    this.write(frame);
  }

  private onStreamHeaders(stream: H2Stream, fields: string[], tooLarge: boolean, endStream: boolean, flags: number): void {
    if (stream.remoteEnded) return this.resetStream(stream.id, ErrorCode.STREAM_CLOSED);
    if (tooLarge || fields.length / 2 > this.limits.maxHeaderListPairs) return this.resetStream(stream.id, ErrorCode.ENHANCE_YOUR_CALM);
    if (this.isServer || stream.responded) {
      // Trailers: they must end the stream.
      if (!endStream) return this.resetStream(stream.id, ErrorCode.PROTOCOL_ERROR);
      const trailers = toHeaderObject(fields, 'trailers');
      if (typeof trailers === 'string') return this.resetStream(stream.id, ErrorCode.PROTOCOL_ERROR);
      stream.emit('trailers', trailers, flags);
      if (!stream.closed) stream.receiveEnd();
      return;
    }
    const headers = toHeaderObject(fields, 'response');
    if (typeof headers === 'string') return this.resetStream(stream.id, ErrorCode.PROTOCOL_ERROR);
    const status = headers[':status'] as unknown as number;
    if (status >= 100 && status < 200) {
      if (endStream) return this.resetStream(stream.id, ErrorCode.PROTOCOL_ERROR);
      stream.emit('headers', headers, flags);
      return;
    }
    stream.responded = true;
    stream.emit('response', headers, flags);
    if (endStream && !stream.closed) stream.receiveEnd();
  }

  private onRstStream(id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (end - start !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM payload is not 4 bytes');
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
      return;
    }
    this.finishStream(stream, buf.readUInt32BE(start), false);
  }

  private onSettings(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (end !== start) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      this.settingsAcked = true;
      return;
    }
    if ((end - start) % 6 !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS payload is not a multiple of 6');
    const settings: Settings = { ...this.remoteSettings };
    for (let p = start; p < end; p += 6) {
      const key = buf.readUInt16BE(p);
      const value = buf.readUInt32BE(p + 2);
      switch (key) {
        case SettingId.HEADER_TABLE_SIZE:
          settings.headerTableSize = value;
          this.encoder.setMaxTableSize(Math.min(value, 4096));
          break;
        case SettingId.ENABLE_PUSH:
          if (value > 1 || (value === 1 && !this.isServer)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value}`);
          settings.enablePush = value === 1;
          break;
        case SettingId.MAX_CONCURRENT_STREAMS:
          settings.maxConcurrentStreams = value;
          this.peerMaxConcurrent = value;
          break;
        case SettingId.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value}`);
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'a stream window grew past 2^31-1');
          }
          settings.initialWindowSize = value;
          break;
        }
        case SettingId.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_ALLOWED_FRAME_SIZE) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value}`);
          settings.maxFrameSize = value;
          this.peerMaxFrame = value;
          break;
        case SettingId.MAX_HEADER_LIST_SIZE:
          settings.maxHeaderListSize = value;
          break;
        default:
          break; // unknown settings are ignored
      }
    }
    this.answer(SETTINGS_ACK);
    this.remoteSettings = settings;
    this.settled = true;
    this.emit('remoteSettings', settings);
    this.flushBlocked();
    if (!this.isServer) this.openWaiting();
  }

  /** A peer that floods frames we must answer and reads none of the answers is cut off. */
  private guardUnreadOutput(): void {
    if (this.socket.writableLength > MAX_UNREAD_OUTPUT_BYTES) throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'peer does not read what it makes us send');
  }

  private onPing(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
    if (end - start !== 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING payload is not 8 bytes');
    const payload = buf.subarray(start, end);
    if (!(flags & Flag.ACK)) {
      this.answer(pingFrame(payload, true));
      return;
    }
    const i = this.pings.findIndex((p) => p.payload.equals(payload));
    if (i < 0) return;
    const [ping] = this.pings.splice(i, 1);
    ping!.callback(null, Number(process.hrtime.bigint() - ping!.sentAt) / 1e6, ping!.payload);
  }

  private onGoaway(id: number, buf: Buffer, start: number, end: number): void {
    if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (end - start < 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY shorter than 8 bytes');
    const lastStreamId = buf.readUInt32BE(start) & 0x7fffffff;
    const code = buf.readUInt32BE(start + 4);
    this.goawayReceived = { code, lastStreamId };
    this.emit('goaway', code, lastStreamId, buf.subarray(start + 8, end));
    // Our streams the peer never saw can be retried elsewhere: REFUSED_STREAM says so.
    for (const s of [...this.streams.values()]) {
      if ((s.id & 1) === (this.isServer ? 0 : 1) && s.id > lastStreamId) this.finishStream(s, ErrorCode.REFUSED_STREAM, false);
    }
    for (const w of this.waiting.splice(0)) this.finishStream(w.stream, ErrorCode.REFUSED_STREAM, false);
    if (code !== ErrorCode.NO_ERROR) {
      this.destroy(Object.assign(new Error(`peer sent GOAWAY ${errorName(code)}`), { code: 'ERR_HTTP2_SESSION_ERROR', errno: code }), undefined);
      return;
    }
    this.closed = true;
    this.maybeFinish();
  }

  private onWindowUpdate(id: number, buf: Buffer, start: number, end: number): void {
    if (end - start !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE payload is not 4 bytes');
    const increment = buf.readUInt32BE(start) & 0x7fffffff;
    if (id === 0) {
      if (increment === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection');
      this.connSendWindow += increment;
      if (this.connSendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window past 2^31-1');
      this.flushBlocked();
      return;
    }
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
      return;
    }
    if (increment === 0) return this.resetStream(id, ErrorCode.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.resetStream(id, ErrorCode.FLOW_CONTROL_ERROR);
    if (this.blockedStreams.has(stream) && this.connSendWindow > 0 && stream.sendQueued()) this.blockedStreams.delete(stream);
  }
}

function uncork(s: H2Session): void {
  s.uncork();
}
function destroySocket(socket: Socket): void {
  socket.destroy();
}
function checkSessionTimeout(s: H2Session): void {
  s.checkTimeout();
}
function emitSessionError(s: H2Session, err: Error): void {
  if (s.listenerCount('error') > 0) s.emit('error', err);
}
function emitSessionClose(s: H2Session): void {
  s.emit('close');
}
