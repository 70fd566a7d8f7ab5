/** gRPC status codes and the sidecar's own error responses (never on the success path). */
import type { OutgoingHttpHeaders } from 'node:http2';
import type { H2Stream } from '../h2/stream.js';

export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = (typeof Status)[keyof typeof Status];

/** Percent-encodes a status message as the gRPC HTTP/2 spec asks: UTF-8, then %XX outside 0x20-0x7E and '%'. */
export function encodeGrpcMessage(message: string): string {
  const bytes = Buffer.from(message, 'utf8');
  let out = '';
  for (const b of bytes) {
    if (b >= 0x20 && b <= 0x7e && b !== 0x25) out += String.fromCharCode(b);
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

export function decodeGrpcMessage(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
}

/** Why the sidecar itself answered; sent as `x-remora-error` so callers and tests can tell. */
export type SidecarErrorReason =
  | 'no-route'
  | 'no-endpoint'
  | 'connect-failure'
  | 'upstream-reset'
  | 'bad-request'
  | 'draining'
  | 'timeout'
  | 'overflow'
  | 'fault'
  | 'mtls-required'
  | 'denied'
  | 'internal';

/**
 * Answers a stream with a trailers-only gRPC error. Safe to call at any point: if headers already
 * went out, the best we can do is reset the stream so the caller sees the failure instead of a hang.
 */
export function respondWithError(
  stream: H2Stream,
  code: StatusCode,
  message: string,
  reason: SidecarErrorReason,
): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(0x2 /* INTERNAL_ERROR */);
    return;
  }
  const headers: OutgoingHttpHeaders = {
    ':status': 200,
    'content-type': 'application/grpc',
    'grpc-status': String(code),
    'grpc-message': encodeGrpcMessage(message),
    'x-remora-error': reason,
  };
  try {
    stream.respond(headers, { endStream: true });
  } catch {
    stream.close(0x2);
  }
}
