/**
 * Certificates from the control plane's CA: a fresh key pair per certificate (node:crypto, off
 * the event loop), a CSR, and SignCertificate with the sidecar's token. The token file is re-read
 * for every request because Kubernetes rotates projected service-account tokens.
 */
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { CertificateServiceClient, type SignCertificateResponse } from '../../protos/gen/remora/mesh/v1/certificate.js';
import { generateKeyPair } from '../../lib/pki/keys.js';
import { createCsr, certificateInfo } from '../../lib/pki/x509.js';
import type { CertificateSource, ObtainedCertificate } from './workload-identity.js';
import { issuerFingerprint } from './workload-identity.js';

export interface CaClientOptions {
  readonly controlPlanes: readonly string[];
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Bootstrap token or service-account token; undefined sends none (the CA will say why it refuses). */
  readonly tokenFile: string | undefined;
  /** 0: the control plane's default. */
  readonly ttlSeconds: number;
  readonly timeoutMs?: number;
  /** TLS to the control plane's 15012 port; plaintext (15010) when absent. */
  readonly credentials?: grpc.ChannelCredentials;
}

export class CaClient implements CertificateSource {
  readonly name = 'control-plane CA';
  private readonly clients = new Map<string, CertificateServiceClient>();
  private next = 0;

  constructor(private readonly opts: CaClientOptions) {
    this.next = Math.floor(Math.random() * opts.controlPlanes.length);
  }

  async obtain(): Promise<ObtainedCertificate> {
    const keys = await generateKeyPair();
    // The CA writes the identity from the authenticated claim; the CSR proves we hold the key.
    const csrPem = createCsr(keys, `spiffe://pending/ns/${this.opts.namespace}/sa/${this.opts.serviceAccount}`);
    const metadata = new grpc.Metadata();
    if (this.opts.tokenFile) {
      const token = (await readFile(this.opts.tokenFile, 'utf8')).trim();
      metadata.set('authorization', `Bearer ${token}`);
    }
    const problems: string[] = [];
    // Each replica once, starting after the one used last.
    for (let i = 0; i < this.opts.controlPlanes.length; i++) {
      const address = this.opts.controlPlanes[(this.next + i) % this.opts.controlPlanes.length]!;
      try {
        const res = await this.sign(address, csrPem, metadata);
        return toObtained(res, keys.privateKeyPem);
      } catch (err) {
        const e = err as grpc.ServiceError;
        // A refusal is the CA's answer, not a replica's problem: don't ask the others.
        if (e.code === grpc.status.PERMISSION_DENIED || e.code === grpc.status.UNAUTHENTICATED || e.code === grpc.status.INVALID_ARGUMENT || e.code === grpc.status.FAILED_PRECONDITION) {
          throw new Error(`${address} refused the certificate request: ${e.details || e.message}`);
        }
        problems.push(`${address}: ${e.details || e.message}`);
      }
    }
    this.next = (this.next + 1) % this.opts.controlPlanes.length;
    throw new Error(`no control plane signed our certificate (${problems.join('; ')})`);
  }

  private sign(address: string, csrPem: string, metadata: grpc.Metadata): Promise<SignCertificateResponse> {
    let client = this.clients.get(address);
    if (!client) {
      client = new CertificateServiceClient(address, this.opts.credentials ?? grpc.credentials.createInsecure());
      this.clients.set(address, client);
    }
    const request = { csrPem, namespace: this.opts.namespace, serviceAccount: this.opts.serviceAccount, ttlSeconds: this.opts.ttlSeconds };
    const c = client;
    return new Promise((resolve, reject) => {
      c.signCertificate(request, metadata, { deadline: Date.now() + (this.opts.timeoutMs ?? 10_000) }, (err, res) => (err ? reject(err) : resolve(res!)));
    });
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
  }
}

function toObtained(res: SignCertificateResponse, keyPem: string): ObtainedCertificate {
  const leaf = res.certChainPem[0];
  if (!leaf) throw new Error('the CA answered without a certificate');
  const info = certificateInfo(leaf);
  const spiffeId = info.uris.find((u) => u.startsWith('spiffe://'));
  if (!spiffeId) throw new Error('the CA signed a certificate without a SPIFFE ID');
  return {
    certificate: {
      chainPem: res.certChainPem,
      keyPem,
      spiffeId,
      notBefore: info.notBefore,
      notAfter: info.notAfter,
      issuerFingerprint: issuerFingerprint(leaf, [...res.certChainPem.slice(1), ...res.trustBundlePem]),
    },
    trustBundle: res.trustBundlePem,
  };
}
