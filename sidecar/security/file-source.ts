/**
 * Certificates from files (cert-manager, SPIRE's helper, or `remora bench`): read at start and
 * again at each renewal time or SIGHUP, so a file rotated by another tool is picked up.
 */
import { readFile } from 'node:fs/promises';
import { certificateInfo, keyMatchesCertificate, splitPemBundle } from '../../lib/pki/x509.js';
import type { CertificateSource, ObtainedCertificate } from './workload-identity.js';
import { issuerFingerprint } from './workload-identity.js';

export interface CertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly trustBundleFile: string;
}

export class FileCertificateSource implements CertificateSource {
  readonly name: string;

  constructor(private readonly files: CertificateFiles) {
    this.name = `files ${files.certFile}`;
  }

  async obtain(): Promise<ObtainedCertificate> {
    const [chainText, keyPem, bundleText] = await Promise.all([
      readFile(this.files.certFile, 'utf8'),
      readFile(this.files.keyFile, 'utf8'),
      readFile(this.files.trustBundleFile, 'utf8'),
    ]);
    const chainPem = splitPemBundle(chainText);
    const trustBundle = splitPemBundle(bundleText);
    const leaf = chainPem[0];
    if (!leaf) throw new Error(`${this.files.certFile} holds no PEM certificate`);
    if (trustBundle.length === 0) throw new Error(`${this.files.trustBundleFile} holds no PEM certificate`);
    if (!keyMatchesCertificate(keyPem, leaf)) throw new Error(`${this.files.keyFile} is not the key of the certificate in ${this.files.certFile}`);
    const info = certificateInfo(leaf);
    const spiffeId = info.uris.find((u) => u.startsWith('spiffe://'));
    if (!spiffeId) throw new Error(`the certificate in ${this.files.certFile} has no spiffe:// URI SAN`);
    return {
      certificate: {
        chainPem,
        keyPem,
        spiffeId,
        notBefore: info.notBefore,
        notAfter: info.notAfter,
        issuerFingerprint: issuerFingerprint(leaf, [...chainPem.slice(1), ...trustBundle]),
      },
      trustBundle,
    };
  }
}
