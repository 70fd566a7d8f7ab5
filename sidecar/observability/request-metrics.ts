/**
 * Per-call metrics, recorded without prom-client on the request path: prom-client's labelled
 * children cost a label-hash string per observation, which at tens of thousands of calls a second
 * is a measurable share of a sidecar's CPU. Here a call costs three Map lookups on strings that
 * already exist (source, destination, method) and a few array increments; the Prometheus text is
 * built only when scraped.
 *
 * Cardinality is bounded: at most MAX_METHODS distinct methods per destination (then "other"),
 * and status codes are 0..16 plus -1 for calls that ended without one.
 */

/** Seconds; fine at the bottom so sub-millisecond proxy overhead is visible. */
export const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
export const MAX_METHODS = 100;
export const OTHER_METHOD = 'other';
const STATUS_SLOTS = 18; // -1..16

export type Direction = 'inbound' | 'outbound';

export class MethodStats {
  readonly requests = new Float64Array(STATUS_SLOTS);
  /** Non-cumulative bucket counts; the last slot is +Inf. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  durationSum = 0;
  count = 0;
  bytesIn = 0;
  bytesOut = 0;
}

/** Totals per destination, for the dashboard report (outbound only). */
export class DestinationTotals {
  requests = 0;
  failures = 0;
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
}

type ByMethod = Map<string, MethodStats>;
type ByDestination = Map<string, ByMethod>;

function bucketIndex(seconds: number): number {
  let i = 0;
  while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
  return i;
}

export class RequestMetrics {
  private readonly series: Record<Direction, Map<string, ByDestination>> = { inbound: new Map(), outbound: new Map() };
  readonly outboundTotals = new Map<string, DestinationTotals>();

  record(direction: Direction, source: string, destination: string, method: string, status: number, seconds: number, bytesIn: number, bytesOut: number): void {
    const bySource = this.series[direction];
    let byDest = bySource.get(source);
    if (byDest === undefined) bySource.set(source, (byDest = new Map()));
    let byMethod = byDest.get(destination);
    if (byMethod === undefined) byDest.set(destination, (byMethod = new Map()));
    let m = byMethod.get(method);
    if (m === undefined) {
      if (byMethod.size >= MAX_METHODS) {
        m = byMethod.get(OTHER_METHOD);
        if (m === undefined) byMethod.set(OTHER_METHOD, (m = new MethodStats()));
      } else {
        byMethod.set(method, (m = new MethodStats()));
      }
    }
    const slot = status >= -1 && status <= 16 ? status + 1 : 0;
    m.requests[slot]!++;
    const b = bucketIndex(seconds);
    m.buckets[b]!++;
    m.durationSum += seconds;
    m.count++;
    m.bytesIn += bytesIn;
    m.bytesOut += bytesOut;
    if (direction === 'outbound') {
      let t = this.outboundTotals.get(destination);
      if (t === undefined) this.outboundTotals.set(destination, (t = new DestinationTotals()));
      t.requests++;
      if (status !== 0) t.failures++;
      t.buckets[b]!++;
    }
  }

  /** Prometheus text for the request metrics. */
  render(): string {
    const requests: string[] = [];
    const durations: string[] = [];
    const reqBytes: string[] = [];
    const resBytes: string[] = [];
    for (const direction of ['inbound', 'outbound'] as const) {
      for (const [source, byDest] of this.series[direction]) {
        for (const [destination, byMethod] of byDest) {
          for (const [method, m] of byMethod) {
            const labels = `direction="${direction}",source="${escapeLabel(source)}",destination="${escapeLabel(destination)}",method="${escapeLabel(method)}"`;
            for (let slot = 0; slot < STATUS_SLOTS; slot++) {
              const n = m.requests[slot]!;
              if (n > 0) requests.push(`remora_requests_total{${labels},grpc_status="${slot - 1}"} ${n}`);
            }
            let cumulative = 0;
            for (let i = 0; i < DURATION_BUCKETS.length; i++) {
              cumulative += m.buckets[i]!;
              durations.push(`remora_request_duration_seconds_bucket{${labels},le="${DURATION_BUCKETS[i]}"} ${cumulative}`);
            }
            durations.push(`remora_request_duration_seconds_bucket{${labels},le="+Inf"} ${m.count}`);
            durations.push(`remora_request_duration_seconds_sum{${labels}} ${m.durationSum}`);
            durations.push(`remora_request_duration_seconds_count{${labels}} ${m.count}`);
            reqBytes.push(`remora_request_bytes_total{${labels}} ${m.bytesIn}`);
            resBytes.push(`remora_response_bytes_total{${labels}} ${m.bytesOut}`);
          }
        }
      }
    }
    return [
      '# HELP remora_requests_total gRPC calls through the sidecar, by direction, caller, callee, method and grpc-status (-1: ended without a status).',
      '# TYPE remora_requests_total counter',
      ...requests,
      '# HELP remora_request_duration_seconds Time from the call reaching the sidecar to its end.',
      '# TYPE remora_request_duration_seconds histogram',
      ...durations,
      '# HELP remora_request_bytes_total Request body bytes (gRPC frames) forwarded.',
      '# TYPE remora_request_bytes_total counter',
      ...reqBytes,
      '# HELP remora_response_bytes_total Response body bytes (gRPC frames) forwarded.',
      '# TYPE remora_response_bytes_total counter',
      ...resBytes,
      '',
    ].join('\n');
  }
}

/** Prometheus label value escaping: backslash, double quote, newline. */
export function escapeLabel(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v;
}
