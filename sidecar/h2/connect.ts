/**
 * Opening a client H2Session: TCP or TLS (ALPN h2 required), the preface and SETTINGS written at
 * once (the socket holds them until it is connected), 'connect' once the connection is up.
 * Connection failures are the session's 'error' (with the socket's code, ECONNREFUSED and so on)
 * followed by 'close', as node's http2.connect reports them.
 */
import net, { type Socket } from 'node:net';
import tls, { type PeerCertificate, type SecureContext } from 'node:tls';
import { H2Session, type SessionOptions } from './session.js';

export interface ConnectOptions extends SessionOptions {
  /** mTLS: our certificate and the roots the server's chain must reach. Plaintext (h2c) when absent. */
  readonly secureContext?: SecureContext;
  /** With secureContext: checks the server's certificate beyond its chain; an Error refuses it. */
  readonly checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
  /** A socket of the caller's making instead (tests, or a connect failed before it began). */
  readonly createConnection?: () => Socket;
}

export function connect(host: string, port: number, opts: ConnectOptions): H2Session {
  let socket: Socket;
  let ready: string;
  if (opts.createConnection) {
    socket = opts.createConnection();
    ready = 'connect';
  } else if (opts.secureContext !== undefined) {
    socket = tls.connect({
      host,
      port,
      secureContext: opts.secureContext,
      ALPNProtocols: ['h2'],
      // SNI takes host names only; our endpoints are addresses, checked by identity instead.
      ...(net.isIP(host) ? {} : { servername: host }),
      ...(opts.checkServerIdentity ? { checkServerIdentity: opts.checkServerIdentity } : {}),
    });
    ready = 'secureConnect';
  } else {
    socket = net.connect({ host, port, noDelay: true });
    ready = 'connect';
  }
  socket.setNoDelay(true);
  const session = new H2Session(socket, 'client', opts);
  session.holdOutput();
  session.authority = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
  socket.once(ready, () => {
    if (ready === 'secureConnect' && (socket as tls.TLSSocket).alpnProtocol !== 'h2') {
      session.destroy(Object.assign(new Error(`${host}:${port} did not negotiate h2 over TLS (ALPN)`), { code: 'ERR_HTTP2_ERROR' }));
      return;
    }
    session.releaseOutput();
    session.emit('connect', session, socket);
  });
  session.start();
  return session;
}
