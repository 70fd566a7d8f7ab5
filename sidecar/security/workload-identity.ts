/**
 * The sidecar's own certificate over time: obtained at start, renewed at about half its
 * lifetime (with jitter, so a fleet started together does not renew together), at once when the
 * control plane says another CA certificate signs now, and on demand (admin POST /rotate_cert).
 * A failed renewal is retried with backoff while the old certificate is still used. Listeners and
 * upstream pools read `material` when they open a connection, so a rotation never touches a
 * connection already open: its streams finish on the certificate they started with.
 */
import { X509Certificate } from 'node:crypto';
import type { Logger } from '../../lib/log.js';
import { fullJitterBackoff } from '../upstream/backoff.js';
import { buildTlsMaterial, type TlsMaterial, type WorkloadCertificate } from './tls-material.js';

export interface ObtainedCertificate {
  readonly certificate: WorkloadCertificate;
  /** The roots the issuer says to trust, if it says (the control plane's push may say later). */
  readonly trustBundle?: readonly string[];
}

/** Where certificates come from: the control plane's CA, or files. */
export interface CertificateSource {
  readonly name: string;
  obtain(): Promise<ObtainedCertificate>;
}

export interface WorkloadIdentityOptions {
  readonly log: Logger;
  /** Renew after this fraction of the lifetime (default 0.5). */
  readonly renewAt?: number;
  readonly retryBaseMs?: number;
  readonly retryCapMs?: number;
  /** Told after every change of certificate or trust bundle. */
  readonly onChange?: (material: TlsMaterial) => void;
}

export interface IdentityStatus {
  readonly source: string;
  readonly spiffeId: string | undefined;
  readonly notBefore: string | undefined;
  readonly notAfter: string | undefined;
  readonly issuerFingerprint: string | undefined;
  readonly trustBundle: readonly { subject: string; fingerprint256: string; notAfter: string }[];
  readonly renewals: number;
  readonly nextRenewalAt: string | undefined;
  readonly lastError: string | undefined;
}

/** The CA certificate among `candidates` whose key signed `leafPem`, as a SHA-256 fingerprint ('' if none). */
export function issuerFingerprint(leafPem: string, candidates: readonly string[]): string {
  const leaf = new X509Certificate(leafPem);
  for (const pem of candidates) {
    try {
      const ca = new X509Certificate(pem);
      if (leaf.checkIssued(ca) && leaf.verify(ca.publicKey)) return ca.fingerprint256;
    } catch {
      // Not a certificate we can read: not the issuer.
    }
  }
  return '';
}

export class WorkloadIdentity {
  material: TlsMaterial | undefined;
  private bundle: readonly string[] = [];
  private signer = '';
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private failures = 0;
  private renewals = 0;
  private nextRenewalAt: number | undefined;
  private lastError: string | undefined;
  private stopped = false;

  constructor(private readonly source: CertificateSource, private readonly opts: WorkloadIdentityOptions) {}

  start(): void {
    void this.rotate('start');
  }

  /** A certificate that is valid right now. */
  get valid(): boolean {
    const c = this.material?.certificate;
    if (!c) return false;
    const now = Date.now();
    return now >= c.notBefore.getTime() && now < c.notAfter.getTime();
  }

  get spiffeId(): string | undefined {
    return this.material?.certificate.spiffeId;
  }

  /** Obtains a new certificate now; concurrent requests share one attempt. */
  rotate(reason: string): Promise<void> {
    this.inFlight ??= this.obtain(reason).finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /** The roots pushed by the control plane; they replace what the issuer said. */
  setTrustBundle(bundle: readonly string[]): void {
    if (bundle.length === 0 || sameList(bundle, this.bundle)) return;
    this.bundle = bundle;
    const cert = this.material?.certificate;
    if (cert) this.install(cert);
  }

  /** The CA certificate signing now; ours is replaced if another signed it (root rotation). */
  setSigner(fingerprint: string): void {
    this.signer = fingerprint;
    const cert = this.material?.certificate;
    if (cert && fingerprint !== '' && cert.issuerFingerprint !== fingerprint) void this.rotate('the mesh CA changed its signing certificate');
  }

  status(): IdentityStatus {
    const c = this.material?.certificate;
    return {
      source: this.source.name,
      spiffeId: c?.spiffeId,
      notBefore: c?.notBefore.toISOString(),
      notAfter: c?.notAfter.toISOString(),
      issuerFingerprint: c?.issuerFingerprint,
      trustBundle: this.bundle.map((pem) => {
        const x = new X509Certificate(pem);
        return { subject: x.subject, fingerprint256: x.fingerprint256, notAfter: new Date(x.validTo).toISOString() };
      }),
      renewals: this.renewals,
      nextRenewalAt: this.nextRenewalAt === undefined ? undefined : new Date(this.nextRenewalAt).toISOString(),
      lastError: this.lastError,
    };
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async obtain(reason: string): Promise<void> {
    if (this.stopped) return;
    clearTimeout(this.timer);
    try {
      const got = await this.source.obtain();
      if (this.stopped) return;
      if (got.trustBundle && got.trustBundle.length > 0 && this.bundle.length === 0) this.bundle = got.trustBundle;
      this.install(got.certificate);
      this.failures = 0;
      this.lastError = undefined;
      this.renewals++;
      const c = got.certificate;
      this.opts.log.info({ reason, spiffeId: c.spiffeId, notAfter: c.notAfter.toISOString(), source: this.source.name }, 'workload certificate installed');
      this.scheduleRenewal(c);
      // A push may have named a new signer while this request was in flight.
      if (this.signer !== '' && c.issuerFingerprint !== this.signer && c.issuerFingerprint !== '') this.retryLater();
    } catch (err) {
      if (this.stopped) return;
      this.lastError = (err as Error).message;
      this.failures++;
      this.opts.log.error({ reason, err: this.lastError, attempt: this.failures, source: this.source.name }, 'cannot obtain a workload certificate; will retry');
      this.retryLater();
    }
  }

  private install(certificate: WorkloadCertificate): void {
    const bundle = this.bundle;
    this.material = buildTlsMaterial(certificate, bundle);
    this.opts.onChange?.(this.material);
  }

  private scheduleRenewal(c: WorkloadCertificate): void {
    // Half of the life left now, not of notAfter - notBefore: CAs backdate notBefore for clock skew
    // (ours by a minute), which for a short-lived certificate would put "half-life" in the past.
    const now = Date.now();
    const left = c.notAfter.getTime() - now;
    const jitter = (Math.random() - 0.5) * 0.1 * left;
    this.arm(Math.max(left * (this.opts.renewAt ?? 0.5) + jitter, 0), 'renewal at half-life');
  }

  private retryLater(): void {
    const delay = fullJitterBackoff(this.failures, this.opts.retryBaseMs ?? 500, this.opts.retryCapMs ?? 10_000);
    this.arm(Math.max(delay, 100), 'retry');
  }

  private arm(delayMs: number, reason: string): void {
    clearTimeout(this.timer);
    this.nextRenewalAt = Date.now() + delayMs;
    // setTimeout overflows past 2^31-1 ms (24.8 days): wake up and re-check instead.
    this.timer = setTimeout(() => void this.rotate(reason), Math.min(delayMs, 2 ** 31 - 1));
    this.timer.unref();
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
