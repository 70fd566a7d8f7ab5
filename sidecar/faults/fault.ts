/**
 * Fault injection for chaos drills: given a route's FaultSpec and one request's headers, decide
 * whether this call is delayed, aborted, both, or left alone. Pure: randomness comes in as a
 * function so tests can seed it and the stream handler can pass Math.random. Applying the decision
 * (waiting, answering with a status) is the caller's job.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import type { FaultSpec } from '../../control-plane/resources/types.js';
import { Status, type StatusCode } from '../grpc/status.js';

export interface FaultAbort {
  readonly code: StatusCode;
  readonly message: string;
}

export interface FaultDecision {
  /** Wait this long before going on (0 = no delay). A delay is applied before an abort, as Envoy does. */
  readonly delayMs: number;
  /** Then answer with this status instead of forwarding the call. */
  readonly abort?: FaultAbort;
}

/**
 * undefined when no fault applies, which is nearly every call on a route with a fault spec: that
 * path allocates nothing. Delay and abort draw independently, so with delay 50% and abort 10%
 * about 5% of calls get both.
 */
export function decideFault(
  spec: FaultSpec,
  headers: IncomingHttpHeaders,
  random: () => number,
  routeName: string,
): FaultDecision | undefined {
  const gate = spec.onlyWithHeader;
  if (gate !== undefined && !headerMatches(headers[gate.name], gate.exact)) return undefined;

  const delay = spec.delay;
  const delayed = delay !== undefined && delay.fixedMs > 0 && hits(delay.percent ?? 100, random);
  const abort = spec.abort;
  const aborted = abort !== undefined && hits(abort.percent ?? 100, random);
  if (!delayed && !aborted) return undefined;

  const delayMs = delayed ? delay.fixedMs : 0;
  if (!aborted) return { delayMs };
  return { delayMs, abort: { code: Status[abort.status], message: abort.message ?? `remora: fault injected by route ${routeName}` } };
}

/**
 * percent is 0..100. random() is in [0, 1), so 100 always hits and 0 never does; 0 skips the draw
 * entirely, which keeps the draws of a delay-only or abort-only spec aligned with the rates.
 */
function hits(percent: number, random: () => number): boolean {
  if (percent <= 0) return false;
  if (percent >= 100) return true;
  return random() * 100 < percent;
}

/**
 * node lower-cases incoming header names, so `name` must be lower case (route validation says so).
 * Repeated headers arrive joined with ", " except set-cookie, which is an array: any element counts.
 */
function headerMatches(value: string | string[] | undefined, exact: string | undefined): boolean {
  if (value === undefined) return false;
  if (exact === undefined) return true;
  if (typeof value === 'string') return value === exact;
  return value.includes(exact);
}
