/**
 * N simulated sidecars in one process: each holds a discovery stream (grpc-js, streams multiplexed
 * over a few channels), says hello with its own instance id, ACKs every snapshot at once, and
 * records when each snapshot version arrived. Nothing here reconnects: a broken stream is an
 * error the bench reports, not something to paper over.
 */
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import {
  DiscoveryServiceService,
  HealthState,
  StreamConfigRequest,
  StreamConfigResponse,
  type Instance,
} from '../../protos/gen/remora/mesh/v1/discovery.js';
import { readSnapshotHeader, type SnapshotHeader } from './wire.js';

/** The simulated sidecars' service name (and, with --register, the cluster they form). */
export const FLEET_SERVICE = 'bench-fleet';
/** Registered fleet instances get ports from here up; nothing listens, nothing dials them. */
const FLEET_BASE_PORT = 10_000;
export const MAX_SIDECARS = 50_000;

export interface Receipt {
  readonly version: number;
  /** performance.now() when the stream delivered the snapshot. */
  readonly at: number;
  readonly bytes: number;
}

export interface FleetSettings {
  readonly address: string;
  readonly sidecars: number;
  readonly streamsPerChannel: number;
  readonly register: boolean;
  /** HTTP/2 receive window per stream and connection in bytes; 0 keeps grpc-js's 64 KiB default. */
  readonly flowControlWindow: number;
  /** Sidecar 0's snapshots, fully decoded: lets the bench read the content once, not N times. */
  readonly observe?: (snapshot: StreamConfigResponse, version: number) => void;
}

/** Requests go out pre-encoded (see ackBytes), snapshots come in as bytes (see wire.ts). */
type Call = grpc.ClientDuplexStream<Buffer, Buffer>;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // grpc-js shares one connection between clients with equal options through a global pool;
  // a local pool per client makes each channel its own HTTP/2 connection, as separate sidecars have.
  'grpc.use_local_subchannel_pool': 1,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.enable_retries': 0,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
};

const encode = (req: StreamConfigRequest): Buffer => Buffer.from(StreamConfigRequest.encode(req).finish());
const asIs = (b: Buffer): Buffer => b;

export function fleetInstance(i: number): Instance {
  return {
    service: FLEET_SERVICE,
    namespace: 'default',
    instanceId: `sc-${i}`,
    address: '127.0.0.1',
    port: FLEET_BASE_PORT + i,
    zone: 'bench',
    labels: {},
    serviceAccount: 'bench',
    health: HealthState.HEALTH_STATE_SERVING,
  };
}

/** The snapshot's version as a number (it is an etcd revision), or undefined if unreadable. */
function parseHeader(bytes: Buffer): { version: number; raw: SnapshotHeader } | undefined {
  try {
    const raw = readSnapshotHeader(bytes);
    const version = Number(raw.version);
    return raw.version !== '' && Number.isSafeInteger(version) ? { version, raw } : undefined;
  } catch {
    return undefined;
  }
}

interface Waiter {
  readonly target: number;
  remaining: number;
  readonly done: (missing: number) => void;
}

export class Fleet {
  /** Newest version each sidecar has received; -1 before its first snapshot. */
  readonly latest: Float64Array;
  readonly errors: Record<string, number> = {};
  private lists: Receipt[][];
  private readonly clients: grpc.Client[] = [];
  private readonly calls: Call[] = [];
  private readonly failed: Uint8Array;
  private waiter: Waiter | undefined;
  private closing = false;
  /**
   * The last ACK encoded. Every sidecar gets the same snapshot (same version and nonce), so its ACK
   * is the same bytes: encoding it once per push, not once per sidecar, keeps the fleet cheap.
   */
  private ack: { nonce: string; bytes: Buffer } | undefined;

  constructor(private readonly settings: FleetSettings) {
    this.latest = new Float64Array(settings.sidecars).fill(-1);
    this.failed = new Uint8Array(settings.sidecars);
    this.lists = Array.from({ length: settings.sidecars }, () => []);
  }

  get channels(): number {
    return this.clients.length;
  }

  get errorCount(): number {
    return Object.values(this.errors).reduce((n, v) => n + v, 0);
  }

  countError(kind: string): void {
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  }

  private channelOptions(): grpc.ChannelOptions {
    const w = this.settings.flowControlWindow;
    // A snapshot bigger than the window needs a WINDOW_UPDATE round trip before it completes.
    return w > 0 ? { ...CHANNEL_OPTIONS, 'grpc-node.flow_control_window': w } : CHANNEL_OPTIONS;
  }

  /** Opens every stream and sends its hello; snapshots are recorded as they arrive. */
  open(): void {
    const { sidecars, streamsPerChannel, address, register } = this.settings;
    for (let i = 0; i < sidecars; i++) {
      if (i % streamsPerChannel === 0) this.clients.push(new grpc.Client(address, grpc.credentials.createInsecure(), this.channelOptions()));
      const client = this.clients[this.clients.length - 1]!;
      const call = client.makeBidiStreamRequest<Buffer, Buffer>(DiscoveryServiceService.streamConfig.path, asIs, asIs);
      this.calls.push(call);
      call.on('data', (bytes: Buffer) => this.onSnapshot(i, call, bytes));
      call.on('error', (err: grpc.ServiceError) => this.onFailure(i, `grpc-${err.code ?? 'unknown'}`));
      call.on('end', () => this.onFailure(i, 'ended'));
      call.write(encode({ hello: { instance: fleetInstance(i), appliedVersion: '', sidecarVersion: 'remora-bench', register } }));
    }
  }

  private onSnapshot(i: number, call: Call, bytes: Buffer): void {
    const at = performance.now();
    const header = parseHeader(bytes);
    if (!header) {
      this.countError('bad-version');
      return;
    }
    const { version } = header;
    // ACK first, as a sidecar that applied the config would; bookkeeping after.
    call.write(this.ackBytes(header.raw));
    this.lists[i]!.push({ version, at, bytes: bytes.length });
    const before = this.latest[i]!;
    if (version > before) this.latest[i] = version;
    const w = this.waiter;
    if (w && before < w.target && version >= w.target && --w.remaining === 0) w.done(0);
    if (i === 0 && this.settings.observe) this.settings.observe(StreamConfigResponse.decode(bytes), version);
  }

  private ackBytes(h: SnapshotHeader): Buffer {
    if (this.ack?.nonce !== h.nonce) this.ack = { nonce: h.nonce, bytes: encode({ ack: { version: h.version, nonce: h.nonce } }) };
    return this.ack.bytes;
  }

  private onFailure(i: number, kind: string): void {
    // A stream reports a failure as 'error' and may also end: count it once.
    if (this.closing || this.failed[i]) return;
    this.failed[i] = 1;
    this.countError(kind);
  }

  /** Forgets the receipts so far: the next change is measured from a clean slate. */
  reset(): void {
    this.lists = Array.from({ length: this.settings.sidecars }, () => []);
  }

  receipts(i: number): readonly Receipt[] {
    return this.lists[i]!;
  }

  /** The first snapshot sidecar i received (since reset) at or above `version`. */
  firstAtOrAbove(i: number, version: number): Receipt | undefined {
    return this.lists[i]!.find((r) => r.version >= version);
  }

  /** Resolves with how many sidecars are still below `version` when all reached it or time ran out. */
  until(version: number, timeoutMs: number): Promise<number> {
    let remaining = 0;
    for (const v of this.latest) if (v < version) remaining++;
    if (remaining === 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const w = this.waiter;
        this.waiter = undefined;
        resolve(w?.remaining ?? 0);
      }, timeoutMs);
      this.waiter = {
        target: version,
        remaining,
        done: (missing) => {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve(missing);
        },
      };
    });
  }

  close(): void {
    this.closing = true;
    for (const call of this.calls) call.cancel();
    for (const client of this.clients) client.close();
  }
}
