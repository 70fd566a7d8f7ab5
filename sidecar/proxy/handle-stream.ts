/**
 * Entry point for every stream a listener accepts: check it is gRPC, route it, pick an endpoint,
 * forward. Everything that rejects a call answers with a gRPC status the caller can read.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { Status, respondWithError, encodeGrpcMessage } from '../grpc/status.js';
import { parseAuthority } from '../routing/authority.js';
import type { Router } from '../routing/route-table.js';
import { forwardCall } from './forward.js';

export type StreamHandler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;

function rejectNonGrpc(stream: ServerHttp2Stream, contentType: string | undefined): void {
  // The gRPC spec asks for HTTP 415 here; the grpc-status lets gRPC clients show why.
  stream.respond(
    {
      ':status': 415,
      'content-type': 'application/grpc',
      'grpc-status': String(Status.INTERNAL),
      'grpc-message': encodeGrpcMessage(
        `remora: this port forwards gRPC only; content-type ${JSON.stringify(contentType ?? '')} is not application/grpc`,
      ),
      'x-remora-error': 'bad-request',
    },
    { endStream: true },
  );
}

function noRoute(stream: ServerHttp2Stream, authority: string | undefined): void {
  const parsed = authority ? parseAuthority(authority) : undefined;
  const what = parsed ? `service ${JSON.stringify(parsed.service)}` : `authority ${JSON.stringify(authority ?? '')}`;
  respondWithError(stream, Status.UNIMPLEMENTED, `remora: no route for ${what} (:authority ${JSON.stringify(authority ?? '')})`, 'no-route');
}

export function createStreamHandler(router: () => Router): StreamHandler {
  return function handleStream(stream, headers) {
    const contentType = headers['content-type'];
    if (contentType === undefined || !contentType.startsWith('application/grpc')) {
      stream.on('error', () => {});
      rejectNonGrpc(stream, contentType);
      return;
    }
    const authority = headers[':authority'] ?? headers.host;
    const route = authority === undefined ? undefined : router().resolve(authority);
    if (route === undefined) {
      noRoute(stream, authority);
      return;
    }
    if (headers.host !== undefined) delete headers.host;
    const now = Date.now();
    const endpoint = route.cluster.pick(now);
    if (endpoint === undefined) {
      respondWithError(stream, Status.UNAVAILABLE, `remora: ${route.cluster.unavailableReason(now)}`, 'no-endpoint');
      return;
    }
    forwardCall(stream, headers, endpoint, endpoint.acquire(now));
  };
}
