/**
 * Signs workload certificates. Holds the signing certificate and its (decrypted) key in memory
 * only; nothing here logs or returns key material. Certificates start a minute in the past
 * (clock skew between hosts) and never outlive the certificate that signs them.
 */
import { readCsr, signWorkloadCertificate, certificateInfo } from '../../lib/pki/x509.js';

export interface CaSigner {
  readonly certPem: string;
  readonly keyPem: string;
  /** Certificates to send after the workload's own, up to a root in the bundle (an intermediate CA). */
  readonly intermediates: readonly string[];
  readonly fingerprint: string;
}

export interface IssuedCertificate {
  readonly chainPem: readonly string[];
  readonly notAfter: Date;
}

const BACKDATE_MS = 60_000;

export class MeshCa {
  private signer: CaSigner | undefined;
  private bundle: readonly string[] = [];
  issued = 0;

  constructor(readonly defaultTtlSeconds: number, readonly maxTtlSeconds: number) {}

  configure(bundle: readonly string[], signer: CaSigner): void {
    this.bundle = bundle;
    this.signer = signer;
  }

  get ready(): boolean {
    return this.signer !== undefined;
  }

  get trustBundle(): readonly string[] {
    return this.bundle;
  }

  get signerFingerprint(): string {
    return this.signer?.fingerprint ?? '';
  }

  /** Throws PkiError('bad-csr') for a bad request. */
  sign(csrPem: string, spiffeId: string, requestedTtlSeconds: number, now = Date.now()): IssuedCertificate {
    return this.issue(readCsr(csrPem).publicKeyPem, spiffeId, requestedTtlSeconds, [], now);
  }

  /** A certificate for a key the control plane holds itself (its own TLS port). */
  issue(publicKeyPem: string, spiffeId: string, requestedTtlSeconds: number, dnsNames: readonly string[] = [], now = Date.now()): IssuedCertificate {
    const signer = this.signer;
    if (!signer) throw new Error('the mesh CA is not ready yet');
    const ttl = requestedTtlSeconds > 0 ? Math.min(requestedTtlSeconds, this.maxTtlSeconds) : this.defaultTtlSeconds;
    const signerEnd = certificateInfo(signer.certPem).notAfter.getTime();
    const notAfter = new Date(Math.min(now + ttl * 1000, signerEnd));
    const certPem = signWorkloadCertificate({
      subjectPublicKeyPem: publicKeyPem,
      spiffeId,
      dnsNames,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter,
      issuerCertPem: signer.certPem,
      issuerKeyPem: signer.keyPem,
    });
    this.issued++;
    return { chainPem: [certPem, ...signer.intermediates], notAfter };
  }
}
