/**
 * Every call of a load run, one row each: when it was meant to be sent, how long it took from
 * then, and how it ended. Kept whole (typed arrays, 17 bytes a call: 30 min at 200 rps is 6 MB)
 * so a drill can ask about any time window after the fact instead of guessing windows up front.
 */
import { status } from '@grpc/grpc-js';

/** Arrivals the driver could not send because too many calls were already open. */
export const DROPPED = 255;
const MESSAGES_PER_STATUS = 3;

export interface WindowSummary {
  readonly sent: number;
  readonly ok: number;
  /** Failed calls by gRPC status name (and DROPPED). */
  readonly failed: Readonly<Record<string, number>>;
  readonly failedTotal: number;
  /** Latency from the intended send time, of every call that completed (failed ones too: a call that hit its deadline is slow, not absent). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export function statusName(code: number): string {
  if (code === DROPPED) return 'DROPPED';
  return status[code] ?? `STATUS_${code}`;
}

export class CallLog {
  private intended = new Float64Array(4096);
  private latency = new Float64Array(4096);
  private codes = new Uint8Array(4096);
  private size = 0;
  /** A few distinct status messages per failure status: the first thing to read when a drill fails. */
  private readonly messages = new Map<string, Set<string>>();

  get length(): number {
    return this.size;
  }

  add(intendedMs: number, latencyMs: number, code: number, message?: string): void {
    if (code !== status.OK && message !== undefined) {
      const name = statusName(code);
      const seen = this.messages.get(name) ?? new Set<string>();
      if (seen.size < MESSAGES_PER_STATUS) seen.add(message.slice(0, 300));
      this.messages.set(name, seen);
    }
    if (this.size === this.codes.length) this.grow();
    this.intended[this.size] = intendedMs;
    this.latency[this.size] = latencyMs;
    this.codes[this.size] = code;
    this.size++;
  }

  /** Failed calls per second of intended send time ({second: count}), to tell a fault's failures from a stall elsewhere. */
  failuresPerSecond(): Record<number, number> {
    const out: Record<number, number> = {};
    for (let i = 0; i < this.size; i++) {
      if (this.codes[i] === status.OK) continue;
      const s = Math.floor(this.intended[i]! / 1000);
      out[s] = (out[s] ?? 0) + 1;
    }
    return out;
  }

  failureMessages(): Record<string, string[]> {
    return Object.fromEntries([...this.messages].map(([name, set]) => [name, [...set]]));
  }

  /** Calls whose intended send time falls in [fromMs, toMs). */
  summarize(fromMs = -Infinity, toMs = Infinity): WindowSummary {
    const latencies: number[] = [];
    const failed: Record<string, number> = {};
    let sent = 0;
    let ok = 0;
    let failedTotal = 0;
    for (let i = 0; i < this.size; i++) {
      const at = this.intended[i]!;
      if (at < fromMs || at >= toMs) continue;
      const code = this.codes[i]!;
      if (code !== DROPPED) {
        sent++;
        latencies.push(this.latency[i]!);
      }
      if (code === status.OK) {
        ok++;
      } else {
        const name = statusName(code);
        failed[name] = (failed[name] ?? 0) + 1;
        failedTotal++;
      }
    }
    latencies.sort((a, b) => a - b);
    return {
      sent,
      ok,
      failed,
      failedTotal,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: latencies.length ? latencies[latencies.length - 1]! : 0,
    };
  }

  private grow(): void {
    const n = this.codes.length * 2;
    const intended = new Float64Array(n);
    const latency = new Float64Array(n);
    const codes = new Uint8Array(n);
    intended.set(this.intended);
    latency.set(this.latency);
    codes.set(this.codes);
    this.intended = intended;
    this.latency = latency;
    this.codes = codes;
  }
}

/** Nearest-rank percentile of an ascending array; 0 when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}
