/**
 * An HTTP/2 listener. A plain TCP server looks at the first bytes of each connection: the HTTP/2
 * preface goes to the h2 server; a TLS ClientHello goes through a TLS 1.3 server that demands a
 * client certificate chaining to the trust bundle (mTLS), then to the same h2 server; anything
 * else (an HTTP/1.1 client on a gRPC port, say) gets a readable HTTP/1.1 error instead of a bare
 * GOAWAY. Sniffing is what lets PERMISSIVE mode take plaintext and mTLS on one port; whether a
 * plaintext call is then allowed is the inbound gate's decision. Tracks sessions so drain can
 * GOAWAY them all.
 *
 * Every caller is a possible attacker (a sidecar sits in every request path), so a connection
 * gets a bounded time to become an HTTP/2 session, a bounded amount of everything once it is one,
 * and is closed when it behaves like the HTTP/2 attacks we know. The limits and why: LISTENER_LIMITS
 * below and docs/hostile-input.md.
 */
import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { Logger } from '../../lib/log.js';
import type { StreamHandler } from '../proxy/handle-stream.js';
import { rememberPeer, spiffeIdOf, tagSocket } from '../security/peer.js';
import { CONNECTION_WINDOW_BYTES, MAX_CONCURRENT_STREAMS, STREAM_WINDOW_BYTES } from '../upstream/h2-settings.js';
import { H2Session, type SessionOptions } from '../h2/session.js';
import type { H2Stream } from '../h2/stream.js';
import { CLIENT_PREFACE as PREFACE, ErrorCode } from '../h2/frames.js';

/**
 * What one caller can make a listener hold, per connection unless said otherwise. Envoy's defaults
 * where it has one; where our numbers differ, the comment says why.
 */
export const LISTENER_LIMITS = {
  /**
   * From accept to the caller's first SETTINGS frame, TLS handshake included: a connection that
   * sends nothing, a preface one byte at a time, or a ClientHello and then silence is closed.
   */
  handshakeTimeoutMs: 5_000,
  /** Connections still in that handshake, per listener; past it the oldest one is dropped. */
  maxPendingHandshakes: 1_024,
  /**
   * Advertised. A caller that opens more before acknowledging our SETTINGS gets those streams
   * refused (RST_STREAM REFUSED_STREAM); one that does after loses the connection (GOAWAY).
   */
  maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
  /** Request header block, counted as HTTP/2 does (name + value + 32 each); over it: RST_STREAM ENHANCE_YOUR_CALM. */
  maxHeaderListBytes: 65_536,
  /** Header fields per request; over it: RST_STREAM ENHANCE_YOUR_CALM (node's default, Envoy has 100). */
  maxHeaderListPairs: 128,
  /**
   * Rapid reset (CVE-2023-44487): once a connection has opened this many streams, it is closed
   * (GOAWAY ENHANCE_YOUR_CALM) as soon as more than half of them were reset by the caller within
   * prematureResetLifetimeMs. Envoy waits for 500 streams; every one of these streams has already
   * been forwarded, and an app on nghttp2 (node, and so grpc-js) closes the sidecar's shared
   * upstream connection after 1,000 resets in a burst, so we stop much earlier.
   */
  prematureResetMinStreams: 100,
  prematureResetLifetimeMs: 1_000,
  /**
   * A connection silent this long is sent a PING; one still unanswered after another interval is
   * closed.
   */
  keepaliveIntervalMs: 10_000,
  /** A connection with no open stream for this long is closed with GOAWAY (Envoy: 1 h). */
  idleTimeoutMs: 3_600_000,
} as const;

const SESSION_OPTIONS: SessionOptions = {
  streamWindow: STREAM_WINDOW_BYTES,
  connectionWindow: CONNECTION_WINDOW_BYTES,
  maxConcurrentStreams: LISTENER_LIMITS.maxConcurrentStreams,
  maxHeaderListBytes: LISTENER_LIMITS.maxHeaderListBytes,
  maxHeaderListPairs: LISTENER_LIMITS.maxHeaderListPairs,
};

/** A TLS record carrying a handshake message: the first byte of every ClientHello. */
const TLS_HANDSHAKE_RECORD = 0x16;

export interface ListenerOptions {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly log: Logger;
}

/** What the first bytes say the connection is; 'undecided' until there are enough of them. */
function classify(head: Buffer): 'h2' | 'tls' | 'other' | 'undecided' {
  if (head[0] === TLS_HANDSHAKE_RECORD) return 'tls';
  const n = Math.min(head.length, PREFACE.length);
  if (!head.subarray(0, n).equals(PREFACE.subarray(0, n))) return 'other';
  return n === PREFACE.length ? 'h2' : 'undecided';
}

function http1Reply(name: string): string {
  const body = `remora ${name} listener: this port speaks gRPC over HTTP/2 (h2c prior knowledge), not HTTP/1.1\n`;
  return (
    'HTTP/1.1 505 HTTP Version Not Supported\r\n' +
    'content-type: text/plain; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    'connection: close\r\n\r\n' +
    body
  );
}

/** Why a listener closed connections on its own, counted since it started. */
export interface ListenerCounters {
  /** Handshakes refused (bad or missing client certificate, wrong CA, no SPIFFE ID, garbage). */
  tlsRejected: number;
  /** Closed for not becoming an HTTP/2 session in time. */
  handshakeTimeouts: number;
  /** Closed, still in their handshake, to make room for newer connections. */
  handshakesEvicted: number;
  /** Closed for resetting most of their streams right after opening them. */
  rapidResets: number;
  /** Closed for not answering a keepalive PING. */
  keepaliveTimeouts: number;
  /** Closed (GOAWAY) after idleTimeoutMs without a stream. */
  idleClosed: number;
}

/** Per-session bookkeeping of the guards (one object per connection). */
interface SessionGuard {
  readonly listener: Listener;
  readonly session: H2Session;
  open: number;
  streams: number;
  prematureResets: number;
  idleSince: number;
  pingOutstanding: boolean;
}

const kGuard = Symbol('remora.listener.guard');
const kOpenedAt = Symbol('remora.listener.openedAt');
type GuardedSession = H2Session & { [kGuard]?: SessionGuard };
type GuardedStream = H2Stream & { [kGuard]?: SessionGuard; [kOpenedAt]?: number };

function noop(): void {}

// Module-level listeners (`this` is the stream or session) so a stream costs no closure.
function onGuardedStream(this: GuardedSession, stream: GuardedStream): void {
  const guard = this[kGuard];
  if (guard === undefined) return;
  // Whatever the request path did or did not do with this stream, an error on it (the session
  // torn down by a protocol error, say) must never be an uncaught exception that ends the process.
  stream.on('error', noop);
  guard.open++;
  guard.streams++;
  stream[kGuard] = guard;
  stream[kOpenedAt] = Date.now();
  stream.on('close', onGuardedStreamClose);
}

function onGuardedStreamClose(this: GuardedStream): void {
  const guard = this[kGuard];
  if (guard === undefined) return;
  const session = guard.session;
  const now = Date.now();
  if (--guard.open === 0) guard.idleSince = now;
  // 'aborted': the stream ended while our answer was still unfinished, i.e. the caller reset it.
  if (!this.aborted || session.destroyed || now - (this[kOpenedAt] ?? now) >= LISTENER_LIMITS.prematureResetLifetimeMs) return;
  guard.prematureResets++;
  if (guard.streams >= LISTENER_LIMITS.prematureResetMinStreams && guard.prematureResets * 2 > guard.streams) {
    guard.listener.counters.rapidResets++;
    const why = `reset ${guard.prematureResets} of its ${guard.streams} streams within ${LISTENER_LIMITS.prematureResetLifetimeMs} ms of opening them (rapid reset)`;
    guard.listener.abusive(session, why);
    session.destroy(new Error(why), ErrorCode.ENHANCE_YOUR_CALM);
  }
}

function onSessionQuiet(this: GuardedSession): void {
  const guard = this[kGuard];
  if (guard === undefined || this.destroyed || guard.pingOutstanding) return;
  if (guard.open === 0 && Date.now() - guard.idleSince >= LISTENER_LIMITS.idleTimeoutMs) {
    guard.listener.counters.idleClosed++;
    this.close();
    return;
  }
  guard.pingOutstanding = true;
  try {
    this.ping(onPingAnswered.bind(guard));
  } catch {
    this.destroy();
    return;
  }
  // The inactivity timer fires once per quiet spell, and a dead session has no activity to re-arm it.
  setTimeout(onPingDeadline, LISTENER_LIMITS.keepaliveIntervalMs, guard).unref();
}

function onPingAnswered(this: SessionGuard, err: Error | null): void {
  if (!err) this.pingOutstanding = false;
}

function onPingDeadline(guard: SessionGuard): void {
  if (!guard.pingOutstanding || guard.session.destroyed) return;
  guard.listener.counters.keepaliveTimeouts++;
  guard.session.destroy();
}

/** A connection between accept and its first SETTINGS frame. */
interface Handshake {
  /** The TCP socket: destroying it closes whatever was built on it (TLS, the HTTP/2 session). */
  readonly socket: Socket;
  readonly timer: NodeJS.Timeout;
}

/**
 * Names a connection the same from its TCP socket and from the TLS socket wrapping it (node gives
 * no public way from one to the other); unique among a listener's live connections.
 */
function connectionKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

export class Listener {
  private readonly tcp: net.Server;
  private readonly sessions = new Set<H2Session>();
  /** By connectionKey, in accept order, so the oldest is the first to drop when there are too many. */
  private readonly handshakes = new Map<string, Handshake>();
  private boundPort = 0;
  private tlsServer: tls.Server | undefined;
  private ownIdentity = '';
  readonly counters: ListenerCounters = { tlsRejected: 0, handshakeTimeouts: 0, handshakesEvicted: 0, rapidResets: 0, keepaliveTimeouts: 0, idleClosed: 0 };

  constructor(private readonly opts: ListenerOptions, private readonly onStream: StreamHandler) {
    this.tcp = net.createServer({ noDelay: true }, (socket) => this.sniff(socket));
  }

  /** Handshakes refused (bad or missing client certificate, wrong CA, no SPIFFE ID, garbage). */
  get tlsRejected(): number {
    return this.counters.tlsRejected;
  }

  /**
   * Accept mTLS with this certificate from now on (rotation: only new connections see it). Until
   * the first call, TLS connections are closed: there is nothing to present.
   */
  setTls(options: tls.SecureContextOptions, ownIdentity: string): void {
    this.ownIdentity = ownIdentity;
    if (this.tlsServer) {
      this.tlsServer.setSecureContext(options);
      return;
    }
    const server = tls.createServer({
      ...options,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
      // The handshake deadline (sniff) covers TLS too; this is only node's own backstop.
      handshakeTimeout: LISTENER_LIMITS.handshakeTimeoutMs * 2,
    });
    server.on('secureConnection', (socket: TLSSocket) => this.secured(socket));
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      this.counters.tlsRejected++;
      if (this.opts.log.isLevelEnabled('debug')) this.opts.log.debug({ err: err.message, remote: socket.remoteAddress, listener: this.opts.name }, 'mTLS handshake refused');
      socket.destroy();
    });
    this.tlsServer = server;
  }

  private secured(socket: TLSSocket): void {
    const identity = spiffeIdOf(socket.getPeerX509Certificate()?.subjectAltName);
    if (identity === undefined || socket.alpnProtocol !== 'h2') {
      // A valid chain but no (single) SPIFFE ID, or a peer that won't speak h2: not a mesh peer.
      this.counters.tlsRejected++;
      this.opts.log.warn({ remote: socket.remoteAddress, alpn: socket.alpnProtocol, listener: this.opts.name }, 'mTLS peer refused: its certificate has no SPIFFE ID or it did not negotiate h2');
      socket.destroy();
      return;
    }
    const serviceAccount = identity.slice(identity.lastIndexOf('/sa/') + 4);
    tagSocket(socket, { identity, serviceAccount, forwardedClientCert: `By=${this.ownIdentity};URI=${identity}` });
    this.handToH2(socket);
  }

  private handToH2(socket: Socket): void {
    const session = new H2Session(socket, 'server', SESSION_OPTIONS);
    rememberPeer(session);
    this.sessions.add(session);
    const handshakeKey = connectionKey(socket);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (err: Error) => {
      if (this.opts.log.isLevelEnabled('debug')) this.opts.log.debug({ err: err.message, listener: this.opts.name }, 'downstream session error');
    });
    // The caller's first SETTINGS frame ends the handshake: from here on the keepalive takes over.
    session.once('remoteSettings', () => this.handshakeDone(handshakeKey));
    const guarded = session as GuardedSession;
    guarded[kGuard] = { listener: this, session, open: 0, streams: 0, prematureResets: 0, idleSince: Date.now(), pingOutstanding: false };
    // The guard sees each stream before the request path does.
    session.on('stream', onGuardedStream);
    session.on('stream', this.onStream);
    session.setTimeout(LISTENER_LIMITS.keepaliveIntervalMs, onSessionQuiet);
    session.start();
  }

  /** Called by the guards when they close a connection for abuse. */
  abusive(session: H2Session, why: string): void {
    this.opts.log.warn({ remote: session.socket?.remoteAddress, listener: this.opts.name }, `closing a connection that ${why}`);
  }

  private startHandshake(socket: Socket): void {
    if (this.handshakes.size >= LISTENER_LIMITS.maxPendingHandshakes) {
      // Dropping the oldest keeps room for callers that complete their handshake at once, which
      // every real client does; refusing the newest would let slow connections lock everyone out.
      const [oldest] = this.handshakes;
      if (oldest !== undefined) {
        this.counters.handshakesEvicted++;
        this.handshakeDone(oldest[0]);
        oldest[1].socket.destroy();
      }
    }
    const key = connectionKey(socket);
    const timer = setTimeout(() => {
      this.counters.handshakeTimeouts++;
      socket.destroy();
    }, LISTENER_LIMITS.handshakeTimeoutMs);
    timer.unref();
    this.handshakes.set(key, { socket, timer });
    socket.once('close', () => this.handshakeDone(key));
  }

  private handshakeDone(key: string): void {
    const h = this.handshakes.get(key);
    if (h === undefined) return;
    clearTimeout(h.timer);
    this.handshakes.delete(key);
  }

  private sniff(socket: Socket): void {
    this.startHandshake(socket);
    socket.on('error', () => socket.destroy());
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const kind = classify(head);
      if (kind === 'undecided') return;
      socket.off('data', onData);
      socket.pause();
      if (kind === 'h2') {
        socket.unshift(head);
        this.handToH2(socket);
      } else if (kind === 'tls') {
        if (!this.tlsServer) {
          this.counters.tlsRejected++;
          socket.destroy();
          return;
        }
        socket.unshift(head);
        this.tlsServer.emit('connection', socket);
      } else {
        // Read on (and drop) whatever else it sends, to see its close; the handshake deadline
        // stays on for a client that neither reads our answer nor closes.
        socket.end(http1Reply(this.opts.name));
        socket.resume();
      }
    };
    socket.on('data', onData);
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.tcp.once('error', reject);
      this.tcp.listen(this.opts.port, this.opts.address, () => {
        this.tcp.off('error', reject);
        resolve();
      });
    });
    const addr = this.tcp.address();
    this.boundPort = typeof addr === 'object' && addr ? addr.port : this.opts.port;
    return this.boundPort;
  }

  get port(): number {
    return this.boundPort;
  }

  activeSessions(): number {
    return this.sessions.size;
  }

  /** Connections accepted but not yet HTTP/2 sessions (or refused and not yet gone). */
  pendingHandshakes(): number {
    return this.handshakes.size;
  }

  /** Stop accepting, GOAWAY every session; resolves once all sessions have closed. */
  async drain(): Promise<void> {
    this.tcp.close();
    for (const h of [...this.handshakes.values()]) h.socket.destroy();
    const closing = [...this.sessions].map((s) => new Promise<void>((resolve) => {
      if (s.closed || s.destroyed) return resolve();
      s.once('close', () => resolve());
      s.close();
    }));
    await Promise.all(closing);
  }

  destroy(): void {
    this.tcp.close();
    for (const h of [...this.handshakes.values()]) h.socket.destroy();
    for (const s of this.sessions) s.destroy();
  }
}
