/** The `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n), per the gRPC HTTP/2 spec. */
const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** Milliseconds, or undefined for an absent or malformed header (treated as "no deadline"). */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** The shortest exact-enough encoding of a remaining time: milliseconds while they fit in 8 digits. */
export function encodeGrpcTimeout(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  return whole < 100_000_000 ? `${whole}m` : `${Math.min(99_999_999, Math.ceil(whole / 1000))}S`;
}

import type { RouteSpec } from '../../control-plane/resources/types.js';

export type GrpcTimeoutMode = NonNullable<RouteSpec['grpcTimeout']>;

/**
 * The call's deadline budget in ms from now: the route timeout and the caller's grpc-timeout,
 * combined as the route says (CAP: the smaller; HONOR: the caller's when given; IGNORE: the
 * route's). Undefined: no deadline at all.
 */
export function effectiveTimeoutMs(routeTimeoutMs: number | undefined, callerMs: number | undefined, mode: GrpcTimeoutMode): number | undefined {
  if (mode === 'IGNORE') return routeTimeoutMs;
  if (mode === 'HONOR') return callerMs ?? routeTimeoutMs;
  if (routeTimeoutMs === undefined) return callerMs;
  return callerMs === undefined ? routeTimeoutMs : Math.min(routeTimeoutMs, callerMs);
}
