/**
 * gRPC load generator on node:http2's core API. It builds the request frame once and reuses it,
 * never decodes protobuf, and checks only what proves a call succeeded (grpc-status 0 and the echoed
 * length), so the generator stays cheap next to the thing being measured.
 *
 * Workloads: `unary` (one message each way), `server-stream` (one request, `streamMessages` copies
 * back; latency is to the LAST message, i.e. the whole call) and `bidi` (loadgen-bidi.ts: long-lived
 * calls, one ping-pong round trip at a time).
 *
 * closed loop: connections × streams callers, each sending its next request when the last completes.
 * open loop: a fixed arrival rate; latency counts from the INTENDED send time so a stall in the
 * system under test shows up in the percentiles instead of silently delaying the senders
 * (coordinated omission). In-flight is capped; arrivals over the cap are counted as drops.
 */
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { STREAM_COUNT_HEADER, type Workload } from './echo-service.js';
import type { LatencySummary } from './histogram.js';
import { startBidi } from './loadgen-bidi.js';
import { Connection, failureKind, Meter, streamErrorCode, type MeterHooks } from './loadgen-meter.js';

export type LoadMode = 'closed' | 'open';

export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  /** Sent as :authority; the sidecar routes on it. */
  readonly authority: string;
  readonly path: string;
  readonly workload: Workload;
  /** server-stream: messages the server sends back per call. */
  readonly streamMessages: number;
  readonly connections: number;
  /** Closed loop (and bidi): concurrent streams per connection. */
  readonly streams: number;
  readonly mode: LoadMode;
  /** Open loop: arrivals per second over all connections. */
  readonly rps: number;
  /** Open loop: cap on requests in flight; arrivals beyond it are dropped and counted. */
  readonly maxInflight: number;
  readonly warmupS: number;
  readonly durationS: number;
  /** Stop the measured window after this many completed operations (0: duration only). */
  readonly requests: number;
  readonly payloadBytes: number;
  /** Per-operation deadline; one still open after it is cancelled and counted as `timeout`. */
  readonly timeoutMs: number;
}

export type LoadHooks = MeterHooks;

/** What one operation is: the unit of `ops`, `opsPerS` and CPU per op. */
export type OpUnit = 'call' | 'message' | 'round-trip';

export const OP_UNIT: Readonly<Record<Workload, OpUnit>> = { unary: 'call', 'server-stream': 'message', bidi: 'round-trip' };

export interface LoadResult {
  readonly workload: Workload;
  readonly unit: OpUnit;
  /**
   * Calls (bidi: pings) started inside the measured window. In an open loop, sent + drops is the
   * offered rate × window whatever the system under test does: the loop's own check.
   */
  readonly sent: number;
  /** Calls (bidi: round trips) completed, ok or not, inside the measured window. */
  readonly completed: number;
  readonly ok: number;
  /** Successful calls (bidi: round trips) per second of measured window. */
  readonly rps: number;
  /**
   * Operations in the window, ok or not; CPU per op divides by this. server-stream: response
   * messages received inside the window by any call (a long call's messages flow all through it).
   */
  readonly ops: number;
  /** Successful operations per second; server-stream: messages received per second. */
  readonly opsPerS: number;
  readonly windowS: number;
  /** Failed calls by kind: `grpc-<status>`, `timeout`, `rst-<code>`, `http-<status>`, `no-status`, `bad-length`, `<error code>`. */
  readonly errors: Readonly<Record<string, number>>;
  readonly errorCount: number;
  readonly drops: number;
  readonly warmupCompleted: number;
  /** Calls still open when the generator gave up draining; cancelled, not counted anywhere else. */
  readonly abandoned: number;
  readonly sessionErrors: number;
  /** Latency of successful operations only, so fast failures cannot flatter the percentiles. */
  readonly latency: LatencySummary;
  readonly histogram: string;
  /** The generator's own CPU (user + system) over the window, and per operation. */
  readonly cpuMicros: number;
  readonly cpuUsPerOp: number;
}

/** A running workload, as runLoad drives it: deadlines, drain and cancel. */
export interface Driver {
  /** Operations started and not finished. */
  active(): number;
  /** Cancels whatever has waited longer than the deadline. */
  sweep(now: number): void;
  cancelAll(): void;
}

export interface DriverContext {
  readonly opts: LoadOptions;
  readonly meter: Meter;
  readonly conns: readonly Connection[];
  readonly frame: Buffer;
  readonly headers: http2.OutgoingHttpHeaders;
}

const { NGHTTP2_CANCEL } = http2.constants;
const SWEEP_MS = 50;
const OPEN_TICK_MS = 1;
const DRAIN_MAX_MS = 5000;
export const RECONNECT_BACKOFF_MS = 10;

/** A gRPC length-prefixed message: 1 byte flags (uncompressed), 4 bytes big-endian length, payload. */
export function grpcFrame(payloadBytes: number): Buffer {
  const frame = Buffer.alloc(5 + payloadBytes);
  frame.writeUInt32BE(payloadBytes, 1);
  for (let i = 0; i < payloadBytes; i++) frame[5 + i] = i & 0xff;
  return frame;
}

interface Call {
  readonly stream: http2.ClientHttp2Stream;
  readonly sentAt: number;
  timedOut: boolean;
}

/** Unary and server-streaming calls: one request frame, one (server-stream: `streamMessages`) echoed frames, trailers. */
function startCalls(ctx: DriverContext): Driver {
  const { opts, meter, conns, frame, headers } = ctx;
  const streaming = opts.workload === 'server-stream';
  const expectBytes = frame.length * (streaming ? opts.streamMessages : 1);
  const inflight = new Set<Call>();

  /** Classifies a finished call; returns false for transport-level failures (worth a backoff). */
  const finish = (call: Call, status: string | undefined, httpStatus: number, errCode: string | undefined, bytes: number, intendedAt: number): boolean => {
    inflight.delete(call);
    if (status === '0' && bytes === expectBytes && !call.timedOut) {
      meter.recordOk(performance.now() - intendedAt);
    } else {
      meter.recordError(call.timedOut ? 'timeout' : status === '0' ? 'bad-length' : failureKind(status, httpStatus, errCode, call.stream.rstCode));
    }
    return status !== undefined || httpStatus !== 0;
  };

  /** Sends one call; `done(transportOk)` runs once it has finished, never synchronously. */
  const send = (conn: Connection, intendedAt: number, done: (transportOk: boolean) => void): void => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = conn.get().request(headers, { endStream: false });
    } catch (err) {
      meter.recordSent();
      meter.recordError((err as NodeJS.ErrnoException).code ?? 'request-throw');
      setImmediate(done, false);
      return;
    }
    const call: Call = { stream, sentAt: performance.now(), timedOut: false };
    inflight.add(call);
    meter.recordSent();
    let status: string | undefined;
    let httpStatus = 0;
    let errCode: string | undefined;
    let bytes = 0;
    stream.on('response', (h) => {
      httpStatus = Number(h[':status'] ?? 0);
      const g = h['grpc-status'];
      if (g !== undefined) status = String(g); // trailers-only response
    });
    stream.on('trailers', (h) => {
      const g = h['grpc-status'];
      if (g !== undefined) status = String(g);
    });
    stream.on('data', streaming
      ? (chunk: Buffer) => {
          const whole = Math.floor(bytes / frame.length);
          bytes += chunk.length;
          meter.recordMessages(Math.floor(bytes / frame.length) - whole);
        }
      : (chunk: Buffer) => { bytes += chunk.length; });
    stream.on('error', (err: NodeJS.ErrnoException) => { errCode = streamErrorCode(err); });
    stream.on('close', () => done(finish(call, status, httpStatus, errCode, bytes, intendedAt)));
    stream.end(frame);
  };

  if (opts.mode === 'closed') {
    const caller = (conn: Connection): void => {
      const loop = (transportOk: boolean): void => {
        if (meter.stopping) return;
        if (transportOk) send(conn, performance.now(), loop);
        else setTimeout(() => { if (!meter.stopping) send(conn, performance.now(), loop); }, RECONNECT_BACKOFF_MS);
      };
      loop(true);
    };
    for (const conn of conns) for (let i = 0; i < opts.streams; i++) caller(conn);
  } else {
    const t0 = performance.now();
    const intervalMs = 1000 / opts.rps;
    let next = 0;
    const noop = (): void => {};
    const tick = (): void => {
      if (meter.stopping) return;
      const now = performance.now();
      const due = Math.floor((now - t0) / intervalMs) + 1;
      while (next < due) {
        if (inflight.size >= opts.maxInflight) {
          meter.recordDrops(due - next);
          next = due;
          break;
        }
        send(conns[next % conns.length]!, t0 + next * intervalMs, noop);
        next++;
      }
      // Sleep until the next arrival is due rather than polling: idle wake-ups would be billed to
      // the generator's CPU per request. Late timers are fine: latency counts from intended time.
      setTimeout(tick, Math.max(OPEN_TICK_MS, t0 + next * intervalMs - performance.now()));
    };
    tick();
  }

  return {
    active: () => inflight.size,
    sweep(now) {
      for (const call of inflight) {
        if (!call.timedOut && now - call.sentAt > opts.timeoutMs) {
          call.timedOut = true;
          call.stream.close(NGHTTP2_CANCEL);
        }
      }
    },
    cancelAll() {
      for (const call of inflight) call.stream.close(NGHTTP2_CANCEL);
    },
  };
}

export async function runLoad(opts: LoadOptions, hooks: LoadHooks = {}): Promise<LoadResult> {
  if (opts.workload === 'bidi' && opts.mode === 'open') throw new Error('bidi runs closed loop only (each ping waits for its pong)');
  const frame = grpcFrame(opts.payloadBytes);
  const headers: http2.OutgoingHttpHeaders = {
    ':method': 'POST',
    ':path': opts.path,
    ':authority': opts.authority,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...(opts.workload === 'server-stream' ? { [STREAM_COUNT_HEADER]: String(opts.streamMessages) } : {}),
  };
  const conns = Array.from({ length: opts.connections }, () => new Connection(`http://${opts.host}:${opts.port}`));
  const meter = new Meter(opts, hooks);
  meter.begin();
  const ctx: DriverContext = { opts, meter, conns, frame, headers };
  const driver = opts.workload === 'bidi' ? startBidi(ctx) : startCalls(ctx);
  const sweeper = setInterval(() => driver.sweep(performance.now()), SWEEP_MS);

  await meter.stopped;
  const drainDeadline = performance.now() + Math.min(opts.timeoutMs + SWEEP_MS * 2, DRAIN_MAX_MS);
  while (driver.active() > 0 && performance.now() < drainDeadline) await new Promise((r) => setTimeout(r, 10));
  const abandoned = driver.active();
  driver.cancelAll();
  clearInterval(sweeper);
  for (const conn of conns) conn.close();

  const t = meter.totals();
  const streaming = opts.workload === 'server-stream';
  const ops = streaming ? t.streamedMessages : t.completed;
  return {
    workload: opts.workload,
    unit: OP_UNIT[opts.workload],
    sent: t.sent,
    completed: t.completed,
    ok: t.ok,
    rps: t.windowS > 0 ? t.ok / t.windowS : 0,
    ops,
    opsPerS: t.windowS <= 0 ? 0 : (streaming ? t.streamedMessages : t.ok) / t.windowS,
    windowS: t.windowS,
    errors: t.errors,
    errorCount: t.errorCount,
    drops: t.drops,
    warmupCompleted: t.warmupCompleted,
    abandoned,
    sessionErrors: conns.reduce((n, c) => n + c.errors, 0),
    latency: t.latency,
    histogram: t.histogram,
    cpuMicros: t.cpuMicros,
    cpuUsPerOp: ops > 0 ? t.cpuMicros / ops : 0,
  };
}
