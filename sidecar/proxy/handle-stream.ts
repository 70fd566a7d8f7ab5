/**
 * Entry point for every stream a listener accepts: check it is gRPC, route it, pick an endpoint,
 * forward. Everything that rejects a call answers with a gRPC status the caller can read.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import { Status, respondWithError, encodeGrpcMessage } from '../grpc/status.js';
import { parseAuthority } from '../routing/authority.js';
import type { Router } from '../routing/route-table.js';
import { CALLER_CANCELLED, forwardCall } from './forward.js';
import { ConnectionOverflow } from '../upstream/endpoint.js';
import { HELD_PENDING, HELD_REQUEST, type Cluster } from '../upstream/cluster.js';
import type { Route } from '../routing/route.js';
import type { RoutePolicy } from '../routing/route.js';
import { PolicyCall } from '../policy/policy-call.js';
import { decideFault } from '../faults/fault.js';
import { startMirror } from './mirror.js';
import type { IdempotencyCatalog } from '../idempotency/catalog.js';
import { recordOf } from '../observability/call-record.js';
import { OVERFLOW_HEADER, overflowMessage, type BreakerKind, type BreakerName } from '../health/circuit-breakers.js';
import type { H2Stream } from '../h2/stream.js';

export type StreamHandler = (stream: H2Stream, headers: IncomingHttpHeaders) => void;

function rejectNonGrpc(stream: H2Stream, contentType: string | undefined): void {
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

function noRoute(stream: H2Stream, authority: string | undefined): void {
  const parsed = authority ? parseAuthority(authority) : undefined;
  const what = parsed ? `service ${JSON.stringify(parsed.service)}` : `authority ${JSON.stringify(authority ?? '')}`;
  respondWithError(stream, Status.UNIMPLEMENTED, `remora: no route for ${what} (:authority ${JSON.stringify(authority ?? '')})`, 'no-route');
}

/** Reused for every pick: pick() is synchronous and keeps no reference, so no allocation per call. */
const pickContext: { now: number; headers: IncomingHttpHeaders } = { now: 0, headers: {} };

function overflow(stream: H2Stream, cluster: Cluster, breaker: string): void {
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

/** Calls on routes with any of these go through PolicyCall; the rest take the lean path. */
function needsPolicyCall(p: RoutePolicy): boolean {
  return p.timeoutMs !== undefined || p.retries !== undefined || p.idleTimeoutMs !== undefined;
}

/** Picks the endpoint, applies the cluster's breakers, and forwards (or hands over to PolicyCall). */
function dispatch(stream: H2Stream, headers: IncomingHttpHeaders, route: Route, descriptors: IdempotencyCatalog | undefined): void {
  if (stream.destroyed || stream.closed) return;
  const now = Date.now();
  pickContext.now = now;
  pickContext.headers = headers;
  let cluster = route.pickCluster();
  let endpoint = cluster.pick(pickContext);
  if (endpoint === undefined && route.failover !== undefined) {
    // The chosen cluster has nobody who can take the call: the route's failover cluster does.
    const primary = cluster;
    cluster = route.failover;
    endpoint = cluster.pick(pickContext);
    if (endpoint === undefined) cluster = primary;
  }
  const rec = recordOf(stream);
  if (rec !== undefined) rec.cluster = cluster;
  if (endpoint === undefined) {
    respondWithError(stream, Status.UNAVAILABLE, `remora: ${cluster.unavailableReason(now)}`, 'no-endpoint');
    return;
  }
  if (rec !== undefined) rec.endpoint = endpoint.key;
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
  if (needsPolicyCall(route.policy)) {
    const target = cluster;
    const call = new PolicyCall(stream, headers, {
      cluster: target,
      policy: route.policy,
      routeName: route.name,
      idempotency: (path) => {
        const known = descriptors?.levelOf(path) ?? 'UNKNOWN';
        return known !== 'UNKNOWN' ? known : target.idempotencyOf(path);
      },
      pickContext,
    }, now, held);
    call.start(endpoint);
    return;
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
}

export function createStreamHandler(router: () => Router, descriptors?: IdempotencyCatalog): StreamHandler {
  return function handleStream(stream, headers) {
    const contentType = headers['content-type'];
    if (contentType === undefined || !contentType.startsWith('application/grpc')) {
      stream.on('error', () => {});
      rejectNonGrpc(stream, contentType);
      return;
    }
    const authority = headers[':authority'] ?? headers.host;
    const route = authority === undefined ? undefined : router().resolve(authority, headers[':path'], headers);
    if (route === undefined) {
      noRoute(stream, authority);
      return;
    }
    if (headers.host !== undefined) delete headers.host;
    const rec = recordOf(stream);
    if (rec !== undefined) rec.destination = route.service;
    const mirror = route.mirror;
    if (mirror !== undefined && Math.random() * 100 < mirror.percent) startMirror(stream, headers, mirror.cluster, pickContext);
    const fault = route.policy.fault;
    const decision = fault === undefined ? undefined : decideFault(fault, headers, Math.random, route.name);
    if (decision === undefined) return dispatch(stream, headers, route, descriptors);
    stream.on('error', () => {});
    const act = (): void => {
      if (decision.abort) respondWithError(stream, decision.abort.code, decision.abort.message, 'fault');
      else dispatch(stream, headers, route, descriptors);
    };
    if (decision.delayMs > 0) setTimeout(act, decision.delayMs);
    else act();
  };
}
