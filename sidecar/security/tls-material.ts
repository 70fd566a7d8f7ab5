/**
 * A workload certificate turned into what node:tls uses: server options for the inbound
 * listener and a client SecureContext for upstream connections. Rebuilt when the certificate
 * or the trust bundle changes; connections already open keep the context they started with.
 */
import tls from 'node:tls';

export interface WorkloadCertificate {
  /** The workload certificate first, then intermediates. */
  readonly chainPem: readonly string[];
  readonly keyPem: string;
  readonly spiffeId: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 fingerprint of the CA certificate that signed it. */
  readonly issuerFingerprint: string;
}

export interface TlsMaterial {
  readonly certificate: WorkloadCertificate;
  readonly trustBundle: readonly string[];
  /** For tls.Server#setSecureContext. */
  readonly serverOptions: tls.SecureContextOptions;
  readonly clientContext: tls.SecureContext;
}

export function buildTlsMaterial(certificate: WorkloadCertificate, trustBundle: readonly string[]): TlsMaterial {
  const serverOptions: tls.SecureContextOptions = {
    key: certificate.keyPem,
    cert: certificate.chainPem.join('\n'),
    ca: [...trustBundle],
    minVersion: 'TLSv1.3',
  };
  return { certificate, trustBundle, serverOptions, clientContext: tls.createSecureContext(serverOptions) };
}
