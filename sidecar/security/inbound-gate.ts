/**
 * The first layer of the inbound path: a plaintext call under STRICT mTLS is refused
 * (UNAUTHENTICATED), a call the authorization policies deny gets PERMISSION_DENIED, and both
 * never reach the app. A call let through carries the caller's identity in
 * x-forwarded-client-cert, which is removed from anything that arrives, so it cannot be forged.
 */
import type { StreamHandler } from '../proxy/handle-stream.js';
import { Status, respondWithError } from '../grpc/status.js';
import type { InboundPolicy } from './inbound-policy.js';
import { PEER_IDENTITY_HEADER, peerOf } from './peer.js';

export function guardInbound(inner: StreamHandler, policy: () => InboundPolicy): StreamHandler {
  return function inboundGate(stream, headers) {
    const p = policy();
    const peer = peerOf(stream.session);
    if (peer === undefined && p.mode === 'STRICT') {
      stream.on('error', () => {});
      respondWithError(stream, Status.UNAUTHENTICATED, 'remora: this service requires mutual TLS (mtlsMode STRICT); plaintext calls are refused', 'mtls-required');
      return;
    }
    const decision = p.authorizer.check(peer?.identity, headers[':path'] ?? '');
    if (!decision.allowed) {
      stream.on('error', () => {});
      respondWithError(stream, Status.PERMISSION_DENIED, `remora: ${decision.reason}`, 'denied');
      return;
    }
    if (peer !== undefined) headers[PEER_IDENTITY_HEADER] = peer.forwardedClientCert;
    else if (headers[PEER_IDENTITY_HEADER] !== undefined) delete headers[PEER_IDENTITY_HEADER];
    inner(stream, headers);
  };
}
