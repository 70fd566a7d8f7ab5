/**
 * An HTTP/2 listener. A plain TCP server looks at the first bytes of each connection: the HTTP/2
 * preface goes to the h2 server; a TLS ClientHello goes through a TLS 1.3 server that demands a
 * client certificate chaining to the trust bundle (mTLS), then to the same h2 server; anything
 * else (an HTTP/1.1 client on a gRPC port, say) gets a readable HTTP/1.1 error instead of a bare
 * GOAWAY. Sniffing is what lets PERMISSIVE mode take plaintext and mTLS on one port; whether a
 * plaintext call is then allowed is the inbound gate's decision. Tracks sessions so drain can
 * GOAWAY them all.
 */
import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import http2, { type Http2Session, type ServerHttp2Session } from 'node:http2';
import type { Logger } from '../../lib/log.js';
import type { StreamHandler } from '../proxy/handle-stream.js';
import { rememberPeer, spiffeIdOf, tagSocket } from '../security/peer.js';
import {
  CONNECTION_WINDOW_BYTES,
  MAX_CONCURRENT_STREAMS,
  MAX_SESSION_MEMORY_MB,
  STREAM_WINDOW_BYTES,
} from '../upstream/h2-settings.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const FIRST_BYTES_TIMEOUT_MS = 10_000;
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** A TLS record carrying a handshake message: the first byte of every ClientHello. */
const TLS_HANDSHAKE_RECORD = 0x16;

export interface ListenerOptions {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly log: Logger;
}

function looksLikeHttp2(chunk: Buffer): boolean {
  const n = Math.min(chunk.length, PREFACE.length);
  return chunk.subarray(0, n).equals(PREFACE.subarray(0, n));
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

export class Listener {
  private readonly tcp: net.Server;
  private readonly h2: http2.Http2Server;
  private readonly sessions = new Set<Http2Session>();
  private boundPort = 0;
  private tlsServer: tls.Server | undefined;
  private ownIdentity = '';
  /** Handshakes refused (bad or missing client certificate, wrong CA, no SPIFFE ID, garbage). */
  tlsRejected = 0;

  constructor(private readonly opts: ListenerOptions, onStream: StreamHandler) {
    this.h2 = http2.createServer({
      settings: { initialWindowSize: STREAM_WINDOW_BYTES, maxConcurrentStreams: MAX_CONCURRENT_STREAMS, enablePush: false },
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    this.h2.on('stream', onStream);
    this.h2.on('session', (session: ServerHttp2Session) => {
      rememberPeer(session);
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      session.on('error', (err) => {
        if (opts.log.isLevelEnabled('debug')) opts.log.debug({ err: err.message, listener: opts.name }, 'downstream session error');
      });
      session.once('connect', () => session.setLocalWindowSize(CONNECTION_WINDOW_BYTES));
    });
    this.tcp = net.createServer({ noDelay: true }, (socket) => this.sniff(socket));
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
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    });
    server.on('secureConnection', (socket: TLSSocket) => this.secured(socket));
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      this.tlsRejected++;
      if (this.opts.log.isLevelEnabled('debug')) this.opts.log.debug({ err: err.message, remote: socket.remoteAddress, listener: this.opts.name }, 'mTLS handshake refused');
      socket.destroy();
    });
    this.tlsServer = server;
  }

  private secured(socket: TLSSocket): void {
    const identity = spiffeIdOf(socket.getPeerX509Certificate()?.subjectAltName);
    if (identity === undefined || socket.alpnProtocol !== 'h2') {
      // A valid chain but no (single) SPIFFE ID, or a peer that won't speak h2: not a mesh peer.
      this.tlsRejected++;
      this.opts.log.warn({ remote: socket.remoteAddress, alpn: socket.alpnProtocol, listener: this.opts.name }, 'mTLS peer refused: its certificate has no SPIFFE ID or it did not negotiate h2');
      socket.destroy();
      return;
    }
    const serviceAccount = identity.slice(identity.lastIndexOf('/sa/') + 4);
    tagSocket(socket, { identity, serviceAccount, forwardedClientCert: `By=${this.ownIdentity};URI=${identity}` });
    this.h2.emit('connection', socket);
  }

  private sniff(socket: Socket): void {
    socket.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => socket.destroy());
    socket.once('error', () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.setTimeout(0);
      socket.pause();
      if (looksLikeHttp2(chunk)) {
        socket.unshift(chunk);
        this.h2.emit('connection', socket);
      } else if (chunk[0] === TLS_HANDSHAKE_RECORD) {
        if (!this.tlsServer) {
          this.tlsRejected++;
          socket.destroy();
          return;
        }
        socket.unshift(chunk);
        this.tlsServer.emit('connection', socket);
      } else {
        socket.end(http1Reply(this.opts.name));
      }
    });
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

  /** Stop accepting, GOAWAY every session; resolves once all sessions have closed. */
  async drain(): Promise<void> {
    this.tcp.close();
    const closing = [...this.sessions].map((s) => new Promise<void>((resolve) => {
      if (s.closed || s.destroyed) return resolve();
      s.once('close', () => resolve());
      s.close();
    }));
    await Promise.all(closing);
  }

  destroy(): void {
    this.tcp.close();
    for (const s of this.sessions) s.destroy();
  }
}
