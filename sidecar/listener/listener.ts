/**
 * An HTTP/2 listener. A plain TCP server looks at the first bytes of each connection: the HTTP/2
 * preface goes to the h2 server; anything else (an HTTP/1.1 client on a gRPC port, say) gets a
 * readable HTTP/1.1 error instead of a bare GOAWAY. Tracks sessions so drain can GOAWAY them all.
 */
import net, { type Socket } from 'node:net';
import http2, { type Http2Session, type ServerHttp2Session } from 'node:http2';
import type { Logger } from '../../lib/log.js';
import type { StreamHandler } from '../proxy/handle-stream.js';
import {
  CONNECTION_WINDOW_BYTES,
  MAX_CONCURRENT_STREAMS,
  MAX_SESSION_MEMORY_MB,
  STREAM_WINDOW_BYTES,
} from '../upstream/h2-settings.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const FIRST_BYTES_TIMEOUT_MS = 10_000;

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

  constructor(private readonly opts: ListenerOptions, onStream: StreamHandler) {
    this.h2 = http2.createServer({
      settings: { initialWindowSize: STREAM_WINDOW_BYTES, maxConcurrentStreams: MAX_CONCURRENT_STREAMS, enablePush: false },
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    this.h2.on('stream', onStream);
    this.h2.on('session', (session: ServerHttp2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      session.on('error', (err) => {
        if (opts.log.isLevelEnabled('debug')) opts.log.debug({ err: err.message, listener: opts.name }, 'downstream session error');
      });
      session.once('connect', () => session.setLocalWindowSize(CONNECTION_WINDOW_BYTES));
    });
    this.tcp = net.createServer({ noDelay: true }, (socket) => this.sniff(socket));
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
