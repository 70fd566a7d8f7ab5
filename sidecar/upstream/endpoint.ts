/**
 * One upstream address and its pool of HTTP/2 sessions. Streams multiplex over a session until the
 * peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached, then another session opens. A session that got
 * GOAWAY or grew older than maxSessionAgeMs takes no new streams and closes once its streams finish.
 * Failed connects back off exponentially, and calls during the backoff fail fast. A keepalive finds
 * sessions that went silent (an app stuck, a peer gone without a FIN), and each session has a budget of stream resets
 * so that callers going away in bulk do not look like an attack to the app.
 */
import net from 'node:net';
import type { PeerCertificate, SecureContext } from 'node:tls';
import { spiffeIdOf } from '../security/peer.js';
import { connect, type ConnectOptions } from '../h2/connect.js';
import type { Settings } from '../h2/frames.js';
import type { EndpointConfig } from '../config/model.js';
import { fullJitterBackoff } from './backoff.js';
import {
  CONNECTION_WINDOW_BYTES,
  STREAM_WINDOW_BYTES,
  UPSTREAM_MAX_HEADER_LIST_BYTES,
  UPSTREAM_MAX_HEADER_LIST_PAIRS,
  UPSTREAM_KEEPALIVE,
  UPSTREAM_RESET_BUDGET,
} from './h2-settings.js';
import type { BalancedEndpoint } from './balancer.js';
import { PeakEwma } from './peak-ewma.js';
import type { EndpointBreaker } from '../health/endpoint-breaker.js';
import type { H2Stream } from '../h2/stream.js';
import type { H2Session } from '../h2/session.js';

export interface PooledSession {
  readonly session: H2Session;
  readonly createdAt: number;
  /** Streams opened on this session and not yet closed. */
  active: number;
  /** No new streams: GOAWAY received, too old, or being closed. */
  draining: boolean;
  connected: boolean;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS for this session (a guess until its SETTINGS arrive). */
  maxStreams: number;
  /** A stream was handed out since the last keepalive PING went out: only then is one worth sending. */
  unproven: boolean;
  /** What the session had read from its socket at the last keepalive tick. */
  readAtLastTick: number;
  /** When the unanswered keepalive PING went out; 0 when none is. */
  pingSentAt: number;
  /** RST_STREAMs this session may send now (a token bucket), and when the bucket was last refilled. */
  resetTokens: number;
  resetsRefilledAt: number;
  /** Streams whose caller went away past the reset budget: ended instead of reset, answers dropped. */
  abandoned: number;
}

const kAbandonedOn = Symbol('remora.abandonedOn');
type AbandonedStream = H2Stream & { [kAbandonedOn]?: PooledSession };

/**
 * Takes one reset from the session's budget; false when it is spent, and the caller must not send
 * RST_STREAM on this session now (abandonStream instead).
 */
export function spendReset(p: PooledSession, now: number): boolean {
  const budget = UPSTREAM_RESET_BUDGET;
  p.resetTokens = Math.min(budget.burst, p.resetTokens + ((now - p.resetsRefilledAt) * budget.perSecond) / 1_000);
  p.resetsRefilledAt = now;
  if (p.resetTokens < 1) return false;
  p.resetTokens--;
  return true;
}

/**
 * For a stream whose caller is gone when the session's reset budget is spent. Envoy and Linkerd
 * reset such streams one by one, but an app on nghttp2 closes the whole connection after 1,000 of
 * those in a burst, failing every other caller's call on it. So, like Envoy draining a connection
 * it no longer trusts: the session takes no new streams (new calls open a fresh connection), the
 * request side is ended and whatever answer comes is dropped, and once only such streams are left
 * the connection is closed, which ends them all at the app without a single reset. The caller must
 * keep the stream counted in `active` until its 'close' (forward.ts does) and must have stopped
 * reading its answer.
 */
export function abandonStream(p: PooledSession, up: H2Stream): void {
  p.abandoned++;
  (up as AbandonedStream)[kAbandonedOn] = p;
  up.once('close', onAbandonedClose);
  up.resume();
  if (!up.writableEnded) up.end();
  p.draining = true;
  if (!p.session.closed) p.session.close();
}

function onAbandonedClose(this: AbandonedStream): void {
  const p = this[kAbandonedOn];
  if (p !== undefined) p.abandoned--;
}

/**
 * Runs every UPSTREAM_KEEPALIVE.tickMs per session, so no call pays for it. A session that read
 * nothing for a whole tick while streams handed out since the last PING are in flight gets a PING.
 */
function keepaliveTick(p: PooledSession): void {
  const session = p.session;
  if (session.destroyed || !p.connected) return;
  if (p.abandoned > 0 && p.active <= p.abandoned) {
    // Nobody waits for anything on it any more (see abandonStream). Not session.destroy(): that
    // resets every stream first, the very burst this avoids; closing the socket under the session
    // ends them all at the app at once, and the session follows.
    session.socket.destroySoon();
    return;
  }
  const read = session.socket.bytesRead;
  if (read !== p.readAtLastTick) {
    p.readAtLastTick = read;
    return;
  }
  if (p.pingSentAt !== 0 || !p.unproven || p.active === 0) return;
  p.unproven = false;
  p.pingSentAt = Date.now();
  try {
    session.ping(onKeepaliveAnswer.bind(p));
  } catch (err) {
    // Too many PINGs in flight, or the session is gone already: either way not one to keep.
    session.destroy(err as Error);
    return;
  }
  setTimeout(onPingDeadline, UPSTREAM_KEEPALIVE.pingTimeoutMs, p).unref();
}

function onKeepaliveAnswer(this: PooledSession, err: Error | null): void {
  this.pingSentAt = 0;
  // A PING that fails (cancelled, session closing) says the session is not to be trusted.
  if (err !== null && !this.draining) {
    this.draining = true;
    if (!this.session.closed) this.session.close();
  }
}

function onPingDeadline(p: PooledSession): void {
  // A later PING may be the one outstanding now: it gets its own deadline.
  if (p.pingSentAt === 0 || p.session.destroyed || Date.now() - p.pingSentAt < UPSTREAM_KEEPALIVE.pingTimeoutMs - 10) return;
  p.draining = true;
  // Its calls would never end: fail them now (UNAVAILABLE), new ones go to a fresh connection.
  p.session.destroy(new Error(`no answer to a keepalive PING within ${UPSTREAM_KEEPALIVE.pingTimeoutMs} ms`));
}

/** The cluster's max-connections breaker, as the pool sees it. */
export interface ConnectionGate {
  tryAcquireConnection(): string | null;
  releaseConnection(): void;
}

export interface EndpointOptions {
  readonly connectTimeoutMs: number;
  readonly maxSessionAgeMs: number;
  readonly backoffBaseMs?: number;
  readonly backoffCapMs?: number;
  readonly connections?: ConnectionGate;
  readonly breaker?: EndpointBreaker;
  /** Latency estimate before the first response (the cluster passes its current typical value). */
  readonly initialRttMs?: number;
  /** Our workload certificate for mTLS, read at each connect (so rotation reaches new connections only). */
  readonly clientTls?: () => SecureContext | undefined;
}

/** Every session is busy and the cluster's max-connections breaker forbids another. */
export class ConnectionOverflow extends Error {
  constructor(readonly breaker: string) {
    super(breaker);
  }
}

const UNLIMITED_STREAMS = 2 ** 32 - 1;

/** How the pool's sessions are set up (and tests that talk to an app the way the sidecar does). */
export const UPSTREAM_SESSION_OPTIONS = {
  streamWindow: STREAM_WINDOW_BYTES,
  connectionWindow: CONNECTION_WINDOW_BYTES,
  maxHeaderListBytes: UPSTREAM_MAX_HEADER_LIST_BYTES,
  maxHeaderListPairs: UPSTREAM_MAX_HEADER_LIST_PAIRS,
} as const;

export class Endpoint implements BalancedEndpoint {
  readonly key: string;
  /** Latency of this endpoint's responses (time to response headers), for PEAK_EWMA. */
  readonly ewma: PeakEwma;
  /** Per-endpoint breaker, when the cluster has circuit breakers configured. */
  readonly breaker: EndpointBreaker | undefined;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly labels: Readonly<Record<string, string>>;
  /** The SPIFFE ID the server must present: set means mTLS, unset means plaintext. */
  readonly identity: string | undefined;
  /** Calls in flight to this endpoint: the least-request balancers read this. */
  activeRequests = 0;
  private sessions: PooledSession[] = [];
  private consecutiveConnectFailures = 0;
  private backoffUntil = 0;
  /** The cause of the last failed connect (e.g. ECONNREFUSED), for error messages. */
  lastConnectError = '';
  private closed = false;
  /** The peer's last advertised SETTINGS_MAX_CONCURRENT_STREAMS. */
  private peerMaxStreams = UNLIMITED_STREAMS;

  constructor(cfg: EndpointConfig, private readonly opts: EndpointOptions) {
    this.address = cfg.address;
    this.port = cfg.port;
    this.weight = cfg.weight;
    this.labels = cfg.labels;
    this.key = Endpoint.keyOf(cfg);
    this.identity = cfg.identity;
    this.ewma = new PeakEwma(Date.now(), opts.initialRttMs === undefined ? {} : { defaultRttMs: opts.initialRttMs });
    this.breaker = opts.breaker;
  }

  /** "address:port" (IPv6 in brackets): unique in a cluster. */
  static keyOf(cfg: Pick<EndpointConfig, 'address' | 'port'>): string {
    return `${cfg.address.includes(':') ? `[${cfg.address}]` : cfg.address}:${cfg.port}`;
  }

  latencyEstimateMs(now: number): number {
    return this.ewma.estimate(now);
  }

  /** Can take a call now: not backing off after a failed connect, breaker not open. */
  available(now: number): boolean {
    return !this.inBackoff(now) && (this.breaker === undefined || this.breaker.state(now) !== 'open');
  }

  /** True while a recent connect failure makes calls fail fast rather than wait. */
  inBackoff(now: number): boolean {
    return now < this.backoffUntil && !this.sessions.some((s) => s.connected && !s.draining);
  }

  backoffReason(now: number): string {
    return `connect to ${this.key} failed: ${this.lastConnectError} (next attempt in ${Math.max(0, this.backoffUntil - now)} ms)`;
  }

  /** A session with room for one more stream, opening a new one if every session is full. */
  acquire(now: number): PooledSession {
    const list = this.sessions;
    for (let i = 0; i < list.length; i++) {
      const p = list[i]!;
      if (p.draining) continue;
      if (p.session.closed) {
        // Closed (GOAWAY, or the connection dropped) in this same tick: the pool hears of it on
        // the session's 'close', which comes later, and a call put on it now would fail.
        p.draining = true;
        continue;
      }
      if (now - p.createdAt > this.opts.maxSessionAgeMs) {
        this.retire(p);
        continue;
      }
      if (p.active < p.maxStreams) {
        p.unproven = true;
        return p;
      }
    }
    const gate = this.opts.connections;
    const refused = gate ? gate.tryAcquireConnection() : null;
    if (refused !== null) {
      // At the connection limit: queue on the least busy session rather than open another.
      let best: PooledSession | undefined;
      for (const p of list) if (!p.draining && (!best || p.active < best.active)) best = p;
      if (best) {
        best.unproven = true;
        return best;
      }
      throw new ConnectionOverflow(refused);
    }
    return this.open(now);
  }

  private connectOptions(): ConnectOptions {
    const expected = this.identity;
    if (expected === undefined) return UPSTREAM_SESSION_OPTIONS;
    const secureContext = this.opts.clientTls?.();
    if (secureContext === undefined) {
      // No certificate of our own yet: fail this connect like any other, with the reason.
      return {
        ...UPSTREAM_SESSION_OPTIONS,
        createConnection: () => {
          const socket = new net.Socket();
          process.nextTick(() => socket.destroy(Object.assign(new Error(`no workload certificate yet for mTLS to ${expected}`), { code: 'NO_WORKLOAD_CERTIFICATE' })));
          return socket;
        },
      };
    }
    return {
      ...UPSTREAM_SESSION_OPTIONS,
      secureContext,
      // The chain is checked against the trust bundle by TLS; the name that counts is the SPIFFE ID
      // the control plane says serves this endpoint, not a DNS name.
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const got = spiffeIdOf(cert.subjectaltname);
        if (got === expected) return undefined;
        return Object.assign(new Error(`server identity ${got ?? '(no SPIFFE ID)'} is not the expected ${expected}`), { code: 'ERR_REMORA_PEER_IDENTITY' });
      },
    };
  }

  private open(now: number): PooledSession {
    const session = connect(this.address, this.port, this.connectOptions());
    // Until this session's SETTINGS arrive, assume what the peer said on earlier sessions, or no
    // limit for a peer never seen (RFC 9113's default), so a burst shares the one connecting
    // session instead of each call opening its own. (node's remoteSettings cannot be trusted before
    // then: it is {} and then the protocol defaults.)
    const pooled: PooledSession = {
      session, createdAt: now, active: 0, draining: false, connected: false, maxStreams: this.peerMaxStreams,
      unproven: true, readAtLastTick: 0, pingSentAt: 0,
      resetTokens: UPSTREAM_RESET_BUDGET.burst, resetsRefilledAt: now, abandoned: 0,
    };
    this.sessions.push(pooled);
    const timer = setTimeout(() => {
      if (!pooled.connected) session.destroy(new Error(`connect timeout after ${this.opts.connectTimeoutMs} ms`));
    }, this.opts.connectTimeoutMs);
    timer.unref();
    const keepalive = setInterval(keepaliveTick, UPSTREAM_KEEPALIVE.tickMs, pooled);
    keepalive.unref();
    session.once('connect', () => {
      clearTimeout(timer);
      pooled.connected = true;
      this.consecutiveConnectFailures = 0;
      this.backoffUntil = 0;
    });
    session.on('error', (err: NodeJS.ErrnoException) => {
      if (!pooled.connected) this.connectFailed(err);
    });
    session.on('remoteSettings', (settings: Settings) => {
      const max = settings.maxConcurrentStreams ?? UNLIMITED_STREAMS;
      pooled.maxStreams = max;
      this.peerMaxStreams = max;
    });
    session.on('goaway', () => {
      pooled.draining = true;
    });
    session.once('close', () => {
      this.opts.connections?.releaseConnection();
      clearTimeout(timer);
      clearInterval(keepalive);
      pooled.draining = true;
      const i = this.sessions.indexOf(pooled);
      if (i !== -1) this.sessions.splice(i, 1);
    });
    return pooled;
  }

  private connectFailed(err: NodeJS.ErrnoException): void {
    this.consecutiveConnectFailures++;
    // ECONNREFUSED says it all; TLS failures need their message (which certificate, why).
    this.lastConnectError = err.code === undefined ? err.message : /^E[A-Z]+$/.test(err.code) ? err.code : `${err.code}: ${err.message}`;
    const delay = fullJitterBackoff(this.consecutiveConnectFailures, this.opts.backoffBaseMs ?? 100, this.opts.backoffCapMs ?? 5_000);
    this.backoffUntil = Date.now() + Math.max(delay, 10);
  }

  /** Stop new streams on a session and let its in-flight ones finish. */
  private retire(p: PooledSession): void {
    p.draining = true;
    if (!p.session.closed) p.session.close();
  }

  sessionCount(): number {
    return this.sessions.length;
  }

  /** Graceful: in-flight streams finish; no new sessions are opened after this. */
  close(): void {
    this.closed = true;
    for (const p of [...this.sessions]) this.retire(p);
  }

  destroy(): void {
    this.closed = true;
    for (const p of [...this.sessions]) p.session.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
