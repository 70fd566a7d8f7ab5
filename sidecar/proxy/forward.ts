/**
 * Forwards one gRPC call between a downstream stream (from our listener) and an upstream stream
 * (to the picked endpoint), as bytes: headers, DATA and trailers pass through untouched, with
 * backpressure and cancellation both ways.
 *
 * Listeners are module-level functions that find their call through a symbol on the stream, so a
 * call costs one small object instead of a dozen closures.
 */
import http2, { type IncomingHttpHeaders } from 'node:http2';
import { Status, encodeGrpcMessage, respondWithError, type StatusCode } from '../grpc/status.js';
import { abandonStream, spendReset, type Endpoint, type PooledSession } from '../upstream/endpoint.js';
import { recordOf, type CallRecord } from '../observability/call-record.js';
import type { H2Stream } from '../h2/stream.js';

const {
  NGHTTP2_NO_ERROR,
  NGHTTP2_CANCEL,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_INADEQUATE_SECURITY,
  NGHTTP2_FLAG_END_STREAM,
} = http2.constants;

const kCall = Symbol('remora.call');
type Down = H2Stream & { [kCall]: ProxyCall };
type Up = H2Stream & { [kCall]: ProxyCall };

/** The call failed below gRPC: connect failure, reset stream, lost connection. */
export const TRANSPORT_FAILURE = -1;
/** The caller cancelled or went away before the call ended: says nothing about the endpoint. */
export const CALLER_CANCELLED = -2;

/**
 * Told how each call went, so the cluster can feed latency estimates, outlier detection and
 * breakers. The status is read from trailers or from trailers-only response headers: both occur.
 */
export interface CallObserver {
  /** Response headers arrived `rttMs` after the call started. */
  responseStarted(endpoint: Endpoint, rttMs: number, now: number): void;
  /**
   * Once per call: the gRPC status, TRANSPORT_FAILURE or CALLER_CANCELLED. `held` is what the
   * caller passed to forwardCall (the cluster's breaker bits), handed back to be released.
   */
  callEnded(endpoint: Endpoint, outcome: number, startedAt: number, now: number, held: number): void;
}

class ProxyCall {
  trailers: IncomingHttpHeaders | Readonly<Record<string, string>> | undefined = undefined;
  /** The downstream answer is complete (trailers-only sent, or our end() called). */
  finished = false;
  upEnded = false;
  upError: Error | undefined = undefined;
  /** grpc-status as the upstream sent it; undefined until headers-with-status or trailers arrive. */
  status: string | string[] | undefined = undefined;
  callerGone = false;
  /** The observability layer's record, when it keeps one. */
  rec: CallRecord | undefined = undefined;

  constructor(
    readonly down: Down,
    readonly up: Up,
    readonly pooled: PooledSession,
    readonly endpoint: Endpoint,
    readonly observer: CallObserver,
    readonly startedAt: number,
    readonly held: number,
  ) {}
}

/** Sent when an upstream ends its response with no trailers (so no status). */
export const MISSING_TRAILERS = Object.freeze({
  'grpc-status': String(Status.INTERNAL),
  'grpc-message': 'remora: upstream ended the response without trailers',
  'x-remora-error': 'upstream-reset',
});

// respond() only reads its options, so one shared instance each saves an allocation per call.
const RESPOND_END: http2.ServerStreamResponseOptions = { endStream: true };
const RESPOND_WITH_TRAILERS: http2.ServerStreamResponseOptions = { waitForTrailers: true };

function noop(): void {}

// Request direction: downstream → upstream. 'drain' listeners are added only once a write
// backs up, which a small unary call never does.
function onDownData(this: Down, chunk: Buffer): void {
  const call = this[kCall];
  if (call.rec !== undefined) call.rec.bytesIn += chunk.length;
  const up = call.up;
  if (!up.write(chunk)) {
    this.pause();
    if (up.listenerCount('drain') === 0) up.on('drain', onUpDrain);
  }
}
function onUpDrain(this: Up): void {
  this[kCall].down.resume();
}
function onDownEnd(this: Down): void {
  const up = this[kCall].up;
  if (!up.closed && !up.destroyed) up.end();
}

// Response direction: upstream → downstream.
function onUpResponse(this: Up, headers: IncomingHttpHeaders, flags: number): void {
  const call = this[kCall];
  const now = Date.now();
  call.observer.responseStarted(call.endpoint, now - call.startedAt, now);
  const down = call.down;
  if (down.closed || down.destroyed) {
    this.resume(); // nobody to forward to: let any body drain away
    return;
  }
  if (flags & NGHTTP2_FLAG_END_STREAM) {
    // Trailers-only: the status is in these headers and there is nothing else to send.
    call.status = headers['grpc-status'];
    call.finished = true;
    down.respond(headers, RESPOND_END);
  } else {
    down.respond(headers, RESPOND_WITH_TRAILERS);
    // Only now, after respond(): the engine queues anything written before the headers, but a
    // body must never overtake its headers.
    this.on('data', onUpData);
  }
}
function onUpData(this: Up, chunk: Buffer): void {
  const call = this[kCall];
  if (call.rec !== undefined) call.rec.bytesOut += chunk.length;
  const down = call.down;
  if (!down.write(chunk)) {
    this.pause();
    if (down.listenerCount('drain') === 0) down.on('drain', onDownDrain);
  }
}
function onDownDrain(this: Down): void {
  this[kCall].up.resume();
}
function onUpTrailers(this: Up, trailers: IncomingHttpHeaders): void {
  const call = this[kCall];
  call.trailers = trailers;
  call.status = trailers['grpc-status'];
}
function onUpEnd(this: Up): void {
  // A reset stream ends in onUpClose, never here; the check keeps it that way.
  if (this.rstCode) return;
  const call = this[kCall];
  call.upEnded = true;
  if (call.finished) return;
  const down = call.down;
  if (down.closed || down.destroyed || !down.headersSent) return;
  call.finished = true;
  down.end();
}
function onDownWantTrailers(this: Down): void {
  this.sendTrailers(this[kCall].trailers ?? MISSING_TRAILERS);
}
function onUpError(this: Up, err: Error): void {
  this[kCall].upError = err;
}

function onDownClose(this: Down): void {
  const call = this[kCall];
  const up = call.up;
  // The caller went away (cancel, RST_STREAM, lost connection): tell the upstream, within the
  // session's reset budget (see abandonStream for what happens past it).
  if (!call.upEnded && !up.closed && !up.destroyed) {
    call.callerGone = true;
    if (spendReset(call.pooled, Date.now())) {
      up.close(NGHTTP2_CANCEL);
      return;
    }
    up.off('data', onUpData);
    abandonStream(call.pooled, up);
  }
}

function onUpClose(this: Up): void {
  const call = this[kCall];
  call.pooled.active--;
  call.endpoint.activeRequests--;
  call.observer.callEnded(call.endpoint, outcomeOf(call, this), call.startedAt, Date.now(), call.held);
  const down = call.down;
  if (call.finished || down.closed || down.destroyed) return;
  if (call.upEnded && down.headersSent) return; // onUpEnd already closed the response
  const [code, reason, message] = classifyUpstreamFailure(call, this.rstCode ?? NGHTTP2_NO_ERROR);
  if (!down.headersSent) {
    respondWithError(down, code, message, reason);
    return;
  }
  // Mid-response: end the caller's stream with a status in trailers, which names the failure
  // precisely, where a bare RST_STREAM would leave the caller to guess.
  call.finished = true;
  call.trailers = { 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message), 'x-remora-error': reason };
  down.end();
}

function outcomeOf(call: ProxyCall, up: Up): number {
  if (call.callerGone) return CALLER_CANCELLED;
  const status = call.status;
  if (status !== undefined && !up.rstCode) return Number(status);
  return TRANSPORT_FAILURE;
}

function classifyUpstreamFailure(
  call: ProxyCall,
  rst: number,
): [StatusCode, 'connect-failure' | 'upstream-reset', string] {
  const ep = call.endpoint.key;
  if (!call.pooled.connected) {
    return [Status.UNAVAILABLE, 'connect-failure', `remora: connect to ${ep} failed: ${call.endpoint.lastConnectError || call.upError?.message || 'connection closed'}`];
  }
  if (call.pooled.session.destroyed) {
    // The whole connection went (peer crashed or closed the socket), not just this stream.
    return [Status.UNAVAILABLE, 'upstream-reset', `remora: connection to ${ep} lost before the call completed`];
  }
  switch (rst) {
    case NGHTTP2_REFUSED_STREAM:
      return [Status.UNAVAILABLE, 'upstream-reset', `remora: ${ep} refused the stream`];
    case NGHTTP2_CANCEL:
      return [Status.CANCELLED, 'upstream-reset', `remora: ${ep} cancelled the stream`];
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return [Status.RESOURCE_EXHAUSTED, 'upstream-reset', `remora: ${ep} reset the stream: ENHANCE_YOUR_CALM`];
    case NGHTTP2_INADEQUATE_SECURITY:
      return [Status.PERMISSION_DENIED, 'upstream-reset', `remora: ${ep} reset the stream: INADEQUATE_SECURITY`];
    default: {
      const detail = call.upError ? `: ${call.upError.message}` : rst ? ` (HTTP/2 error ${rst})` : '';
      return [Status.UNAVAILABLE, 'upstream-reset', `remora: connection to ${ep} lost before the call completed${detail}`];
    }
  }
}

const REQUEST_OPTIONS: http2.ClientSessionRequestOptions = { endStream: false };

/**
 * Opens the upstream stream on `pooled` and wires both directions. `headers` is the downstream's
 * own header object, passed on as it is (it already carries only HTTP/2-legal fields).
 */
export function forwardCall(
  down: H2Stream,
  headers: IncomingHttpHeaders,
  endpoint: Endpoint,
  pooled: PooledSession,
  observer: CallObserver,
  now: number,
  held: number,
): void {
  let up: H2Stream;
  try {
    up = pooled.session.request(headers, REQUEST_OPTIONS);
  } catch (err) {
    // acquire() skips closing sessions; this is the backstop should one slip through.
    pooled.draining = true;
    observer.callEnded(endpoint, TRANSPORT_FAILURE, now, now, held);
    respondWithError(down, Status.UNAVAILABLE, `remora: cannot open a stream to ${endpoint.key}: ${(err as Error).message}`, 'upstream-reset');
    return;
  }
  pooled.active++;
  endpoint.activeRequests++;
  const call = new ProxyCall(down as Down, up as Up, pooled, endpoint, observer, now, held);
  call.rec = recordOf(down);
  (down as Down)[kCall] = call;
  (up as Up)[kCall] = call;

  down.on('data', onDownData);
  down.on('end', onDownEnd);
  down.on('wantTrailers', onDownWantTrailers);
  down.on('close', onDownClose);
  down.on('error', noop);

  up.on('response', onUpResponse);
  up.on('trailers', onUpTrailers);
  up.on('end', onUpEnd);
  up.on('close', onUpClose);
  up.on('error', onUpError);
}
