/**
 * Entry point for every stream a listener accepts: check it is gRPC, route it, pick an endpoint,
 * forward. Everything that rejects a call answers with a gRPC status the caller can read.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { Status, respondWithError, encodeGrpcMessage } from '../grpc/status.js';
import { parseAuthority } from '../routing/authority.js';
import type { Router } from '../routing/route-table.js';
import { CALLER_CANCELLED, forwardCall } from './forward.js';
import { ConnectionOverflow } from '../upstream/endpoint.js';
import { HELD_PENDING, HELD_REQUEST, type Cluster } from '../upstream/cluster.js';
import { OVERFLOW_HEADER, overflowMessage, type BreakerKind, type BreakerName } from '../health/circuit-breakers.js';

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

/** Reused for every pick: pick() is synchronous and keeps no reference, so no allocation per call. */
const pickContext: { now: number; headers: IncomingHttpHeaders } = { now: 0, headers: {} };

function overflow(stream: ServerHttp2Stream, cluster: Cluster, breaker: string): void {
  const limit = cluster.breakers?.limit(BREAKER_KIND[breaker as BreakerName] ?? 'request') ?? 0;
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  stream.respond(
    {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(Status.UNAVAILABLE),
      'grpc-message': encodeGrpcMessage(`remora: ${overflowMessage(breaker as BreakerName, cluster.name, limit)}`),
      'x-remora-error': 'overflow',
      [OVERFLOW_HEADER]: breaker,
    },
    { endStream: true },
  );
}

const BREAKER_KIND: Record<BreakerName, BreakerKind> = {
  'max-connections': 'connection',
  'max-pending-requests': 'pending',
  'max-requests': 'request',
  'max-retries': 'retry',
};

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
    pickContext.now = now;
    pickContext.headers = headers;
    let cluster = route.cluster;
    let endpoint = cluster.pick(pickContext);
    if (endpoint === undefined && route.failover !== undefined) {
      // The primary cluster has nobody who can take the call: the route's failover cluster does.
      const primary = cluster;
      cluster = route.failover;
      endpoint = cluster.pick(pickContext);
      if (endpoint === undefined) cluster = primary;
    }
    if (endpoint === undefined) {
      respondWithError(stream, Status.UNAVAILABLE, `remora: ${cluster.unavailableReason(now)}`, 'no-endpoint');
      return;
    }
    const breakers = cluster.breakers;
    let held = 0;
    if (breakers !== undefined) {
      const tripped = breakers.tryAcquire('request');
      if (tripped !== null) {
        endpoint.breaker?.record('cancelled', now, now);
        return overflow(stream, cluster, tripped);
      }
      held = HELD_REQUEST;
    }
    let pooled;
    try {
      pooled = endpoint.acquire(now);
    } catch (err) {
      if (!(err instanceof ConnectionOverflow)) throw err;
      cluster.callEnded(endpoint, CALLER_CANCELLED, now, now, held);
      return overflow(stream, cluster, err.breaker);
    }
    if (breakers !== undefined && !pooled.connected) {
      const tripped = breakers.tryAcquire('pending');
      if (tripped !== null) {
        cluster.callEnded(endpoint, CALLER_CANCELLED, now, now, held);
        return overflow(stream, cluster, tripped);
      }
      held |= HELD_PENDING;
    }
    forwardCall(stream, headers, endpoint, pooled, cluster, now, held);
  };
}
