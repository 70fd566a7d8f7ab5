/**
 * gRPC load generator on node:http2's core API. It builds the request frame once and reuses it,
 * never decodes protobuf, and checks only what proves a call succeeded (grpc-status 0 and the echoed
 * length), so the generator stays cheap next to the thing being measured.
 *
 * closed loop: connections × streams callers, each sending its next request when the last completes.
 * open loop: a fixed arrival rate; latency counts from the INTENDED send time so a stall in the
 * system under test shows up in the percentiles instead of silently delaying the senders
 * (coordinated omission). In-flight is capped; arrivals over the cap are counted as drops.
 */
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { LatencyHistogram, type LatencySummary } from './histogram.js';

export type LoadMode = 'closed' | 'open';

export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  /** Sent as :authority; the sidecar routes on it. */
  readonly authority: string;
  readonly path: string;
  readonly connections: number;
  /** Closed loop: concurrent streams per connection. */
  readonly streams: number;
  readonly mode: LoadMode;
  /** Open loop: arrivals per second over all connections. */
  readonly rps: number;
  /** Open loop: cap on requests in flight; arrivals beyond it are dropped and counted. */
  readonly maxInflight: number;
  readonly warmupS: number;
  readonly durationS: number;
  /** Stop the measured window after this many completed requests (0: duration only). */
  readonly requests: number;
  readonly payloadBytes: number;
  /** Per-request deadline; a call still open after it is cancelled and counted as `timeout`. */
  readonly timeoutMs: number;
}

export interface LoadHooks {
  onMeasureStart?(): void;
  onMeasureEnd?(): void;
}

export interface LoadResult {
  /** Calls completed (ok or not) inside the measured window. */
  readonly completed: number;
  readonly ok: number;
  /** Successful calls per second of measured window. */
  readonly rps: number;
  readonly windowS: number;
  /** Failed calls by kind: `grpc-<status>`, `timeout`, `rst-<code>`, `http-<status>`, `no-status`, `bad-length`, `<error code>`. */
  readonly errors: Readonly<Record<string, number>>;
  readonly errorCount: number;
  readonly drops: number;
  readonly warmupCompleted: number;
  /** Calls still open when the generator gave up draining; cancelled, not counted anywhere else. */
  readonly abandoned: number;
  readonly sessionErrors: number;
  /** Latency of successful calls only, so fast failures cannot flatter the percentiles. */
  readonly latency: LatencySummary;
  readonly histogram: string;
  /** The generator's own CPU (user + system) over the window, and per completed call. */
  readonly cpuMicros: number;
  readonly cpuUsPerRequest: number;
}

const { NGHTTP2_CANCEL } = http2.constants;
const SWEEP_MS = 50;
const OPEN_TICK_MS = 1;
const DRAIN_MAX_MS = 5000;
const RECONNECT_BACKOFF_MS = 10;
/** Windows well above the default 64 KiB, so large payloads measure the peer, not our flow control. */
const WINDOW_BYTES = 4 * 1024 * 1024;

/** A gRPC length-prefixed message: 1 byte flags (uncompressed), 4 bytes big-endian length, payload. */
export function grpcFrame(payloadBytes: number): Buffer {
  const frame = Buffer.alloc(5 + payloadBytes);
  frame.writeUInt32BE(payloadBytes, 1);
  for (let i = 0; i < payloadBytes; i++) frame[5 + i] = i & 0xff;
  return frame;
}

class Connection {
  private session: http2.ClientHttp2Session | undefined;
  errors = 0;

  constructor(private readonly url: string) {}

  get(): http2.ClientHttp2Session {
    const current = this.session;
    if (current && !current.closed && !current.destroyed) return current;
    const s = http2.connect(this.url, { settings: { initialWindowSize: WINDOW_BYTES } });
    s.on('connect', () => s.setLocalWindowSize(WINDOW_BYTES));
    // Count and drop: each stream on the session reports its own failure.
    s.on('error', () => { this.errors++; });
    s.on('close', () => { if (this.session === s) this.session = undefined; });
    s.on('goaway', () => { if (this.session === s) this.session = undefined; });
    this.session = s;
    return s;
  }

  close(): void {
    const s = this.session;
    this.session = undefined;
    if (!s) return;
    s.close();
    setTimeout(() => s.destroy(), 1000).unref();
  }
}

interface Call {
  readonly stream: http2.ClientHttp2Stream;
  readonly sentAt: number;
  timedOut: boolean;
}

export async function runLoad(opts: LoadOptions, hooks: LoadHooks = {}): Promise<LoadResult> {
  const body = grpcFrame(opts.payloadBytes);
  const headers: http2.OutgoingHttpHeaders = {
    ':method': 'POST',
    ':path': opts.path,
    ':authority': opts.authority,
    'content-type': 'application/grpc',
    te: 'trailers',
  };
  const conns = Array.from({ length: opts.connections }, () => new Connection(`http://${opts.host}:${opts.port}`));
  const hist = new LatencyHistogram();
  const errors: Record<string, number> = {};
  const inflight = new Set<Call>();
  let measuring = false;
  let stopping = false;
  let completed = 0;
  let ok = 0;
  let errorCount = 0;
  let drops = 0;
  let warmupCompleted = 0;
  let windowStart = 0;
  let windowEnd = 0;
  let cpuStart: NodeJS.CpuUsage = process.cpuUsage();
  let cpuWindow = 0;
  let endTimer: NodeJS.Timeout | undefined;
  let stopped!: () => void;
  const stoppedP = new Promise<void>((resolve) => { stopped = resolve; });

  const startMeasuring = (): void => {
    if (stopping) return;
    cpuStart = process.cpuUsage();
    windowStart = performance.now();
    measuring = true;
    hooks.onMeasureStart?.();
    endTimer = setTimeout(stopMeasuring, opts.durationS * 1000);
  };
  function stopMeasuring(): void {
    if (stopping) return;
    stopping = true;
    if (endTimer) clearTimeout(endTimer);
    stopped();
    if (!measuring) return; // stopped before warm-up ended: nothing was measured
    measuring = false;
    windowEnd = performance.now();
    const cpu = process.cpuUsage(cpuStart);
    cpuWindow = cpu.user + cpu.system;
    hooks.onMeasureEnd?.();
  }

  /** Classifies a finished call; returns false for transport-level failures (worth a backoff). */
  const finish = (call: Call, status: string | undefined, httpStatus: number, errCode: string | undefined, bytes: number, intendedAt: number): boolean => {
    inflight.delete(call);
    let kind: string | undefined;
    if (call.timedOut) kind = 'timeout';
    else if (status === '0' && bytes !== body.length) kind = 'bad-length';
    else if (status !== undefined) kind = status === '0' ? undefined : `grpc-${status}`;
    else if (httpStatus !== 200 && httpStatus !== 0) kind = `http-${httpStatus}`;
    else if (errCode) kind = errCode;
    else if (call.stream.rstCode) kind = `rst-${call.stream.rstCode}`;
    else kind = 'no-status';
    if (measuring) {
      completed++;
      if (kind === undefined) {
        ok++;
        hist.recordMillis(performance.now() - intendedAt);
      } else {
        errorCount++;
        errors[kind] = (errors[kind] ?? 0) + 1;
      }
      if (opts.requests > 0 && completed >= opts.requests) stopMeasuring();
    } else if (!stopping) {
      warmupCompleted++;
    }
    return status !== undefined || httpStatus !== 0;
  };

  /** Sends one call; `done(transportOk)` runs once it has finished, never synchronously. */
  const send = (conn: Connection, intendedAt: number, done: (transportOk: boolean) => void): void => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = conn.get().request(headers, { endStream: false });
    } catch (err) {
      if (measuring) {
        completed++;
        errorCount++;
        const kind = (err as NodeJS.ErrnoException).code ?? 'request-throw';
        errors[kind] = (errors[kind] ?? 0) + 1;
      }
      setImmediate(done, false);
      return;
    }
    const call: Call = { stream, sentAt: performance.now(), timedOut: false };
    inflight.add(call);
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
    stream.on('data', (chunk: Buffer) => { bytes += chunk.length; });
    stream.on('error', (err: NodeJS.ErrnoException) => {
      // A stream cancelled because its session failed names the session's error (e.g. ECONNREFUSED) as cause.
      const cause = err.cause as NodeJS.ErrnoException | undefined;
      errCode = cause?.code ?? err.code ?? 'stream-error';
    });
    stream.on('close', () => done(finish(call, status, httpStatus, errCode, bytes, intendedAt)));
    stream.end(body);
  };

  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const call of inflight) {
      if (!call.timedOut && now - call.sentAt > opts.timeoutMs) {
        call.timedOut = true;
        call.stream.close(NGHTTP2_CANCEL);
      }
    }
  }, SWEEP_MS);

  const t0 = performance.now();
  if (opts.warmupS > 0) setTimeout(startMeasuring, opts.warmupS * 1000);
  else startMeasuring();
  // A hard stop in case the measured window never starts or ends (e.g. a wedged event loop).
  const hardStop = setTimeout(stopMeasuring, (opts.warmupS + opts.durationS) * 1000 + 1000);

  if (opts.mode === 'closed') {
    const caller = (conn: Connection): void => {
      const loop = (transportOk: boolean): void => {
        if (stopping) return;
        if (transportOk) send(conn, performance.now(), loop);
        else setTimeout(() => { if (!stopping) send(conn, performance.now(), loop); }, RECONNECT_BACKOFF_MS);
      };
      loop(true);
    };
    for (const conn of conns) for (let i = 0; i < opts.streams; i++) caller(conn);
  } else {
    const intervalMs = 1000 / opts.rps;
    let next = 0;
    const noop = (): void => {};
    const tick = (): void => {
      if (stopping) return;
      const now = performance.now();
      const due = Math.floor((now - t0) / intervalMs) + 1;
      while (next < due) {
        if (inflight.size >= opts.maxInflight) {
          if (measuring) drops += due - next;
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

  await stoppedP;
  const drainDeadline = performance.now() + Math.min(opts.timeoutMs + SWEEP_MS * 2, DRAIN_MAX_MS);
  while (inflight.size > 0 && performance.now() < drainDeadline) await new Promise((r) => setTimeout(r, 10));
  const abandoned = inflight.size;
  for (const call of inflight) call.stream.close(NGHTTP2_CANCEL);
  clearInterval(sweeper);
  clearTimeout(hardStop);
  for (const conn of conns) conn.close();

  const windowS = windowEnd > windowStart ? (windowEnd - windowStart) / 1000 : 0;
  return {
    completed,
    ok,
    rps: windowS > 0 ? ok / windowS : 0,
    windowS,
    errors,
    errorCount,
    drops,
    warmupCompleted,
    abandoned,
    sessionErrors: conns.reduce((n, c) => n + c.errors, 0),
    latency: hist.summary(),
    histogram: hist.encode(),
    cpuMicros: cpuWindow,
    cpuUsPerRequest: completed > 0 ? cpuWindow / completed : 0,
  };
}
