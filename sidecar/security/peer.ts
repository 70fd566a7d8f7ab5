/**
 * The authenticated peer of an inbound connection. Worked out once per TLS connection (the
 * SPIFFE ID in its client certificate, and the header value the local app is given) and looked
 * up per call through the HTTP/2 session, so a call costs one WeakMap lookup.
 */

import type { TLSSocket } from 'node:tls';
import type { H2Session } from '../h2/session.js';

export interface PeerInfo {
  /** spiffe://<trust-domain>/ns/<ns>/sa/<sa> */
  readonly identity: string;
  /** The <sa> part: the caller as metrics name it. */
  readonly serviceAccount: string;
  /** x-forwarded-client-cert for the app: `By=<us>;URI=<peer>`, as Istio's sidecars write it. */
  readonly forwardedClientCert: string;
}

/** Tells the app who called; always replaced on inbound calls, so a caller cannot forge it. */
export const PEER_IDENTITY_HEADER = 'x-forwarded-client-cert';

const kPeer = Symbol('remora.peer');
type Tagged = TLSSocket & { [kPeer]?: PeerInfo };

const peers = new WeakMap<H2Session, PeerInfo>();

/** The SPIFFE ID in a certificate's URI SANs (`URI:spiffe://...`), or undefined if none or several. */
export function spiffeIdOf(subjectAltName: string | undefined): string | undefined {
  if (!subjectAltName) return undefined;
  let found: string | undefined;
  for (const part of subjectAltName.split(', ')) {
    if (!part.startsWith('URI:spiffe://')) continue;
    if (found !== undefined) return undefined;
    found = part.slice(4);
  }
  return found;
}

export function tagSocket(socket: TLSSocket, peer: PeerInfo): void {
  (socket as Tagged)[kPeer] = peer;
}

/** Called once per new session: `session.socket` is node's proxy onto the socket we tagged. */
export function rememberPeer(session: H2Session): void {
  const peer = (session.socket as Tagged | undefined)?.[kPeer];
  if (peer !== undefined) peers.set(session, peer);
}

/** Undefined for a plaintext connection. */
export function peerOf(session: H2Session | undefined): PeerInfo | undefined {
  return session === undefined ? undefined : peers.get(session);
}
