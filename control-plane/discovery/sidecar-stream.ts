/**
 * One connected sidecar: its Hello (identity and registration), the snapshots sent to it, and its
 * ACKs and NACKs. Malformed messages end this stream with INVALID_ARGUMENT and touch nothing else.
 */
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import type { Hello, InstanceUpdate, StatsReport, StreamConfigRequest } from '../../protos/gen/remora/mesh/v1/discovery.js';
import { HealthState } from '../../protos/gen/remora/mesh/v1/discovery.js';
import { Checker, DNS_LABEL } from '../../lib/validate.js';
import { DNS_LABEL_MAX } from '../resources/fields.js';
import type { InstanceRecord, SidecarStatus } from '../resources/types.js';
import type { EncodedSnapshot } from './snapshot.js';

export type DiscoveryCall = grpc.ServerDuplexStream<StreamConfigRequest, Buffer>;

/** What a stream needs from the server it belongs to. */
export interface StreamHost {
  readonly replicaId: string;
  current(): EncodedSnapshot | undefined;
  register(stream: SidecarStream, instance: InstanceRecord): void;
  deregisterNow(stream: SidecarStream): void;
  statusChanged(status: SidecarStatus): void;
  closed(stream: SidecarStream): void;
  statsReported(stream: SidecarStream, report: StatsReport): void;
  nacked(stream: SidecarStream, errors: readonly string[]): void;
  log(level: 'info' | 'warn' | 'debug', obj: object, msg: string): void;
}

/**
 * What one Hello may carry. Its instance goes to etcd and, registered, into every sidecar's
 * snapshot: without bounds one client could make every push megabytes larger. Generous next to
 * Kubernetes (63-character names, label values of at most 63 characters).
 */
export const HELLO_LIMITS = Object.freeze({ labels: 64, labelKeyChars: 317, labelValueChars: 256, textChars: 253 });

/** What one NACK may leave in `remora status` and on the dashboard; the rest is counted, not kept. */
export const NACK_LIMITS = Object.freeze({ errors: 20, errorChars: 1_000, versionChars: 256 });

/** Sidecars report stats every few seconds; a faster stream is not kept (the dashboard would hold it all). */
export const MIN_STATS_INTERVAL_MS = 1_000;

function bounded(c: Checker, v: string, path: string): void {
  if (v.length > HELLO_LIMITS.textChars) c.fail(path, `must be at most ${HELLO_LIMITS.textChars} characters, got ${v.length}`);
}

function checkLabels(c: Checker, labels: Readonly<Record<string, string>>, path: string): void {
  const entries = Object.entries(labels);
  if (entries.length > HELLO_LIMITS.labels) c.fail(path, `at most ${HELLO_LIMITS.labels} labels, got ${entries.length}`);
  const long = entries.find(([k, v]) => k.length === 0 || k.length > HELLO_LIMITS.labelKeyChars || v.length > HELLO_LIMITS.labelValueChars);
  if (long) {
    c.fail(path, `label keys must have 1 to ${HELLO_LIMITS.labelKeyChars} characters and values at most ${HELLO_LIMITS.labelValueChars}, got a key of ${long[0].length} and a value of ${long[1].length}`);
  }
}

export function validateHello(hello: Hello): { instance: InstanceRecord; problems: string[] } {
  const c = new Checker();
  const i = hello.instance;
  if (!i) return { instance: undefined as never, problems: ['hello.instance: required'] };
  // 63 characters like every DNS label: the registration and status read back from etcd are checked so.
  const label = (v: string, path: string): string => {
    const s = c.string(v, path, DNS_LABEL, 'lower-case DNS label');
    if (s !== undefined && s.length > DNS_LABEL_MAX) c.fail(path, `must be at most ${DNS_LABEL_MAX} characters, got ${s.length}`);
    return s ?? '';
  };
  const service = label(i.service, 'hello.instance.service');
  const namespace = i.namespace === '' ? 'default' : label(i.namespace, 'hello.instance.namespace');
  const instanceId = c.string(i.instanceId, 'hello.instance.instance_id', /^[-._a-zA-Z0-9]{1,253}$/, 'letters, digits, - . _') ?? '';
  if (hello.register) {
    c.string(i.address, 'hello.instance.address');
    c.int(i.port, 'hello.instance.port', 1, 65535);
  }
  bounded(c, i.address, 'hello.instance.address');
  bounded(c, i.zone, 'hello.instance.zone');
  bounded(c, i.serviceAccount, 'hello.instance.service_account');
  bounded(c, hello.appliedVersion, 'hello.applied_version');
  bounded(c, hello.sidecarVersion, 'hello.sidecar_version');
  checkLabels(c, i.labels, 'hello.instance.labels');
  const instance: InstanceRecord = {
    service,
    namespace,
    instanceId,
    address: i.address,
    port: i.port,
    zone: i.zone,
    labels: { ...i.labels },
    serviceAccount: i.serviceAccount || 'default',
    health: i.health === HealthState.HEALTH_STATE_NOT_SERVING ? 'NOT_SERVING' : 'SERVING',
    controlPlane: '',
  };
  return { instance, problems: c.problems };
}

/** A NACK's errors as `resource: message`, cut to NACK_LIMITS. */
export function nackErrors(errors: readonly { resource: string; message: string }[]): string[] {
  const cut = (e: string): string => (e.length > NACK_LIMITS.errorChars ? `${e.slice(0, NACK_LIMITS.errorChars)}... (${e.length} characters)` : e);
  const out = errors.slice(0, NACK_LIMITS.errors).map((e) => cut(e.resource ? `${e.resource}: ${e.message}` : e.message));
  if (errors.length > NACK_LIMITS.errors) out.push(`... and ${errors.length - NACK_LIMITS.errors} more errors`);
  return out;
}

const cutVersion = (v: string): string => v.slice(0, NACK_LIMITS.versionChars);

export class SidecarStream {
  instance: InstanceRecord | undefined;
  registered = false;
  draining = false;
  /** The snapshot written last; an ACK or NACK answers it (its nonce). */
  private lastSent: EncodedSnapshot | undefined;
  /** The newest snapshot not yet written, because the previous write has not drained yet. */
  private pending: EncodedSnapshot | undefined;
  private writing = false;
  private lastStatsAt = -Infinity;
  /** What this sidecar last reported to `remora status` (version, last NACK). */
  status: SidecarStatus | undefined;
  private ended = false;

  constructor(private readonly call: DiscoveryCall, private readonly host: StreamHost) {
    call.on('data', (msg: StreamConfigRequest) => this.onMessage(msg));
    call.on('end', () => this.end());
    call.on('error', () => this.end());
    call.on('close', () => this.end());
  }

  get key(): string | undefined {
    return this.instance ? `${this.instance.namespace}/${this.instance.service}/${this.instance.instanceId}` : undefined;
  }

  private reject(message: string): void {
    this.host.log('warn', { peer: this.call.getPeer(), problem: message }, 'rejecting discovery stream');
    // grpc-js turns an 'error' on a server stream into its status; destroy() would skip the status.
    this.call.emit('error', Object.assign(new Error(message), { code: grpc.status.INVALID_ARGUMENT, details: message }));
    this.end();
  }

  private onMessage(msg: StreamConfigRequest): void {
    if (this.ended) return;
    if (!this.instance) {
      if (!msg.hello) return this.reject('the first message on a discovery stream must be a Hello');
      const { instance, problems } = validateHello(msg.hello);
      if (problems.length > 0) return this.reject(`invalid Hello: ${problems.join('; ')}`);
      this.instance = { ...instance, controlPlane: this.host.replicaId };
      this.status = {
        service: instance.service,
        namespace: instance.namespace,
        instanceId: instance.instanceId,
        controlPlane: this.host.replicaId,
        connectedAt: new Date().toISOString(),
        appliedVersion: msg.hello.appliedVersion,
        lastNack: null,
      };
      this.host.statusChanged(this.status);
      this.host.log('info', { sidecar: this.key, applied: msg.hello.appliedVersion, register: msg.hello.register }, 'sidecar connected');
      if (msg.hello.register) {
        this.registered = true;
        this.host.register(this, this.instance);
      }
      const snap = this.host.current();
      if (snap) this.send(snap);
      return;
    }
    if (msg.hello) return this.reject('Hello may be sent only once per stream');
    if (msg.ack) {
      if (!this.lastSent || msg.ack.nonce !== this.lastSent.nonce) return; // a stale ACK: a newer push is on its way
      // The version of what we sent under that nonce, not whatever the ACK claims.
      this.status = { ...this.status!, appliedVersion: this.lastSent.version };
      this.host.statusChanged(this.status);
    } else if (msg.nack) {
      const errors = nackErrors(msg.nack.errors);
      this.status = { ...this.status!, lastNack: { version: cutVersion(msg.nack.version), at: new Date().toISOString(), errors } };
      this.host.statusChanged(this.status);
      this.host.log('warn', { sidecar: this.key, version: msg.nack.version, errors }, 'sidecar rejected config (NACK)');
      this.host.nacked(this, errors);
    } else if (msg.instanceUpdate) {
      this.onInstanceUpdate(msg.instanceUpdate);
    } else if (msg.stats) {
      const now = performance.now();
      if (now - this.lastStatsAt < MIN_STATS_INTERVAL_MS) return;
      this.lastStatsAt = now;
      this.host.statsReported(this, msg.stats);
    }
  }

  private onInstanceUpdate(update: InstanceUpdate): void {
    if (update.draining) {
      this.draining = true;
      if (this.registered) this.host.deregisterNow(this);
      this.registered = false;
      return;
    }
    const health = update.health === HealthState.HEALTH_STATE_NOT_SERVING ? 'NOT_SERVING' : 'SERVING';
    if (this.registered && this.instance && this.instance.health !== health) {
      this.instance = { ...this.instance, health };
      this.host.register(this, this.instance);
    }
  }

  /**
   * Sends a snapshot unless this stream already has that version's content. One write at a time:
   * while a sidecar is slow to read (or never reads), newer snapshots replace the one waiting
   * instead of queueing behind it, so a stuck stream holds at most two snapshots, not every one
   * pushed since it stopped reading.
   */
  send(snap: EncodedSnapshot): void {
    if (this.ended || !this.instance) return;
    if (this.writing) {
      this.pending = this.lastSent?.contentHash === snap.contentHash ? undefined : snap;
      return;
    }
    if (this.lastSent && this.lastSent.contentHash === snap.contentHash) return;
    this.write(snap);
  }

  private write(snap: EncodedSnapshot): void {
    this.lastSent = snap;
    this.writing = true;
    this.call.write(snap.bytes, () => {
      this.writing = false;
      const next = this.pending;
      this.pending = undefined;
      if (next && !this.ended) this.send(next);
    });
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.host.closed(this);
  }

  close(): void {
    if (!this.ended) this.call.end();
    this.end();
  }
}
