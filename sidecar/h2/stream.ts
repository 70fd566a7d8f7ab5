/**
 * One HTTP/2 stream of an H2Session, with the part of node's Http2Stream interface the proxy
 * uses: 'data'/'end' with pause/resume (reading), write/end with 'drain' (writing, under the peer's
 * flow-control windows), respond/sendTrailers with 'wantTrailers' (server side), 'response' and
 * 'trailers' (client side), close(code), and 'close' once the stream is over.
 *
 * It is a plain EventEmitter, not a Duplex: a proxied call needs none of the streams machinery,
 * and that machinery was most of what node:http2 cost per call.
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { ErrorCode } from './frames.js';
import type { H2Session } from './session.js';

/** Bytes queued for sending (waiting on flow control) before write() says to wait for 'drain'. */
const HIGH_WATER_BYTES = 64 * 1024;

export interface RespondOptions {
  readonly endStream?: boolean;
  readonly waitForTrailers?: boolean;
}

export class H2Stream extends EventEmitter {
  /** 0 until a client stream's HEADERS go out (it may wait for a free stream slot). */
  id = 0;
  // Reading
  /** Chunks received while nobody reads (no 'data' listener yet, or paused). */
  private inbox: Buffer[] | null = null;
  private flowing = false;
  private paused = false;
  remoteEnded = false;
  private endEmitted = false;
  /** How much more the peer may send on this stream (our window as it sees it). */
  recvWindow: number;
  /** Bytes consumed since the last WINDOW_UPDATE we sent for this stream. */
  private consumed = 0;
  // Writing
  sendWindow: number;
  private outbox: Buffer[] | null = null;
  private outboxBytes = 0;
  private needDrain = false;
  /** end() was called (END_STREAM goes out once the outbox is empty). */
  writableEnded = false;
  /** END_STREAM went out (or a trailers-only answer / trailers). */
  localEnded = false;
  headersSent = false;
  /** What respond() and sendTrailers() sent, for the observability layer (references, not copies). */
  sentHeaders: OutgoingHttpHeaders | IncomingHttpHeaders | undefined = undefined;
  sentTrailers: OutgoingHttpHeaders | IncomingHttpHeaders | Readonly<Record<string, string>> | undefined = undefined;
  private waitForTrailers = false;
  /** Client side: final response headers seen. */
  responded = false;
  // Lifecycle
  /** Over on the wire (both END_STREAMs, or a reset); `closed` may wait for the reader. */
  wireClosed = false;
  private closePending = false;
  closed = false;
  destroyed = false;
  /** The RST_STREAM code this stream ended with; 0 for a normal end. Undefined while open. */
  rstCode: number | undefined = undefined;
  /** Ended by a reset or a lost connection while our side was still unfinished. */
  aborted = false;
  private timer: NodeJS.Timeout | undefined;
  private timeoutMs = 0;
  private lastActivity = 0;

  constructor(readonly session: H2Session, recvWindow: number, sendWindow: number) {
    super();
    this.recvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }

  // ---- reading ----

  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    super.on(event, listener);
    if (event === 'data' && !this.paused) this.resume();
    return this;
  }

  override once(event: string | symbol, listener: (...args: any[]) => void): this {
    super.once(event, listener);
    if (event === 'data' && !this.paused) this.resume();
    return this;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    if (this.flowing) {
      if (this.inbox !== null || (this.remoteEnded && !this.endEmitted)) process.nextTick(flushInbox, this);
      return this;
    }
    this.flowing = true;
    if (this.inbox !== null || this.remoteEnded) process.nextTick(flushInbox, this);
    return this;
  }

  /** Called by the session for each DATA payload (flow control already charged). */
  receiveData(chunk: Buffer): void {
    if (this.timeoutMs > 0) this.lastActivity = Date.now();
    if (this.flowing && !this.paused && this.inbox === null) {
      this.emit('data', chunk);
      this.consume(chunk.length);
    } else if (this.inbox === null) {
      this.inbox = [chunk];
    } else {
      this.inbox.push(chunk);
    }
  }

  /** Called by the session on END_STREAM from the peer. */
  receiveEnd(): void {
    this.remoteEnded = true;
    if (this.flowing && !this.paused && this.inbox === null) this.emitEnd();
    if (this.localEnded) this.session.finishStream(this, ErrorCode.NO_ERROR, false);
  }

  /** @internal */
  flush(): void {
    while (this.inbox !== null && this.flowing && !this.paused && !this.closed) {
      const chunk = this.inbox.shift()!;
      if (this.inbox.length === 0) this.inbox = null;
      this.emit('data', chunk);
      this.consume(chunk.length);
    }
    if (this.inbox === null && this.remoteEnded && this.flowing && !this.paused) this.emitEnd();
  }

  private emitEnd(): void {
    if (this.endEmitted || this.rstCode) return;
    this.endEmitted = true;
    this.emit('end');
    if (this.closePending && !this.closed) this.closedWith(ErrorCode.NO_ERROR, !this.localEnded);
  }

  /** @internal A reader is attached and has not yet had everything up to 'end'. */
  hasUnreadInput(): boolean {
    return (this.flowing || this.paused) && (this.inbox !== null || (this.remoteEnded && !this.endEmitted));
  }

  /** @internal */
  closeWhenRead(): void {
    this.closePending = true;
  }

  /** Bytes the reader had: their window goes back to the peer (stream and connection). */
  private consume(n: number): void {
    this.session.connectionConsumed(n);
    this.acknowledge(n);
  }

  /** @internal Returns `n` bytes of this stream's window (not the connection's). */
  acknowledge(n: number): void {
    if (this.remoteEnded || this.wireClosed) return;
    this.consumed += n;
    if (this.consumed >= this.session.streamWindowUpdateAt) {
      this.recvWindow += this.consumed;
      this.session.sendWindowUpdate(this.id, this.consumed);
      this.consumed = 0;
    }
  }

  // ---- writing ----

  /** Server side: the response headers; `endStream` makes them a trailers-only answer. */
  respond(headers: OutgoingHttpHeaders | IncomingHttpHeaders, options?: RespondOptions): void {
    if (this.closed || this.headersSent) return;
    this.headersSent = true;
    this.sentHeaders = headers;
    const end = options?.endStream === true;
    this.waitForTrailers = options?.waitForTrailers === true;
    this.session.sendHeaders(this, headers, end);
    if (end) this.endLocal();
    else this.afterHeaders();
  }

  /** @internal Headers went out: send what was written before them, or end as asked. */
  afterHeaders(): void {
    if (this.outbox !== null) {
      if (!this.sendQueued()) this.session.blocked(this);
    } else if (this.writableEnded && !this.localEnded) {
      this.finishWriting();
    }
  }

  /** After 'wantTrailers': the trailers, which end the stream. */
  sendTrailers(trailers: OutgoingHttpHeaders | IncomingHttpHeaders | Readonly<Record<string, string>>): void {
    if (this.closed || this.localEnded) return;
    this.sentTrailers = trailers;
    this.session.sendHeaders(this, trailers, true);
    this.endLocal();
  }

  write(chunk: Buffer): boolean {
    if (this.closed || this.writableEnded) return false;
    if (this.timeoutMs > 0) this.lastActivity = Date.now();
    if (this.outbox === null && this.id !== 0 && this.headersSent) {
      const sent = this.session.sendData(this, chunk, 0, false);
      if (sent === chunk.length) return true;
      this.outbox = [sent === 0 ? chunk : chunk.subarray(sent)];
      this.outboxBytes = chunk.length - sent;
    } else {
      if (this.outbox === null) this.outbox = [chunk];
      else this.outbox.push(chunk);
      this.outboxBytes += chunk.length;
    }
    this.session.blocked(this);
    if (this.outboxBytes < HIGH_WATER_BYTES) return true;
    this.needDrain = true;
    return false;
  }

  end(chunk?: Buffer): void {
    if (this.closed || this.writableEnded) return;
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    this.writableEnded = true;
    if (this.outbox === null && this.id !== 0 && this.headersSent) this.finishWriting();
  }

  /** The outbox is empty and end() was called: trailers or END_STREAM. */
  private finishWriting(): void {
    if (this.waitForTrailers) {
      this.waitForTrailers = false;
      this.emit('wantTrailers');
      return;
    }
    this.session.sendData(this, EMPTY, 0, true);
    this.endLocal();
  }

  /** @internal The session found window for this stream: send what is queued. True when the outbox emptied. */
  sendQueued(): boolean {
    const box = this.outbox;
    if (box === null) return true;
    while (box.length > 0) {
      const chunk = box[0]!;
      const sent = this.session.sendData(this, chunk, 0, false);
      this.outboxBytes -= sent;
      if (sent < chunk.length) {
        box[0] = chunk.subarray(sent);
        break;
      }
      box.shift();
    }
    if (box.length > 0) {
      if (this.needDrain && this.outboxBytes < HIGH_WATER_BYTES) {
        this.needDrain = false;
        this.emit('drain');
      }
      return false;
    }
    this.outbox = null;
    if (this.needDrain) {
      this.needDrain = false;
      this.emit('drain');
      // A 'drain' listener may have written again: still blocked then.
      if (this.outbox !== null) return false;
    }
    if (this.writableEnded && !this.localEnded && !this.closed) this.finishWriting();
    return true;
  }

  /** @internal Client side: HEADERS went out; start sending what was written meanwhile. */
  opened(id: number): void {
    this.id = id;
    this.headersSent = true;
  }

  private endLocal(): void {
    this.localEnded = true;
    this.writableEnded = true;
    if (this.remoteEnded) this.session.finishStream(this, ErrorCode.NO_ERROR, false);
  }

  // ---- lifecycle ----

  /** Ends the stream now with RST_STREAM `code` (node's stream.close). */
  close(code: number = ErrorCode.NO_ERROR): void {
    if (this.closed) return;
    this.session.finishStream(this, code, true);
  }

  destroy(err?: Error): void {
    if (this.closed) return;
    if (err) process.nextTick(emitError, this, err);
    this.session.finishStream(this, err ? ErrorCode.INTERNAL_ERROR : ErrorCode.CANCEL, true);
  }

  /** @internal Called once by the session when the stream is over. */
  closedWith(code: number, aborted: boolean, err?: Error): void {
    this.closed = true;
    this.destroyed = true;
    this.rstCode = code;
    this.aborted = aborted;
    if (this.inbox !== null) {
      // Never read: the connection's window still has to come back.
      let unread = 0;
      for (const chunk of this.inbox) unread += chunk.length;
      this.session.connectionConsumed(unread);
      this.inbox = null;
    }
    this.outbox = null;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (err !== undefined) process.nextTick(emitError, this, err);
    process.nextTick(emitClose, this);
  }

  /** 'timeout' (and `callback`) after `ms` with no DATA either way; 0 turns it off. */
  setTimeout(ms: number, callback?: () => void): void {
    if (callback) this.once('timeout', callback);
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timeoutMs = ms;
    if (ms <= 0 || this.closed) return;
    this.lastActivity = Date.now();
    this.timer = setTimeout(checkTimeout, ms, this);
    this.timer.unref();
  }

  /** @internal */
  checkTimeout(): void {
    this.timer = undefined;
    if (this.closed || this.timeoutMs <= 0) return;
    const idle = Date.now() - this.lastActivity;
    if (idle >= this.timeoutMs) {
      this.emit('timeout');
      return;
    }
    this.timer = setTimeout(checkTimeout, this.timeoutMs - idle, this);
    this.timer.unref();
  }
}

const EMPTY = Buffer.alloc(0);

function flushInbox(s: H2Stream): void {
  s.flush();
}
function emitClose(s: H2Stream): void {
  s.emit('close');
}
function emitError(s: H2Stream, err: Error): void {
  if (s.listenerCount('error') > 0) s.emit('error', err);
}
function checkTimeout(s: H2Stream): void {
  s.checkTimeout();
}
