/**
 * The control plane's own certificate for its TLS port (15012), issued by the mesh CA it runs:
 * SPIFFE ID spiffe://<td>/ns/remora-system/sa/remora-control-plane plus the DNS names sidecars
 * may dial. Renewed at half-life and whenever the CA's signer changes; grpc-js takes each new
 * certificate for new connections through its certificate-provider interface.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../lib/log.js';
import { generateKeyPair } from '../../lib/pki/keys.js';
import { spiffeId } from '../../lib/pki/spiffe.js';
import { ROOT_NAMESPACE } from '../resources/mtls-mode.js';
import type { MeshCa } from './mesh-ca.js';

type Provider = grpc.experimental.CertificateProvider;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;
type CaListener = grpc.experimental.CaCertificateUpdateListener;

export const CONTROL_PLANE_SERVICE_ACCOUNT = 'remora-control-plane';

export class ServingCertificate implements Provider {
  private identity: grpc.experimental.IdentityCertificateUpdate | null = null;
  private ca: grpc.experimental.CaCertificateUpdate | null = null;
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly caListeners = new Set<CaListener>();
  private timer: NodeJS.Timeout | undefined;
  private signer = '';

  constructor(
    private readonly meshCa: MeshCa,
    private readonly dnsNames: readonly string[],
    private readonly trustDomain: () => string,
    private readonly log: Logger,
    /** The service account in the SPIFFE ID (the webhook has its own). */
    private readonly serviceAccount = CONTROL_PLANE_SERVICE_ACCOUNT,
  ) {}

  /** Issues the first certificate; call again (refresh) when the CA changes. */
  async refresh(): Promise<void> {
    clearTimeout(this.timer);
    const keys = await generateKeyPair();
    const id = spiffeId({ trustDomain: this.trustDomain(), namespace: ROOT_NAMESPACE, serviceAccount: this.serviceAccount });
    const issued = this.meshCa.issue(keys.publicKeyPem, id, this.meshCa.defaultTtlSeconds, this.dnsNames);
    this.signer = this.meshCa.signerFingerprint;
    this.identity = { certificate: Buffer.from(issued.chainPem.join('\n')), privateKey: Buffer.from(keys.privateKeyPem) };
    this.ca = { caCertificate: Buffer.from(this.meshCa.trustBundle.join('\n')) };
    for (const l of this.identityListeners) l(this.identity);
    for (const l of this.caListeners) l(this.ca);
    const halfLife = (issued.notAfter.getTime() - Date.now()) / 2;
    this.timer = setTimeout(() => void this.refreshLogged('half-life'), Math.min(halfLife, 2 ** 31 - 1));
    this.timer.unref();
    this.log.info({ spiffeId: id, dnsNames: this.dnsNames, notAfter: issued.notAfter.toISOString() }, 'serving certificate issued');
  }

  /** The CA's roots or signer changed. */
  caChanged(): void {
    if (this.meshCa.signerFingerprint !== this.signer) void this.refreshLogged('the CA signs with another root');
    else if (this.ca) {
      this.ca = { caCertificate: Buffer.from(this.meshCa.trustBundle.join('\n')) };
      for (const l of this.caListeners) l(this.ca);
    }
  }

  private async refreshLogged(why: string): Promise<void> {
    try {
      await this.refresh();
    } catch (err) {
      this.log.error({ err: (err as Error).message, why }, 'cannot renew the control plane TLS certificate; retrying in 10 s');
      this.timer = setTimeout(() => void this.refreshLogged(why), 10_000);
      this.timer.unref();
    }
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  addIdentityCertificateListener(l: IdentityListener): void {
    this.identityListeners.add(l);
    if (this.identity) l(this.identity);
  }
  removeIdentityCertificateListener(l: IdentityListener): void {
    this.identityListeners.delete(l);
  }
  addCaCertificateListener(l: CaListener): void {
    this.caListeners.add(l);
    if (this.ca) l(this.ca);
  }
  removeCaCertificateListener(l: CaListener): void {
    this.caListeners.delete(l);
  }
}
