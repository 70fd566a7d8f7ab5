/**
 * The parts every workload of the load generator shares: the measured window (warm-up, duration,
 * request cap, the generator's own CPU over exactly that window), the tally of outcomes, and the
 * HTTP/2 connections with their reconnect rule.
 */
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { LatencyHistogram, type LatencySummary } from './histogram.js';

/** Windows well above the default 64 KiB, so large payloads measure the peer, not our flow control. */
const WINDOW_BYTES = 4 * 1024 * 1024;

export interface WindowOptions {
  readonly warmupS: number;
  readonly durationS: number;
  /** End the window after this many completed operations (0: duration only). */
  readonly requests: number;
}

export interface MeterHooks {
  onMeasureStart?(): void;
  onMeasureEnd?(): void;
}

export interface MeterTotals {
  readonly sent: number;
  readonly completed: number;
  readonly ok: number;
  /** Response messages received inside the window, by any call (counted for streams only). */
  readonly streamedMessages: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly errorCount: number;
  readonly drops: number;
  readonly warmupCompleted: number;
  readonly windowS: number;
  readonly cpuMicros: number;
  readonly latency: LatencySummary;
  readonly histogram: string;
}

/**
 * Counts only what happens inside the measured window: operations finished (a unary or
 * server-streaming call, a bidi round trip) and, for streams, response messages received, since a
 * long stream's messages flow throughout the window whether or not its call ends in it.
 */
export class Meter {
  private measuring = false;
  private stoppingNow = false;
  private sent = 0;
  private completed = 0;
  private ok = 0;
  private streamedMessages = 0;
  private errorCount = 0;
  private readonly errors: Record<string, number> = {};
  private drops = 0;
  private warmupCompleted = 0;
  private windowStart = 0;
  private windowEnd = 0;
  private cpuStart: NodeJS.CpuUsage = process.cpuUsage();
  private cpuWindow = 0;
  private endTimer: NodeJS.Timeout | undefined;
  private hardStop: NodeJS.Timeout | undefined;
  private readonly hist = new LatencyHistogram();
  private resolveStopped!: () => void;
  /** Resolves when the window has ended (or the run was stopped before it began). */
  readonly stopped = new Promise<void>((resolve) => { this.resolveStopped = resolve; });

  constructor(private readonly opts: WindowOptions, private readonly hooks: MeterHooks = {}) {}

  get stopping(): boolean {
    return this.stoppingNow;
  }

  get isMeasuring(): boolean {
    return this.measuring;
  }

  /** Starts the warm-up clock; the window opens when it runs out. */
  begin(): void {
    if (this.opts.warmupS > 0) setTimeout(() => this.startMeasuring(), this.opts.warmupS * 1000);
    else this.startMeasuring();
    // In case the window never opens or ends on time (a wedged event loop, say).
    this.hardStop = setTimeout(() => this.stop(), (this.opts.warmupS + this.opts.durationS) * 1000 + 1000);
  }

  private startMeasuring(): void {
    if (this.stoppingNow) return;
    this.cpuStart = process.cpuUsage();
    this.windowStart = performance.now();
    this.measuring = true;
    this.hooks.onMeasureStart?.();
    this.endTimer = setTimeout(() => this.stop(), this.opts.durationS * 1000);
  }

  stop(): void {
    if (this.stoppingNow) return;
    this.stoppingNow = true;
    if (this.endTimer) clearTimeout(this.endTimer);
    if (this.hardStop) clearTimeout(this.hardStop);
    this.resolveStopped();
    if (!this.measuring) return; // stopped before warm-up ended: nothing was measured
    this.measuring = false;
    this.windowEnd = performance.now();
    const cpu = process.cpuUsage(this.cpuStart);
    this.cpuWindow = cpu.user + cpu.system;
    this.hooks.onMeasureEnd?.();
  }

  /** An operation started (a call sent, a ping written); counted inside the window only. */
  recordSent(): void {
    if (this.measuring) this.sent++;
  }

  recordOk(latencyMs: number): void {
    if (this.measuring) {
      this.completed++;
      this.ok++;
      this.hist.recordMillis(latencyMs);
      this.checkCap();
    } else if (!this.stoppingNow) {
      this.warmupCompleted++;
    }
  }

  recordError(kind: string): void {
    if (this.measuring) {
      this.completed++;
      this.errorCount++;
      this.errors[kind] = (this.errors[kind] ?? 0) + 1;
      this.checkCap();
    } else if (!this.stoppingNow) {
      this.warmupCompleted++;
    }
  }

  recordMessages(n: number): void {
    if (this.measuring) this.streamedMessages += n;
  }

  recordDrops(n: number): void {
    if (this.measuring) this.drops += n;
  }

  private checkCap(): void {
    if (this.opts.requests > 0 && this.completed >= this.opts.requests) this.stop();
  }

  totals(): MeterTotals {
    return {
      sent: this.sent,
      completed: this.completed,
      ok: this.ok,
      streamedMessages: this.streamedMessages,
      errors: this.errors,
      errorCount: this.errorCount,
      drops: this.drops,
      warmupCompleted: this.warmupCompleted,
      windowS: this.windowEnd > this.windowStart ? (this.windowEnd - this.windowStart) / 1000 : 0,
      cpuMicros: this.cpuWindow,
      latency: this.hist.summary(),
      histogram: this.hist.encode(),
    };
  }
}

/** One HTTP/2 connection of the generator; a lost session is replaced on the next use. */
export class Connection {
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

/** Names a failed stream: grpc-status first, then HTTP status, then the transport's error or RST code. */
export function failureKind(status: string | undefined, httpStatus: number, errCode: string | undefined, rstCode: number | undefined): string {
  if (status !== undefined) return `grpc-${status}`;
  if (httpStatus !== 200 && httpStatus !== 0) return `http-${httpStatus}`;
  if (errCode) return errCode;
  if (rstCode) return `rst-${rstCode}`;
  return 'no-status';
}

/** The error code a stream reports; a stream cancelled because its session failed names the session's error. */
export function streamErrorCode(err: NodeJS.ErrnoException): string {
  const cause = err.cause as NodeJS.ErrnoException | undefined;
  return cause?.code ?? err.code ?? 'stream-error';
}
