/**
 * Assembles a sidecar: the config source turns into runtime objects (clusters, routers) here and
 * only here; listeners hand streams to the request path; drain takes it all down gracefully.
 */
import type { Logger } from '../lib/log.js';
import type { MeshConfig } from './config/model.js';
import { Cluster } from './upstream/cluster.js';
import { FixedRouter, RouteTable, type Router } from './routing/route-table.js';
import { createStreamHandler, type StreamHandler } from './proxy/handle-stream.js';
import { observeCalls, type ObservabilityOptions } from './observability/observe-calls.js';
import { Listener } from './listener/listener.js';
import { AppHealth } from './app-health.js';
import type { IdempotencyCatalog } from './idempotency/catalog.js';
import type { IdentityStatus, WorkloadIdentity } from './security/workload-identity.js';
import { guardInbound } from './security/inbound-gate.js';
import { inboundPolicyFor, type InboundPolicy } from './security/inbound-policy.js';

export interface SidecarOptions {
  readonly service: string;
  readonly namespace: string;
  readonly appAddress: string;
  readonly appPort: number;
  readonly outboundAddress: string;
  readonly outboundPort: number;
  readonly inboundAddress: string;
  readonly inboundPort: number;
  readonly drainTimeoutMs: number;
  readonly log: Logger;
  /** Check the local app every this many ms (0: never; the app then counts as serving). */
  readonly appHealthIntervalMs: number;
  readonly appHealthService: string;
  /** Told when the app's health changes (the discovery client reports it to the control plane). */
  readonly onAppHealth?: (serving: boolean) => void;
  /** Method idempotency from supplied descriptor sets (wins over what reflection says). */
  readonly descriptors?: IdempotencyCatalog;
  /**
   * Our certificate, for mTLS both ways. Started here once a config names a trust bundle (a mesh
   * with a CA), or at once when `identityFromStart` (certificates from files).
   */
  readonly identity?: WorkloadIdentity;
  readonly identityFromStart?: boolean;
  /** Metrics, access log, tracing; absent: none of them. */
  readonly observability?: ObservabilityOptions;
}

export type SidecarState = 'starting' | 'serving' | 'draining' | 'stopped';

export class Sidecar {
  private clusters = new Map<string, Cluster>();
  private outboundRouter: Router;
  private readonly localApp: Cluster;
  private readonly inboundRouter: Router;
  private readonly outbound: Listener;
  private readonly inbound: Listener;
  private appliedConfig: MeshConfig;
  state: SidecarState = 'starting';
  /** False until a config has been applied (a control-plane sidecar starts with none). */
  private configured: boolean;
  private shuttingDown = false;
  private appHealth: AppHealth | undefined;
  private inboundPolicy: InboundPolicy;
  private identityStarted = false;

  constructor(private readonly opts: SidecarOptions, config: MeshConfig, configured = true) {
    this.appliedConfig = config;
    this.configured = configured;
    this.inboundPolicy = inboundPolicyFor(config.security, opts.namespace, opts.service);
    this.outboundRouter = this.buildOutbound(config);
    this.localApp = new Cluster({
      name: `inbound|${opts.service}`,
      endpoints: [{ address: opts.appAddress, port: opts.appPort, weight: 1, labels: {} }],
      connectTimeoutMs: 5_000,
      maxSessionAgeMs: 86_400_000,
    });
    this.inboundRouter = new FixedRouter(opts.service, this.localApp);
    const observe = (h: StreamHandler, direction: 'inbound' | 'outbound'): StreamHandler => (opts.observability ? observeCalls(h, direction, opts.observability) : h);
    this.outbound = new Listener(
      { name: 'outbound', address: opts.outboundAddress, port: opts.outboundPort, log: opts.log },
      observe(createStreamHandler(() => this.outboundRouter, opts.descriptors), 'outbound'),
    );
    this.inbound = new Listener(
      { name: 'inbound', address: opts.inboundAddress, port: opts.inboundPort, log: opts.log },
      observe(guardInbound(createStreamHandler(() => this.inboundRouter), () => this.inboundPolicy), 'inbound'),
    );
  }

  /** Called by the identity on every new certificate or trust bundle. */
  tlsChanged(): void {
    const material = this.opts.identity?.material;
    if (material) this.inbound.setTls(material.serverOptions, material.certificate.spiffeId);
  }

  private applySecurity(config: MeshConfig): void {
    this.inboundPolicy = inboundPolicyFor(config.security, this.opts.namespace, this.opts.service);
    const identity = this.opts.identity;
    const security = config.security;
    if (!identity || !security || security.trustBundle.length === 0) return;
    identity.setTrustBundle(security.trustBundle);
    if (!this.identityStarted) {
      this.identityStarted = true;
      identity.start();
    }
    identity.setSigner(security.signer);
  }

  connectionCounts(): { inbound: number; outbound: number; upstream: number } {
    let upstream = 0;
    for (const c of this.clusterList()) for (const e of c.endpointList()) upstream += e.sessionCount();
    return { inbound: this.inbound.activeSessions(), outbound: this.outbound.activeSessions(), upstream };
  }

  /** When our certificate expires (ms since the epoch), if we hold one. */
  certificateExpiry(): number | undefined {
    return this.identityStarted ? this.opts.identity?.material?.certificate.notAfter.getTime() : undefined;
  }

  identityStatus(): IdentityStatus | undefined {
    return this.identityStarted ? this.opts.identity?.status() : undefined;
  }

  /** Renew the certificate now (admin /rotate_cert); undefined when there is none to renew. */
  rotateCertificate(): Promise<void> | undefined {
    return this.identityStarted ? this.opts.identity?.rotate('requested through the admin port') : undefined;
  }

  /** mTLS is on for this sidecar (a mesh CA, or certificate files) and so a certificate is required. */
  get needsCertificate(): boolean {
    return this.identityStarted;
  }

  private buildOutbound(config: MeshConfig): Router {
    const next = new Map<string, Cluster>();
    for (const c of config.clusters) {
      const existing = this.clusters.get(c.name);
      if (existing) {
        existing.update(c);
        next.set(c.name, existing);
      } else {
        next.set(c.name, new Cluster(c, { clientTls: () => this.opts.identity?.material?.clientContext }));
      }
    }
    for (const [name, old] of this.clusters) if (!next.has(name)) old.close();
    this.clusters = next;
    return new RouteTable(config, next);
  }

  /** Swap in a new config; in-flight calls keep the objects they started with. */
  apply(config: MeshConfig): void {
    this.outboundRouter = this.buildOutbound(config);
    this.applySecurity(config);
    this.appliedConfig = config;
    this.configured = true;
    this.opts.log.info({ version: config.version, clusters: config.clusters.length, routes: config.routes.length }, 'config applied');
  }

  async start(): Promise<{ outboundPort: number; inboundPort: number }> {
    if (this.opts.identity && this.opts.identityFromStart) {
      this.identityStarted = true;
      this.opts.identity.start();
    }
    this.applySecurity(this.appliedConfig);
    const outboundPort = await this.outbound.listen();
    const inboundPort = await this.inbound.listen();
    this.state = 'serving';
    if (this.opts.appHealthIntervalMs > 0) {
      const app = this.localApp.endpointList()[0]!;
      this.appHealth = new AppHealth(
        app,
        { intervalMs: this.opts.appHealthIntervalMs, timeoutMs: Math.min(1000, this.opts.appHealthIntervalMs), serviceName: this.opts.appHealthService, authority: this.opts.service },
        (serving, why) => {
          this.opts.log.info({ serving, why }, serving ? 'local app is serving' : 'local app is not serving');
          this.opts.onAppHealth?.(serving);
        },
      );
    }
    return { outboundPort, inboundPort };
  }

  /** Ready for traffic: listening, configured, not draining (Kubernetes readiness). */
  get ready(): boolean {
    return this.state === 'serving' && this.configured && !this.shuttingDown && this.appServing && this.certificateValid;
  }

  /** Holds a valid certificate, or needs none. */
  get certificateValid(): boolean {
    return !this.needsCertificate || this.opts.identity?.valid === true;
  }

  /** The local app answers health checks (always true when app checks are off). */
  get appServing(): boolean {
    return this.appHealth === undefined || this.appHealth.serving;
  }

  get appHealthResult(): string | undefined {
    return this.appHealth?.lastResult;
  }

  /** Readiness goes false at once, ahead of draining. */
  notReady(): void {
    this.shuttingDown = true;
  }

  get config(): MeshConfig {
    return this.appliedConfig;
  }

  clusterList(): Cluster[] {
    return [...this.clusters.values(), this.localApp];
  }

  /** Stop accepting, GOAWAY every caller, let in-flight calls finish up to the drain timeout. */
  async drain(): Promise<'drained' | 'timeout'> {
    if (this.state === 'draining' || this.state === 'stopped') return 'drained';
    this.state = 'draining';
    this.appHealth?.stop();
    this.opts.identity?.stop();
    const done = Promise.all([this.outbound.drain(), this.inbound.drain()]).then(() => 'drained' as const);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.opts.drainTimeoutMs);
    });
    const result = await Promise.race([done, timeout]);
    clearTimeout(timer);
    this.outbound.destroy();
    this.inbound.destroy();
    for (const c of this.clusterList()) c.destroy();
    this.state = 'stopped';
    return result;
  }
}
