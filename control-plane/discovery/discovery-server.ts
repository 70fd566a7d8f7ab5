/**
 * The discovery service of one control-plane replica: keeps the mesh state current from etcd,
 * pushes one shared snapshot to every connected sidecar when what they see changes, and registers
 * the instances of sidecars that ask for it on this replica's etcd lease.
 */
import * as grpc from '@grpc/grpc-js';
import { DiscoveryServiceService } from '../../protos/gen/remora/mesh/v1/discovery.js';
import type { Logger } from '../../lib/log.js';
import type { InstanceRecord, SidecarStatus } from '../resources/types.js';
import type { Store, Watch } from '../store/store.js';
import { MeshState } from './mesh-state.js';
import { PushScheduler } from './push-scheduler.js';
import { encodeSnapshot, type EncodedSnapshot } from './snapshot.js';
import { meshTrustDomain, type CaView } from './security-doc.js';
import { performance } from 'node:perf_hooks';
import type { StatsReport } from '../../protos/gen/remora/mesh/v1/discovery.js';
import { MeshStats, WINDOW_MS } from '../dashboard/mesh-stats.js';
import type { MeshNack, MeshSidecar, MeshView } from '../dashboard/mesh-view.js';
import type { ControlPlaneMetrics } from '../observability/cp-metrics.js';
import { SidecarStream, type DiscoveryCall, type StreamHost } from './sidecar-stream.js';
import { StatusWriter } from './status-writer.js';

export interface DiscoveryServerOptions {
  readonly store: Store;
  readonly replicaId: string;
  readonly log: Logger;
  /** How long a sidecar whose stream broke (not drained) stays registered, waiting for it to come back. */
  readonly deregisterGraceMs: number;
  /** The mesh CA's trust bundle and signer, pushed with the config. */
  readonly ca?: CaView;
  readonly metrics?: ControlPlaneMetrics;
}

/** The generated service, with snapshots written as pre-encoded bytes. */
const DiscoveryDefinition = {
  streamConfig: { ...DiscoveryServiceService.streamConfig, responseSerialize: (b: Buffer): Buffer => b },
} as const;

const RETRY_MS = 1000;

/** Kinds a snapshot carries; a NACK blaming anything else is counted as "other". */
const NACK_REASONS = new Set(['cluster', 'route', 'security']);

/**
 * The metric label of a NACK: the kind of the first resource at fault, or "snapshot". Only known
 * kinds: a label taken from whatever a client wrote would make a new time series per NACK.
 */
export function nackReason(errors: readonly string[]): string {
  const kind = /^([a-z]+)\//.exec(errors[0] ?? '')?.[1];
  if (kind === undefined) return 'snapshot';
  return NACK_REASONS.has(kind) ? kind : 'other';
}

export class DiscoveryServer implements StreamHost {
  readonly replicaId: string;
  private readonly state = new MeshState();
  private snapshot: EncodedSnapshot | undefined;
  private readonly streams = new Set<SidecarStream>();
  private readonly owners = new Map<string, SidecarStream>();
  private readonly pendingDeregister = new Map<string, NodeJS.Timeout>();
  private readonly scheduler = new PushScheduler(() => this.push());
  private readonly statusWriter: StatusWriter;
  private watch: Watch | undefined;
  private stopped = false;
  pushes = 0;
  /** Sidecars' golden-metric reports, for the dashboard. */
  readonly meshStats = new MeshStats();
  /** Newest first. */
  private readonly recentNacks: MeshNack[] = [];
  /** When the first change not yet pushed arrived (performance.now()). */
  private changedAt: number | undefined;
  /** Lag probe: a revision etcd had that our view had not reached yet, and when we first saw it. */
  private behind: { revision: bigint; since: number } | undefined;
  private lagTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: DiscoveryServerOptions) {
    this.replicaId = opts.replicaId;
    this.statusWriter = new StatusWriter(opts.store, opts.log);
  }

  get ready(): boolean {
    return this.snapshot !== undefined;
  }

  current(): EncodedSnapshot | undefined {
    return this.snapshot;
  }

  addTo(server: grpc.Server): void {
    server.addService(DiscoveryDefinition, {
      streamConfig: (call: DiscoveryCall) => {
        if (this.stopped) {
          call.emit('error', Object.assign(new Error('control plane is shutting down'), { code: grpc.status.UNAVAILABLE }));
          return;
        }
        this.streams.add(new SidecarStream(call, this));
      },
    });
  }

  /** Loads the mesh (retrying while etcd is unreachable) and starts watching. Resolves once loaded. */
  async start(): Promise<void> {
    if (!this.lagTimer) this.startLagProbe();
    for (;;) {
      try {
        await this.reload();
        return;
      } catch (err) {
        if (this.stopped) return;
        this.opts.log.warn({ err: (err as Error).message }, 'cannot load mesh state from etcd; retrying');
        this.opts.metrics?.watchErrors.inc();
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  private async reload(): Promise<void> {
    const loaded = await this.opts.store.load();
    this.state.reset(loaded);
    for (const bad of loaded.invalid) this.opts.log.warn({ key: bad.key, problems: bad.problems }, 'invalid resource in etcd skipped');
    await this.watch?.close();
    this.watch = await this.opts.store.watch(loaded.revision, (events) => {
      for (const e of events) {
        if (e.type === 'resync-needed') {
          this.opts.metrics?.watchErrors.inc();
          this.opts.log.warn({ reason: e.reason }, 'etcd watch lost history; reloading');
          void this.start();
          return;
        }
        if (e.type === 'resource-invalid') this.opts.log.warn({ key: e.invalid.key, problems: e.invalid.problems }, 'invalid resource in etcd skipped');
      }
      if (this.state.apply(events)) this.changed();
    });
    this.push();
  }

  private changed(): void {
    this.changedAt ??= performance.now();
    this.scheduler.changed();
  }

  private push(): void {
    const changedAt = this.changedAt;
    this.changedAt = undefined;
    const snap = encodeSnapshot(this.state, this.opts.ca);
    if (this.snapshot && snap.contentHash === this.snapshot.contentHash) return;
    this.snapshot = snap;
    this.pushes++;
    for (const s of this.streams) s.send(snap);
    this.opts.metrics?.pushes.inc();
    if (changedAt !== undefined) this.opts.metrics?.pushDuration.observe((performance.now() - changedAt) / 1000);
    if (this.opts.log.isLevelEnabled('debug')) this.opts.log.debug({ version: snap.version, resources: snap.resourceCount, sidecars: this.streams.size }, 'pushed');
  }

  /** The CA's roots or signer changed: push them. */
  caChanged(): void {
    if (this.snapshot) this.changed();
  }

  statsReported(stream: SidecarStream, report: StatsReport): void {
    if (stream.key && stream.instance) this.meshStats.add(stream.key, stream.instance.service, report);
  }

  nacked(stream: SidecarStream, errors: readonly string[]): void {
    this.opts.metrics?.nacks.inc({ reason: nackReason(errors) });
    this.recentNacks.unshift({ at: new Date().toISOString(), sidecar: stream.key ?? '?', version: stream.status?.lastNack?.version ?? '', errors });
    if (this.recentNacks.length > 20) this.recentNacks.length = 20;
  }

  /** Seconds our view has been behind etcd (see startLagProbe). */
  watchLagSeconds(): number {
    if (!this.behind) return 0;
    if (BigInt(this.state.revision) >= this.behind.revision) {
      this.behind = undefined;
      return 0;
    }
    return (Date.now() - this.behind.since) / 1000;
  }

  /** Every few seconds, ask etcd for its revision: a view that stays behind it means the watch is stuck. */
  private startLagProbe(): void {
    const probe = async (): Promise<void> => {
      try {
        const rev = BigInt(await this.opts.store.currentRevision());
        if (rev > BigInt(this.state.revision) && !this.behind) this.behind = { revision: rev, since: Date.now() };
      } catch {
        this.opts.metrics?.watchErrors.inc();
      }
    };
    this.lagTimer = setInterval(() => void probe(), 5_000);
    this.lagTimer.unref();
  }

  meshView(): MeshView {
    const now = Date.now();
    const edges = this.meshStats.edges(now);
    const services = new Map<string, number>();
    for (const i of this.state.instances.values()) services.set(i.service, (services.get(i.service) ?? 0) + 1);
    for (const e of edges) for (const s of [e.source, e.destination]) if (!services.has(s)) services.set(s, 0);
    const sidecars: MeshSidecar[] = [];
    for (const s of this.streams) {
      const i = s.instance;
      if (!i || !s.key) continue;
      const expiry = this.meshStats.certificateExpiry.get(s.key);
      const nack = s.status?.lastNack;
      sidecars.push({
        namespace: i.namespace,
        service: i.service,
        instanceId: i.instanceId,
        replica: this.replicaId,
        appliedVersion: s.status?.appliedVersion ?? '',
        certificateExpiry: expiry === undefined ? null : new Date(expiry).toISOString(),
        lastNack: nack ? { at: nack.at, sidecar: s.key, version: nack.version, errors: nack.errors } : null,
      });
    }
    sidecars.sort((a, b) => `${a.namespace}/${a.service}/${a.instanceId}`.localeCompare(`${b.namespace}/${b.service}/${b.instanceId}`));
    return {
      generatedAt: new Date(now).toISOString(),
      windowSeconds: WINDOW_MS / 1000,
      configVersion: this.snapshot?.version ?? '',
      services: [...services].map(([name, instances]) => ({ name, instances })).sort((a, b) => a.name.localeCompare(b.name)),
      edges,
      sidecars,
      nacks: [...this.recentNacks],
    };
  }

  /** The trust domain certificates are issued in (the mesh-wide MeshConfig's). */
  trustDomain(): string {
    return meshTrustDomain(this.state);
  }

  register(stream: SidecarStream, instance: InstanceRecord): void {
    const key = stream.key!;
    const pending = this.pendingDeregister.get(key);
    if (pending) clearTimeout(pending);
    this.pendingDeregister.delete(key);
    this.owners.set(key, stream);
    const attempt = (): void => {
      if (this.owners.get(key) !== stream || !stream.registered) return;
      this.opts.store.registerInstance(stream.instance ?? instance).catch((err: Error) => {
        this.opts.log.warn({ sidecar: key, err: err.message }, 'registration failed; retrying');
        setTimeout(attempt, RETRY_MS).unref();
      });
    };
    attempt();
  }

  deregisterNow(stream: SidecarStream): void {
    const i = stream.instance!;
    this.opts.store.deregisterInstance(i.namespace, i.service, i.instanceId).catch((err: Error) =>
      this.opts.log.warn({ sidecar: stream.key, err: err.message }, 'deregistration failed; the lease or grace period will remove it'),
    );
  }

  statusChanged(status: SidecarStatus): void {
    this.statusWriter.put(status);
  }

  closed(stream: SidecarStream): void {
    this.streams.delete(stream);
    if (stream.key) this.meshStats.forget(stream.key);
    // Shutting down: registrations stay; the sidecars re-register with another replica.
    if (this.stopped) return;
    const key = stream.key;
    if (!key) return;
    if (this.owners.get(key) !== stream) {
      // Not registered here: nothing waits for a grace period, but its status row must go (unless
      // the same sidecar is already back on another stream), or every client that ever said Hello
      // would stay in `remora status` for the life of this replica.
      const i = stream.instance!;
      if (!stream.registered && !this.owners.has(key) && ![...this.streams].some((s) => s.key === key)) this.statusWriter.delete(i.namespace, i.service, i.instanceId);
      return;
    }
    this.owners.delete(key);
    const i = stream.instance!;
    const forget = (): void => {
      this.pendingDeregister.delete(key);
      this.statusWriter.delete(i.namespace, i.service, i.instanceId);
      if (stream.registered) this.deregisterNow(stream);
    };
    if (stream.draining || !stream.registered) return forget();
    // A broken stream may be a sidecar on its way back (to us or another replica): wait a while.
    this.pendingDeregister.set(key, setTimeout(forget, this.opts.deregisterGraceMs));
  }

  log(level: 'info' | 'warn' | 'debug', obj: object, msg: string): void {
    this.opts.log[level](obj, msg);
  }

  sidecars(): { key: string | undefined; registered: boolean; draining: boolean }[] {
    return [...this.streams].map((s) => ({ key: s.key, registered: s.registered, draining: s.draining }));
  }

  connectedCount(): number {
    return this.streams.size;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.lagTimer);
    this.scheduler.stop();
    for (const t of this.pendingDeregister.values()) clearTimeout(t);
    for (const s of [...this.streams]) s.close();
    await this.watch?.close();
    await this.statusWriter.close();
  }
}
