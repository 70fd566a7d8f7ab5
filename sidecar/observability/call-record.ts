/**
 * What the observability layer learns about one call while it runs: filled in by the layers that
 * know each part (routing: destination; dispatch: endpoint and cluster; forwarding: bytes; retries:
 * attempts) and read once when the caller's stream closes. Only allocated when metrics, the access
 * log or tracing is on.
 */

import type { Cluster } from '../upstream/cluster.js';
import type { Direction } from './request-metrics.js';
import type { H2Stream } from '../h2/stream.js';

export const kRecord = Symbol('remora.callRecord');

export class CallRecord {
  destination: string;
  endpoint = '';
  cluster: Cluster | undefined = undefined;
  bytesIn = 0;
  bytesOut = 0;
  retries = 0;
  /** The incoming traceparent when no span was made (for the access log's trace id). */
  traceparent: string | undefined = undefined;
  /** Opaque to this file: the tracer's span, when sampled. */
  span: unknown = undefined;

  constructor(
    readonly direction: Direction,
    readonly source: string,
    destination: string,
    readonly method: string,
    /** performance.now() at arrival. */
    readonly startedAt: number,
  ) {
    this.destination = destination;
  }
}

type Recorded = H2Stream & { [kRecord]?: CallRecord };

export function recordOf(stream: H2Stream): CallRecord | undefined {
  return (stream as Recorded)[kRecord];
}

export function attachRecord(stream: H2Stream, record: CallRecord): void {
  (stream as Recorded)[kRecord] = record;
}
