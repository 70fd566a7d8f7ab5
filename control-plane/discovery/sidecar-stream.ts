/**
 * One connected sidecar: its Hello (identity and registration), the snapshots sent to it, and its
 * ACKs and NACKs. Malformed messages end this stream with INVALID_ARGUMENT and touch nothing else.
 */
import * as grpc from '@grpc/grpc-js';
import type { Hello, InstanceUpdate, StatsReport, StreamConfigRequest } from '../../protos/gen/remora/mesh/v1/discovery.js';
import { HealthState } from '../../protos/gen/remora/mesh/v1/discovery.js';
import { Checker, DNS_LABEL } from '../../lib/validate.js';
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

export function validateHello(hello: Hello): { instance: InstanceRecord; problems: string[] } {
  const c = new Checker();
  const i = hello.instance;
  if (!i) return { instance: undefined as never, problems: ['hello.instance: required'] };
  const service = c.string(i.service, 'hello.instance.service', DNS_LABEL, 'lower-case DNS label') ?? '';
  const namespace = i.namespace === '' ? 'default' : (c.string(i.namespace, 'hello.instance.namespace', DNS_LABEL, 'lower-case DNS label') ?? '');
  const instanceId = c.string(i.instanceId, 'hello.instance.instance_id', /^[-._a-zA-Z0-9]{1,253}$/, 'letters, digits, - . _') ?? '';
  if (hello.register) {
    c.string(i.address, 'hello.instance.address');
    c.int(i.port, 'hello.instance.port', 1, 65535);
  }
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

export class SidecarStream {
  instance: InstanceRecord | undefined;
  registered = false;
  draining = false;
  private lastSent: EncodedSnapshot | undefined;
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
      if (msg.ack.nonce !== this.lastSent?.nonce) return; // a stale ACK: a newer push is on its way
      this.status = { ...this.status!, appliedVersion: msg.ack.version };
      this.host.statusChanged(this.status);
    } else if (msg.nack) {
      const errors = msg.nack.errors.map((e) => (e.resource ? `${e.resource}: ${e.message}` : e.message));
      this.status = { ...this.status!, lastNack: { version: msg.nack.version, at: new Date().toISOString(), errors } };
      this.host.statusChanged(this.status);
      this.host.log('warn', { sidecar: this.key, version: msg.nack.version, errors }, 'sidecar rejected config (NACK)');
      this.host.nacked(this, errors);
    } else if (msg.instanceUpdate) {
      this.onInstanceUpdate(msg.instanceUpdate);
    } else if (msg.stats) {
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

  /** Sends a snapshot unless this stream already has that version's content. */
  send(snap: EncodedSnapshot): void {
    if (this.ended || !this.instance) return;
    if (this.lastSent && this.lastSent.contentHash === snap.contentHash) return;
    this.lastSent = snap;
    this.call.write(snap.bytes);
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
