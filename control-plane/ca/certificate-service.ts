/**
 * The CertificateService gRPC API: authenticate the caller's token for the identity it claims,
 * check its CSR, sign. Refusals name the reason (never the token); every issue is logged with the
 * identity and expiry, never with key or token material.
 */
import * as grpc from '@grpc/grpc-js';
import {
  CertificateServiceService,
  type SignCertificateRequest,
  type SignCertificateResponse,
} from '../../protos/gen/remora/mesh/v1/certificate.js';
import type { Logger } from '../../lib/log.js';
import { spiffeId } from '../../lib/pki/spiffe.js';
import { PkiError } from '../../lib/pki/x509.js';
import type { Authenticator } from './authenticator.js';
import type { MeshCa } from './mesh-ca.js';

export interface CertificateServiceOptions {
  readonly ca: MeshCa;
  /** Undefined when the control plane runs without a CA. */
  readonly authenticator: Authenticator | undefined;
  readonly trustDomain: () => string;
  readonly log: Logger;
  /** Told of every refused request (metrics). */
  readonly onRefused?: () => void;
}

type Call = grpc.ServerUnaryCall<SignCertificateRequest, SignCertificateResponse>;
type Callback = grpc.sendUnaryData<SignCertificateResponse>;

function refuse(callback: Callback, code: grpc.status, details: string, opts?: CertificateServiceOptions): void {
  opts?.onRefused?.();
  callback({ code, details, name: 'CertificateRequestRefused', message: details });
}

function bearerToken(metadata: grpc.Metadata): string {
  const value = metadata.get('authorization')[0];
  const text = typeof value === 'string' ? value : '';
  return text.startsWith('Bearer ') ? text.slice(7).trim() : '';
}

export function addCertificateService(server: grpc.Server, opts: CertificateServiceOptions): void {
  server.addService(CertificateServiceService, {
    signCertificate: (call: Call, callback: Callback) => void sign(call, callback, opts),
  });
}

async function sign(call: Call, callback: Callback, opts: CertificateServiceOptions): Promise<void> {
  const { ca, authenticator, log } = opts;
  const req = call.request;
  if (!authenticator) {
    return refuse(callback, grpc.status.FAILED_PRECONDITION, 'this control plane runs without a mesh CA (--ca none): the mesh is plaintext');
  }
  if (!ca.ready) return refuse(callback, grpc.status.UNAVAILABLE, 'the mesh CA is still starting; try again');
  const claim = { namespace: req.namespace, serviceAccount: req.serviceAccount };
  const auth = await authenticator.authenticate(bearerToken(call.metadata), claim);
  if (!auth.ok) {
    log.warn({ namespace: req.namespace, serviceAccount: req.serviceAccount, reason: auth.reason, peer: call.getPeer() }, 'certificate request refused');
    return refuse(callback, grpc.status.UNAUTHENTICATED, `certificate request for ${req.namespace}/${req.serviceAccount} refused: ${auth.reason}`, opts);
  }
  let id: string;
  try {
    id = spiffeId({ trustDomain: opts.trustDomain(), namespace: auth.namespace, serviceAccount: auth.serviceAccount });
  } catch (err) {
    return refuse(callback, grpc.status.INVALID_ARGUMENT, (err as Error).message);
  }
  try {
    const issued = ca.sign(req.csrPem, id, req.ttlSeconds);
    log.info({ spiffeId: id, notAfter: issued.notAfter.toISOString(), via: auth.via }, 'certificate issued');
    callback(null, { certChainPem: [...issued.chainPem], trustBundlePem: [...ca.trustBundle], spiffeId: id, notAfterMs: issued.notAfter.getTime() });
  } catch (err) {
    if (err instanceof PkiError) return refuse(callback, grpc.status.INVALID_ARGUMENT, `bad certificate signing request: ${err.message}`, opts);
    log.error({ err: (err as Error).message, spiffeId: id }, 'signing failed');
    return refuse(callback, grpc.status.INTERNAL, 'the mesh CA failed to sign; see the control plane log');
  }
}
