/**
 * One grpc.health.v1 `Check` call over an HTTP/2 session the caller already has (the endpoint's
 * pool), so a health check costs a stream, not a connection. Settles within timeoutMs with a
 * serving status or a failure that says why; never throws and never leaves a stream open.
 */
import http2, { type IncomingHttpHeaders, type IncomingHttpStatusHeader } from 'node:http2';
import { Status, decodeGrpcMessage } from '../grpc/status.js';
import { HEALTH_CHECK_PATH, decodeCheckResponse, encodeCheckRequest, type ServingStatus } from './health-wire.js';
import type { H2Stream } from '../h2/stream.js';
import type { H2Session } from '../h2/session.js';

export type { ServingStatus } from './health-wire.js';

export interface HealthProbeOptions {
  readonly authority: string;
  /** "" asks about the server as a whole. */
  readonly serviceName: string;
  readonly timeoutMs: number;
}

export interface ProbeFailure {
  readonly failure: string;
  /** The gRPC status when the server answered with one, e.g. UNIMPLEMENTED without a health service. */
  readonly grpcStatus?: number;
}

export type HealthProbeResult = ServingStatus | ProbeFailure;

type ResponseHeaders = IncomingHttpHeaders & IncomingHttpStatusHeader;

/** A HealthCheckResponse is a handful of bytes; a server sending more is not a health service. */
const MAX_RESPONSE_BYTES = 4096;

const STATUS_NAMES = new Map<number, string>(Object.entries(Status).map(([name, code]) => [code, name]));

/** Request frames by service name: a cluster checks one name, so this stays tiny. */
const requestFrames = new Map<string, Buffer>();
const MAX_CACHED_FRAMES = 256;

function requestFrame(serviceName: string): Buffer {
  let frame = requestFrames.get(serviceName);
  if (!frame) {
    if (requestFrames.size >= MAX_CACHED_FRAMES) requestFrames.clear();
    frame = encodeCheckRequest(serviceName);
    requestFrames.set(serviceName, frame);
  }
  return frame;
}

function errorText(err: unknown): string {
  // node wraps a failed connect as "pending stream has been canceled"; the cause is the news.
  if (err instanceof Error && err.cause instanceof Error) return errorText(err.cause);
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

function grpcTimeout(ms: number): string {
  // The header allows at most 8 digits.
  return ms <= 99_999_999 ? `${Math.max(0, Math.ceil(ms))}m` : `${Math.min(99_999_999, Math.ceil(ms / 1000))}S`;
}

export function probeGrpcHealth(session: H2Session, opts: HealthProbeOptions): Promise<HealthProbeResult> {
  return new Promise((resolve) => {
    let stream: H2Stream;
    try {
      stream = session.request({
        ':method': 'POST',
        ':path': HEALTH_CHECK_PATH,
        ':authority': opts.authority,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': grpcTimeout(opts.timeoutMs),
        'user-agent': 'remora-health-probe',
      });
    } catch (err) {
      // A closed or closing session throws synchronously.
      resolve({ failure: `cannot open a stream: ${errorText(err)}` });
      return;
    }

    let settled = false;
    let headers: ResponseHeaders | undefined;
    let trailers: IncomingHttpHeaders | undefined;
    let streamError: string | undefined;
    const chunks: Buffer[] = [];
    let received = 0;

    const finish = (result: HealthProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // Early finishes (timeout, oversized answer) must free the stream on both ends.
      if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      resolve(result);
    };
    const timer = setTimeout(() => finish({ failure: `timeout after ${opts.timeoutMs} ms` }), opts.timeoutMs);

    stream.on('response', (h) => (headers = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > MAX_RESPONSE_BYTES) finish({ failure: `response larger than ${MAX_RESPONSE_BYTES} bytes` });
      else chunks.push(chunk);
    });
    stream.on('error', (err) => (streamError ??= errorText(err)));
    stream.on('close', () => finish(verdict(stream, headers, trailers, chunks, streamError)));
    stream.end(requestFrame(opts.serviceName));
  });
}

function verdict(
  stream: H2Stream,
  headers: ResponseHeaders | undefined,
  trailers: IncomingHttpHeaders | undefined,
  chunks: readonly Buffer[],
  streamError: string | undefined,
): HealthProbeResult {
  const reset = stream.rstCode ? `stream reset (RST_STREAM code ${stream.rstCode})` : undefined;
  if (!headers) return { failure: streamError ?? reset ?? 'stream closed before a response' };
  const httpStatus = headers[':status'];
  if (httpStatus !== 200) return { failure: `HTTP status ${httpStatus ?? 'missing'} instead of 200` };
  // A trailers-only answer (an error, usually) carries the status in the response headers.
  const source = trailers ?? headers;
  const rawStatus = source['grpc-status'];
  if (rawStatus === undefined) return { failure: streamError ?? reset ?? 'response ended without grpc-status' };
  const code = Number(rawStatus);
  if (code !== Status.OK) {
    const rawMessage = source['grpc-message'];
    const message = typeof rawMessage === 'string' && rawMessage !== '' ? `: ${decodeGrpcMessage(rawMessage)}` : '';
    return { failure: `${STATUS_NAMES.get(code) ?? `status ${rawStatus}`}${message}`, grpcStatus: code };
  }
  const decoded = decodeCheckResponse(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
  return typeof decoded === 'string' ? decoded : { failure: decoded.error };
}
