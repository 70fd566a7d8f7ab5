/**
 * The per-endpoint fault policy for etcd3. etcd3's default opens a breaker for 5 s after three
 * failures in a row; after an etcd restart that keeps the control plane away from a healthy etcd
 * for up to 5 s more (watch, lease grant, writes). This one opens for 1 s: long enough that a
 * dead endpoint in a list is skipped instead of costing a call deadline each time, short enough
 * that recovery is not delayed noticeably.
 */
import { isRecoverableError, type IOptions } from 'etcd3';

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

const FAILURES_TO_OPEN = 3;

export class EndpointSkippedError extends Error {
  readonly code = 'REMORA_ETCD_ENDPOINT_SKIPPED';
  constructor(host: string, ms: number) {
    super(`etcd endpoint ${host} skipped for ${ms} ms after ${FAILURES_TO_OPEN} failures in a row`);
    // etcd3 and the CLI recognise an open breaker by this name.
    this.name = 'BrokenCircuitError';
  }
}

// Nobody subscribes to these events (etcd3 does not); they exist to satisfy the policy interface.
const noEvents = (() => ({ dispose: () => undefined })) as unknown as HostPolicy['onSuccess'] & HostPolicy['onFailure'];

export function hostBreaker(host: string, openMs = 1_000): HostPolicy {
  let failures = 0;
  let openUntil = 0;
  const policy = {
    onSuccess: noEvents,
    onFailure: noEvents,
    async execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
      if (Date.now() < openUntil) throw new EndpointSkippedError(host, openUntil - Date.now());
      try {
        const result = await fn({ signal: signal ?? new AbortController().signal });
        failures = 0;
        return result;
      } catch (err) {
        if (err instanceof Error && isRecoverableError(err) && ++failures >= FAILURES_TO_OPEN) {
          openUntil = Date.now() + openMs;
          failures = 0;
        }
        throw err;
      }
    },
  };
  return policy as unknown as HostPolicy;
}
