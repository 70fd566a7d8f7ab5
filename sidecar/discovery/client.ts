/**
 * The sidecar's end of the discovery stream. It says who it is, applies each pushed snapshot
 * (ACK) or rejects it and keeps the last good one (NACK). When the stream breaks it keeps serving
 * with what it has and reconnects, with exponential backoff and full jitter, to the next
 * control-plane replica in its list.
 */
import * as grpc from '@grpc/grpc-js';
import {
  DiscoveryServiceClient,
  HealthState,
  type Instance,
  type ResourceError,
  type StreamConfigRequest,
  type StreamConfigResponse,
  type StatsReport,
} from '../../protos/gen/remora/mesh/v1/discovery.js';
import type { Logger } from '../../lib/log.js';
import { fullJitterBackoff } from '../upstream/backoff.js';

export interface DiscoveryClientOptions {
  readonly controlPlanes: readonly string[];
  readonly instance: Instance;
  readonly register: boolean;
  readonly sidecarVersion: string;
  /** Applies a snapshot; returns the problems that made it unusable (then nothing was applied). */
  readonly apply: (snapshot: StreamConfigResponse) => ResourceError[];
  readonly appliedVersion: () => string;
  readonly log: Logger;
  readonly backoffBaseMs?: number;
  readonly backoffCapMs?: number;
  /** TLS to the control plane's 15012 port; plaintext (15010) when absent. */
  readonly credentials?: grpc.ChannelCredentials;
  /** Golden metrics to report every statsIntervalMs (for the dashboard); none when absent. */
  readonly stats?: () => StatsReport;
  readonly statsIntervalMs?: number;
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.enable_retries': 0,
  // grpc-js's default 64 KiB receive window costs a round trip per 64 KiB of snapshot; a mesh of a
  // thousand instances makes snapshots of ~100 KiB (measured by `remora bench control-plane`).
  'grpc-node.flow_control_window': 4 * 1024 * 1024,
};

export class DiscoveryClient {
  private readonly clients = new Map<string, DiscoveryServiceClient>();
  private call: grpc.ClientDuplexStream<StreamConfigRequest, StreamConfigResponse> | undefined;
  private next: number;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private health = HealthState.HEALTH_STATE_SERVING;
  private draining = false;
  connectedTo: string | undefined;
  /** Snapshots rejected, and when the last was (ms since the epoch), for metrics. */
  nacks = 0;
  lastNackAt = 0;

  constructor(private readonly opts: DiscoveryClientOptions) {
    if (opts.instance.health === HealthState.HEALTH_STATE_NOT_SERVING) this.health = HealthState.HEALTH_STATE_NOT_SERVING;
    // Start at a random replica so sidecars spread over them.
    this.next = Math.floor(Math.random() * opts.controlPlanes.length);
  }

  private statsTimer: NodeJS.Timeout | undefined;

  start(): void {
    if (this.opts.stats && !this.statsTimer) {
      const stats = this.opts.stats;
      this.statsTimer = setInterval(() => {
        const report = stats();
        // Reported while connected; a report made while disconnected is dropped (the window moves on).
        if (this.call && (report.destinations.length > 0 || report.certificateExpiryMs > 0)) this.call.write({ stats: report });
      }, this.opts.statsIntervalMs ?? 5_000);
      this.statsTimer.unref();
    }
    this.connect();
  }

  private client(address: string): DiscoveryServiceClient {
    let c = this.clients.get(address);
    if (!c) {
      c = new DiscoveryServiceClient(address, this.opts.credentials ?? grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
      this.clients.set(address, c);
    }
    return c;
  }

  private connect(): void {
    if (this.stopped) return;
    const address = this.opts.controlPlanes[this.next % this.opts.controlPlanes.length]!;
    this.next++;
    const call = this.client(address).streamConfig();
    this.call = call;
    let gotSnapshot = false;
    call.on('data', (snap: StreamConfigResponse) => {
      if (!gotSnapshot) {
        gotSnapshot = true;
        this.failures = 0;
        this.connectedTo = address;
        this.opts.log.info({ controlPlane: address }, 'discovery stream up');
      }
      this.onSnapshot(call, snap);
    });
    call.on('error', (err: grpc.ServiceError) => this.lost(call, address, err.details || err.message));
    call.on('end', () => this.lost(call, address, 'stream ended'));
    call.write({
      hello: {
        instance: { ...this.opts.instance, health: this.health },
        appliedVersion: this.opts.appliedVersion(),
        sidecarVersion: this.opts.sidecarVersion,
        register: this.opts.register && !this.draining,
      },
    });
    if (this.draining) call.write({ instanceUpdate: { health: this.health, draining: true } });
  }

  private onSnapshot(call: grpc.ClientDuplexStream<StreamConfigRequest, StreamConfigResponse>, snap: StreamConfigResponse): void {
    const errors = this.opts.apply(snap);
    if (errors.length === 0) call.write({ ack: { version: snap.version, nonce: snap.nonce } });
    else {
      this.opts.log.warn({ version: snap.version, errors }, 'config rejected (NACK); keeping the last good config');
      this.nacks++;
      this.lastNackAt = Date.now();
      call.write({ nack: { version: snap.version, nonce: snap.nonce, errors } });
    }
  }

  private lost(call: grpc.ClientDuplexStream<StreamConfigRequest, StreamConfigResponse>, address: string, why: string): void {
    if (this.call !== call) return;
    this.call = undefined;
    this.connectedTo = undefined;
    call.removeAllListeners('data');
    call.on('error', () => {});
    call.cancel();
    if (this.stopped) return;
    this.failures++;
    const delay = fullJitterBackoff(this.failures, this.opts.backoffBaseMs ?? 200, this.opts.backoffCapMs ?? 10_000);
    this.opts.log.warn({ controlPlane: address, why, retryInMs: delay }, 'discovery stream lost; serving with the last config');
    this.timer = setTimeout(() => this.connect(), delay);
  }

  setHealth(serving: boolean): void {
    const health = serving ? HealthState.HEALTH_STATE_SERVING : HealthState.HEALTH_STATE_NOT_SERVING;
    if (health === this.health) return;
    this.health = health;
    this.call?.write({ instanceUpdate: { health, draining: this.draining } });
  }

  /** Asks the control plane to deregister this instance now, ahead of draining. */
  drain(): void {
    this.draining = true;
    this.call?.write({ instanceUpdate: { health: this.health, draining: true } });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    clearInterval(this.statsTimer);
    const call = this.call;
    this.call = undefined;
    if (call) {
      call.on('error', () => {});
      call.end();
    }
    for (const c of this.clients.values()) c.close();
  }
}
