/**
 * Which gRPC statuses count against an endpoint for outlier detection. A status is the endpoint's
 * failure only when it says the endpoint could not do the work (UNAVAILABLE, INTERNAL); NOT_FOUND
 * or INVALID_ARGUMENT are the application's answer and say nothing about the endpoint's health.
 * Connect failures and stream resets carry no status: the caller records those as failures directly.
 */
import { Status } from '../grpc/status.js';
import type { OutlierDetectionSpec } from '../config/model.js';

export type CallOutcome = 'success' | 'failure';

export const DEFAULT_FAILURE_CODES: ReadonlySet<number> = new Set([Status.UNAVAILABLE, Status.INTERNAL]);

/** The defaults plus the configured names: issue 4 lists configured codes as additions, not replacements. */
export function failureCodesFor(statusCodes: OutlierDetectionSpec['statusCodes']): ReadonlySet<number> {
  const codes = new Set<number>(DEFAULT_FAILURE_CODES);
  for (const name of statusCodes) codes.add(Status[name]);
  return codes;
}

/** OK and every status outside failureCodes is a success: the endpoint answered. */
export function classifyStatus(code: number, failureCodes: ReadonlySet<number>): CallOutcome {
  return failureCodes.has(code) ? 'failure' : 'success';
}
