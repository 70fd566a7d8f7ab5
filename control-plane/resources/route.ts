/** Route spec: which cluster a service's calls go to, and (from issue 5) its timeout and retries. */
import { Checker, DNS_LABEL, type Obj } from '../../lib/validate.js';
import { at, block, statusNames } from './fields.js';
import type { RetrySpec, RouteSpec } from './types.js';

const DNS_HINT = 'lower-case DNS label';
const HOUR_MS = 3_600_000;

function retries(c: Checker, v: unknown, path: string): RetrySpec | undefined {
  const o = block(c, v, path, ['maxAttempts', 'retryOn', 'perTryTimeoutMs', 'backoffBaseMs', 'backoffMaxMs']);
  if (!o) return undefined;
  const maxAttempts = c.int(o.maxAttempts, at(path, 'maxAttempts'), 1, 10, 2);
  const retryOn = statusNames(c, o.retryOn, at(path, 'retryOn'), ['UNAVAILABLE']);
  const perTryTimeoutMs = o.perTryTimeoutMs === undefined ? undefined : c.int(o.perTryTimeoutMs, at(path, 'perTryTimeoutMs'), 1, HOUR_MS);
  const backoffBaseMs = c.int(o.backoffBaseMs, at(path, 'backoffBaseMs'), 1, 60_000, 25);
  const backoffMaxMs = c.int(o.backoffMaxMs, at(path, 'backoffMaxMs'), 1, 600_000, 250);
  if (backoffBaseMs !== undefined && backoffMaxMs !== undefined && backoffMaxMs < backoffBaseMs) {
    c.fail(at(path, 'backoffMaxMs'), `must be at least backoffBaseMs (${backoffBaseMs}), got ${backoffMaxMs}`);
  }
  if (maxAttempts === undefined || backoffBaseMs === undefined || backoffMaxMs === undefined) return undefined;
  return {
    maxAttempts,
    retryOn,
    ...(perTryTimeoutMs !== undefined ? { perTryTimeoutMs } : {}),
    backoffBaseMs,
    backoffMaxMs,
  };
}

export function checkRouteSpec(c: Checker, spec: Obj, path: string): RouteSpec | undefined {
  c.known(spec, path, ['match', 'cluster', 'failover', 'timeoutMs', 'retries']);
  const m = c.object(spec.match, at(path, 'match'));
  if (m) c.known(m, at(path, 'match'), ['service']);
  const service = m ? c.string(m.service, at(path, 'match.service'), DNS_LABEL, DNS_HINT) : undefined;
  const cluster = c.string(spec.cluster, at(path, 'cluster'), DNS_LABEL, DNS_HINT);
  const failover = spec.failover === undefined ? undefined : c.string(spec.failover, at(path, 'failover'), DNS_LABEL, DNS_HINT);
  const timeoutMs = spec.timeoutMs === undefined ? undefined : c.int(spec.timeoutMs, at(path, 'timeoutMs'), 1, HOUR_MS);
  const retry = retries(c, spec.retries, at(path, 'retries'));
  if (service === undefined || cluster === undefined) return undefined;
  return {
    match: { service },
    cluster,
    ...(failover !== undefined ? { failover } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(retry ? { retries: retry } : {}),
  };
}
