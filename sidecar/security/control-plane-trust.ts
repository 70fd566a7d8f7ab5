/**
 * How a sidecar trusts the control plane's TLS port (15012): the roots in --control-plane-ca-file
 * to begin with, then also every root the control plane pushes, so a root rotation (which re-issues
 * the control plane's own certificate too) never cuts a sidecar off. The control plane must present
 * its SPIFFE ID, spiffe://<td>/ns/remora-system/sa/remora-control-plane, whatever address was dialled.
 */
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { spiffeIdOf } from './peer.js';

type CaListener = grpc.experimental.CaCertificateUpdateListener;
const CONTROL_PLANE_ID = /^spiffe:\/\/[^/]+\/ns\/remora-system\/sa\/remora-control-plane$/;

export class ControlPlaneTrust implements grpc.experimental.CertificateProvider {
  private roots: string[];
  private readonly listeners = new Set<CaListener>();

  constructor(initialRootsPem: readonly string[]) {
    this.roots = [...initialRootsPem];
  }

  /** Adds pushed roots (never removes the operator's). */
  add(rootsPem: readonly string[]): void {
    const fresh = rootsPem.filter((r) => !this.roots.includes(r));
    if (fresh.length === 0) return;
    this.roots = [...this.roots, ...fresh];
    const update = this.update();
    for (const l of this.listeners) l(update);
  }

  credentials(): grpc.ChannelCredentials {
    return grpc.experimental.createCertificateProviderChannelCredentials(this, null, {
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const id = spiffeIdOf(cert.subjectaltname);
        if (id !== undefined && CONTROL_PLANE_ID.test(id)) return undefined;
        return new Error(`the control plane presented ${id ?? 'no SPIFFE ID'}, not spiffe://<td>/ns/remora-system/sa/remora-control-plane`);
      },
    });
  }

  private update(): grpc.experimental.CaCertificateUpdate {
    return { caCertificate: Buffer.from(this.roots.join('\n')) };
  }

  addCaCertificateListener(l: CaListener): void {
    this.listeners.add(l);
    l(this.update());
  }
  removeCaCertificateListener(l: CaListener): void {
    this.listeners.delete(l);
  }
  addIdentityCertificateListener(): void {}
  removeIdentityCertificateListener(): void {}
}
