/**
 * Spans for the calls the sidecar proxies, with the proxy's own timing, as Envoy does: the
 * outbound sidecar (app → mesh) records a CLIENT span, the inbound one (mesh → app) a SERVER span.
 * Each span is a child of whatever the request arrived with, and the request leaves as a child of
 * the span, so a call through two sidecars reads app → CLIENT → SERVER → app in Zipkin.
 *
 * Sampling is decided once, at the first hop that has no decision, and travels with the request
 * (traceparent's flag, B3's sampled state); an unsampled call costs a few ids and a header write.
 * With tracing off there is no Tracer at all, so nothing here runs.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { IncomingHttpHeaders } from 'node:http2';
import { Status } from '../grpc/status.js';
import {
  Found,
  Sampling,
  b3TraceIdOf,
  newIncoming,
  newSpanId,
  newTraceId,
  randomInt30,
  readIncoming,
  writeContext,
  type TraceContext,
} from './trace-context.js';
import type { SpanExporter, ZipkinSpan } from './zipkin-exporter.js';

export type SpanKind = 'CLIENT' | 'SERVER';

export interface Span {
  readonly context: TraceContext;
  readonly kind: SpanKind;
  /** The call's :path. */
  readonly name: string;
  /** Epoch microseconds, from nowMicros(). */
  readonly startMicros: number;
}

export interface TracerOptions {
  /** localEndpoint.serviceName in Zipkin. */
  readonly serviceName: string;
  /** 0..1: the share of calls arriving without a sampling decision that are sampled. */
  readonly sampleRate: number;
  readonly exporter: SpanExporter;
}

export interface SpanResult {
  /** The call's gRPC status; undefined (or negative) when it ended without one (reset, cancelled). */
  readonly grpcStatus: number | undefined;
  /** The other end: the upstream endpoint for a CLIENT span, the caller for a SERVER span. */
  readonly peer?: { readonly address: string; readonly port: number };
  /** The upstream cluster (CLIENT spans), tagged `upstream_cluster`. */
  readonly cluster?: string;
  /** Extra tags; they win over the tracer's own. */
  readonly tags?: Readonly<Record<string, string>>;
}

const ORIGIN_MICROS = performance.timeOrigin * 1000;

/** Epoch microseconds: performance.timeOrigin + performance.now(), so monotonic within the process. */
export function nowMicros(): number {
  return Math.floor(ORIGIN_MICROS + performance.now() * 1000);
}

class SpanImpl implements Span {
  finished = false;
  constructor(
    readonly context: TraceContext,
    readonly kind: SpanKind,
    readonly name: string,
    readonly startMicros: number,
  ) {}
}

/** grpc-status code → its string and its name (for the error tag). */
const STATUS_TEXT: readonly string[] = Array.from({ length: 17 }, (_, i) => String(i));
const STATUS_NAME: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, code] of Object.entries(Status)) names[code] = name;
  return names;
})();

const DIRECTION: Readonly<Record<SpanKind, string>> = { CLIENT: 'outbound', SERVER: 'inbound' };

export class Tracer {
  private readonly serviceName: string;
  private readonly exporter: SpanExporter;
  /** sampleRate in units of 2^-30, compared with a 30-bit draw. */
  private readonly threshold: number;
  private readonly localEndpoint: { readonly serviceName: string };
  /** Reused by every start(): start() is synchronous and keeps nothing from it. */
  private readonly incoming = newIncoming();

  constructor(opts: TracerOptions) {
    const rate = opts.sampleRate;
    if (!(rate >= 0 && rate <= 1)) throw new RangeError(`Tracer: sampleRate must be within 0..1, got ${rate}`);
    this.serviceName = opts.serviceName;
    this.exporter = opts.exporter;
    this.threshold = Math.round(rate * 2 ** 30);
    this.localEndpoint = Object.freeze({ serviceName: this.serviceName });
  }

  /**
   * Called when a call arrives. Continues the incoming trace (new span id, parent = the incoming
   * span id) or starts one (sampled with sampleRate when no decision came). Rewrites `headers` so
   * the next hop is a child of this span: traceparent always, B3 in whichever forms came in. When
   * the result is not sampled, the decision still propagates (traceparent `-00`, B3 sampled 0) and
   * start() returns undefined, recording nothing.
   */
  start(headers: IncomingHttpHeaders, kind: SpanKind, name: string, nowMicrosOverride?: number): Span | undefined {
    const inc = this.incoming;
    const found = readIncoming(headers, inc);
    let sampled: boolean;
    if (found === Found.None || inc.sampling === Sampling.Deferred) sampled = this.decide();
    else sampled = inc.sampling === Sampling.Yes;
    const debug = inc.debug && found !== Found.None;

    let traceId: string;
    let parent: string | undefined;
    let tracestate: string | undefined;
    if (found === Found.Context) {
      traceId = inc.traceId;
      parent = inc.spanId;
      tracestate = inc.tracestate;
    } else {
      traceId = newTraceId();
      parent = undefined;
      tracestate = undefined;
    }
    const spanId = newSpanId();
    writeContext(
      headers,
      traceId,
      spanId,
      parent,
      sampled ? Sampling.Yes : Sampling.No,
      debug,
      tracestate,
      true,
      inc.hadB3Multi,
      inc.hadB3Single,
    );
    if (!sampled) return undefined;

    const context: TraceContext = { traceId, spanId, parentSpanId: parent, sampled: true, tracestate };
    if (debug) context.debug = true;
    return new SpanImpl(context, kind, name, nowMicrosOverride ?? nowMicros());
  }

  /**
   * Ends the span and hands it to the exporter. Tags: grpc.status_code, error (status ≠ 0),
   * upstream_cluster, remora.direction, plus `result.tags`; the peer becomes remoteEndpoint.
   * A second finish of the same span is ignored.
   */
  finish(span: Span, result: SpanResult, nowMicrosOverride?: number): void {
    if (!(span instanceof SpanImpl) || span.finished) return;
    span.finished = true;
    const end = nowMicrosOverride ?? nowMicros();
    const ctx = span.context;
    const tags: Record<string, string> = { 'remora.direction': DIRECTION[span.kind] };
    const status = result.grpcStatus;
    if (status !== undefined && status >= 0) tags['grpc.status_code'] = STATUS_TEXT[status] ?? String(status);
    if (status !== 0) tags.error = status === undefined || status < 0 ? 'true' : STATUS_NAME[status] ?? 'true';
    if (result.cluster !== undefined) tags.upstream_cluster = result.cluster;
    let remote: ZipkinSpan['remoteEndpoint'];
    const peer = result.peer;
    if (peer !== undefined) remote = remoteEndpoint(peer.address, peer.port, tags);
    const extra = result.tags;
    if (extra !== undefined) for (const k in extra) tags[k] = extra[k]!;

    const start = span.startMicros;
    const zs: ZipkinSpan = {
      traceId: b3TraceIdOf(ctx.traceId),
      id: ctx.spanId,
      parentId: ctx.parentSpanId,
      kind: span.kind,
      name: span.name,
      timestamp: Math.floor(start),
      duration: Math.max(1, Math.round(end - start)),
      localEndpoint: this.localEndpoint,
      remoteEndpoint: remote,
      tags,
      // Each hop has its own span ids, so a server span that continues a trace shares nothing.
      shared: span.kind === 'SERVER' && ctx.parentSpanId !== undefined ? false : undefined,
    };
    try {
      this.exporter.export(zs);
    } catch {
      // exporters must not throw; a broken one must not break the call either
    }
  }

  private decide(): boolean {
    const t = this.threshold;
    if (t <= 0) return false;
    if (t >= 2 ** 30) return true;
    return randomInt30() < t;
  }
}

/** Zipkin wants literal addresses; an IPv4-mapped IPv6 one is reported as IPv4, a host name as a tag. */
function remoteEndpoint(address: string, port: number, tags: Record<string, string>): ZipkinSpan['remoteEndpoint'] {
  const p = port > 0 && port < 65536 ? port : undefined;
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) return { ipv4: address.slice(7), port: p };
  if (isIPv4(address)) return { ipv4: address, port: p };
  if (isIPv6(address)) return { ipv6: address, port: p };
  if (address !== '') tags['peer.address'] = address;
  return p === undefined ? undefined : { port: p };
}
