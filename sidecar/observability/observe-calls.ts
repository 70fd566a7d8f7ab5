/**
 * The outermost layer of both listeners: notes when a call arrived, and when the caller's stream
 * closes reads what was sent back (grpc-status from the trailers or a trailers-only answer, the
 * sidecar's own x-remora-error reason) and records it once: metrics, access log, trace span.
 * With all three off it adds nothing to a call.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { StreamHandler } from '../proxy/handle-stream.js';
import { OVERFLOW_HEADER } from '../health/circuit-breakers.js';
import { peerOf } from '../security/peer.js';
import type { AccessLog } from './access-log.js';
import { CallRecord, attachRecord, recordOf } from './call-record.js';
import type { Direction, RequestMetrics } from './request-metrics.js';
import type { Span, Tracer } from './tracer.js';
import type { H2Stream } from '../h2/stream.js';

export interface ObservabilityOptions {
  readonly service: string;
  readonly metrics: RequestMetrics | undefined;
  readonly accessLog: AccessLog;
  readonly tracer: Tracer | undefined;
}

/** Calls in flight, by direction (the active-streams gauge). */
export const activeCalls: Record<Direction, number> = { inbound: 0, outbound: 0 };

/** A header the sidecar sent, from the trailers or else the (trailers-only) response headers. */
function sent(trailers: IncomingHttpHeaders | undefined, headers: IncomingHttpHeaders | undefined, name: string): string | undefined {
  return (trailers?.[name] ?? headers?.[name]) as string | undefined;
}

export function observeCalls(inner: StreamHandler, direction: Direction, opts: ObservabilityOptions): StreamHandler {
  const { metrics, accessLog, tracer, service } = opts;
  const kind = direction === 'outbound' ? 'CLIENT' : 'SERVER';

  function onClose(this: H2Stream): void {
    const rec = recordOf(this);
    if (rec === undefined) return;
    activeCalls[direction]--;
    const trailers = this.sentTrailers as IncomingHttpHeaders | undefined;
    const headers = this.sentHeaders as IncomingHttpHeaders | undefined;
    const raw = sent(trailers, headers, 'grpc-status');
    const parsed = raw === undefined ? -1 : Number(raw);
    const status = Number.isInteger(parsed) ? parsed : -1;
    const flag = sent(trailers, headers, 'x-remora-error');
    const overflow = flag === 'overflow' ? sent(trailers, headers, OVERFLOW_HEADER) : undefined;
    const seconds = (performance.now() - rec.startedAt) / 1000;
    if (overflow !== undefined) rec.cluster?.stats.overflow(overflow);
    metrics?.record(direction, rec.source, rec.destination, rec.method, status, seconds, rec.bytesIn, rec.bytesOut);
    if (rec.span !== undefined) {
      const [address, port] = splitEndpoint(rec.endpoint);
      tracer!.finish(rec.span as Span, {
        grpcStatus: status === -1 ? undefined : status,
        ...(address ? { peer: { address, port } } : {}),
        tags: { 'remora.direction': direction, 'upstream_cluster': rec.cluster?.name ?? '', ...(flag ? { 'remora.error': flag } : {}) },
      });
    }
    if (accessLog.wants()) {
      const peer = direction === 'inbound' ? peerOf(this.session) : undefined;
      accessLog.write({
        traceId: (rec.span as Span | undefined)?.context.traceId ?? rec.traceparent?.slice(3, 35),
        direction,
        source: rec.source,
        sourceIdentity: peer?.identity,
        destination: rec.destination,
        endpoint: rec.endpoint,
        method: rec.method,
        grpcStatus: status,
        durationMs: Math.round(seconds * 1e6) / 1e3,
        bytesIn: rec.bytesIn,
        bytesOut: rec.bytesOut,
        retries: rec.retries,
        flag,
      });
    }
  }

  return function observed(stream, headers) {
    if (metrics === undefined && tracer === undefined && !accessLog.settings.enabled) return inner(stream, headers);
    const source = direction === 'outbound' ? service : peerOf(stream.session)?.serviceAccount ?? 'unknown';
    const rec = new CallRecord(direction, source, direction === 'inbound' ? service : 'unknown', headers[':path'] ?? '', performance.now());
    if (tracer !== undefined) rec.span = tracer.start(headers, kind, rec.method);
    if (rec.span === undefined) rec.traceparent = headers.traceparent as string | undefined;
    attachRecord(stream, rec);
    activeCalls[direction]++;
    // on, not once: 'close' fires once, and once() would allocate a wrapper per call.
    stream.on('close', onClose);
    inner(stream, headers);
  };
}

function splitEndpoint(key: string): [string, number] {
  const i = key.lastIndexOf(':');
  if (i <= 0) return ['', 0];
  return [key.slice(0, i).replace(/^\[|\]$/g, ''), Number(key.slice(i + 1))];
}

