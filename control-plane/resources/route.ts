/**
 * Route spec: which calls to a service a route takes (method, headers), where they go (one
 * cluster or a weighted split, plus a failover), and the policy they get (timeouts, retries,
 * faults). Every block's validator is exported: the sidecar checks its route config with these
 * same functions (sidecar/config/validate.ts), so the two can never disagree on a range or a rule.
 *
 * Fields whose default the sidecar applies (grpcTimeout, the newer retry fields) stay absent when
 * not written, so a stored route shows what its author wrote; the defaults are exported below.
 */
import { Checker, type Obj } from '../../lib/validate.js';
import { at, block, dnsLabel, statusNames, text } from './fields.js';
import {
  GRPC_STATUS_NAMES,
  type FaultSpec,
  type HeaderMatch,
  type MethodMatch,
  type RetrySpec,
  type RouteSpec,
  type WeightedDestination,
} from './types.js';

const DNS_HINT = 'lower-case DNS label';
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** HTTP/2 sends header names in lower case only; pseudo-headers (`:path`) are not matched here. */
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const HEADER_HINT = 'a lower-case HTTP header name';
/** `/package.Service/Method`, the only shape a gRPC `:path` has. */
const METHOD_PATH = /^\/[^/\s]+\/[^/\s]+$/;

export const ROUTE_SPEC_FIELDS = [
  'match', 'cluster', 'destinations', 'failover', 'timeoutMs', 'grpcTimeout', 'idleTimeoutMs', 'retries', 'fault', 'mirror',
] as const;

export const GRPC_TIMEOUT_MODES = ['CAP', 'HONOR', 'IGNORE'] as const;
export type GrpcTimeoutMode = (typeof GRPC_TIMEOUT_MODES)[number];

/** What the sidecar uses for a field the route leaves out. */
export const DEFAULT_GRPC_TIMEOUT: GrpcTimeoutMode = 'CAP';
export const RETRY_DEFAULTS = Object.freeze({
  maxAttempts: 2,
  backoffBaseMs: 25,
  backoffMaxMs: 250,
  budgetPercent: 20,
  minRetriesPerSecond: 10,
  retryNonIdempotent: false,
  replayBufferBytes: 65_536,
});

/** A split's weights are relative; 10000 allows shares down to 0.01% without floating point. */
export const MAX_DESTINATION_WEIGHT = 10_000;
export const MAX_REPLAY_BUFFER_BYTES = 16 * 1024 * 1024;
/**
 * Header regexes run per call on values the caller chooses, on a backtracking engine: a short
 * pattern bounds how bad an operator's mistake can get (it does not prevent catastrophic patterns).
 */
export const MAX_REGEX_LENGTH = 1_024;

/**
 * The one way a header regex is compiled, at validation and in the route table, so a pattern that
 * validated is the pattern that runs. The raw pattern is compiled first: wrapped alone, `a)|(b`
 * would turn into a valid but different expression. Throws SyntaxError.
 */
export function compileHeaderRegex(pattern: string): RegExp {
  new RegExp(pattern, 'u');
  return new RegExp(`^(?:${pattern})$`, 'u');
}

function regexProblem(pattern: string): string | undefined {
  if (pattern.length > MAX_REGEX_LENGTH) return `must be at most ${MAX_REGEX_LENGTH} characters, got ${pattern.length}`;
  try {
    compileHeaderRegex(pattern);
    return undefined;
  } catch (err) {
    const why = (err as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
    return `${JSON.stringify(pattern)} is not a valid regular expression: ${why}`;
  }
}

/** Exactly one of `keys` is set in `o`; otherwise a problem at `path` and false. */
function exactlyOne(c: Checker, o: Obj, path: string, keys: readonly string[]): boolean {
  const set = keys.filter((k) => o[k] !== undefined);
  if (set.length === 1) return true;
  c.fail(path, set.length === 0 ? `must set one of ${keys.join(', ')}` : `must set only one of ${keys.join(', ')}, got ${set.join(' and ')}`);
  return false;
}

export function checkMethodMatch(c: Checker, v: unknown, path: string): MethodMatch | undefined {
  const o = block(c, v, path, ['exact', 'prefix']);
  if (!o || !exactlyOne(c, o, path, ['exact', 'prefix'])) return undefined;
  if (o.exact !== undefined) {
    const exact = c.string(o.exact, at(path, 'exact'), METHOD_PATH, 'a gRPC method path: /package.Service/Method');
    return exact === undefined ? undefined : { exact };
  }
  const prefix = c.string(o.prefix, at(path, 'prefix'), /^\/\S*$/, 'a gRPC method path prefix starting with /, such as /package.Service/');
  return prefix === undefined ? undefined : { prefix };
}

export function checkHeaderName(c: Checker, v: unknown, path: string): string | undefined {
  if (typeof v === 'string' && v !== v.toLowerCase() && HEADER_NAME.test(v.toLowerCase())) {
    return c.fail(path, `${JSON.stringify(v)} must be lower case (HTTP/2 header names are): ${JSON.stringify(v.toLowerCase())}`);
  }
  return c.string(v, path, HEADER_NAME, HEADER_HINT);
}

export function checkHeaderMatch(c: Checker, v: unknown, path: string): HeaderMatch | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.known(o, path, ['name', 'exact', 'regex', 'present']);
  const name = checkHeaderName(c, o.name, at(path, 'name'));
  if (!exactlyOne(c, o, path, ['exact', 'regex', 'present'])) return undefined;
  if (o.exact !== undefined) {
    const exact = text(c, o.exact, at(path, 'exact'));
    return name === undefined || exact === undefined ? undefined : { name, exact };
  }
  if (o.regex !== undefined) {
    const regex = c.string(o.regex, at(path, 'regex'));
    const problem = regex === undefined ? undefined : regexProblem(regex);
    if (problem !== undefined) c.fail(at(path, 'regex'), problem);
    return name === undefined || regex === undefined || problem !== undefined ? undefined : { name, regex };
  }
  const present = c.bool(o.present, at(path, 'present'));
  return name === undefined || present === undefined ? undefined : { name, present };
}

export function checkRouteMatch(c: Checker, v: unknown, path: string): RouteSpec['match'] | undefined {
  const m = c.object(v, path);
  if (!m) return undefined;
  c.known(m, path, ['service', 'method', 'headers']);
  const service = dnsLabel(c, m.service, at(path, 'service'), DNS_HINT);
  const method = m.method === undefined ? undefined : checkMethodMatch(c, m.method, at(path, 'method'));
  let headers: HeaderMatch[] | undefined;
  let headersOk = true;
  if (m.headers !== undefined) {
    const hp = at(path, 'headers');
    const list = c.array(m.headers, hp);
    if (list?.length === 0) c.fail(hp, 'must list at least one header match (or be left out)');
    headers = [];
    const seen = new Set<string>();
    const items = list ?? [];
    for (let i = 0; i < items.length; i++) {
      const one = checkHeaderMatch(c, items[i], `${hp}[${i}]`);
      if (!one) continue;
      // One matcher per header keeps "identical match" and specificity (matcher count) meaningful.
      if (seen.has(one.name)) c.fail(`${hp}[${i}].name`, `header ${JSON.stringify(one.name)} is already matched by this route`);
      else headers.push(one);
      seen.add(one.name);
    }
    headersOk = list !== undefined && list.length > 0 && headers.length === list.length;
  }
  if (service === undefined || (m.method !== undefined && method === undefined) || !headersOk) return undefined;
  return { service, ...(method ? { method } : {}), ...(headers ? { headers } : {}) };
}

export function checkDestinations(c: Checker, v: unknown, path: string): WeightedDestination[] | undefined {
  const list = c.array(v, path);
  if (!list) return undefined;
  if (list.length === 0) return c.fail(path, 'must list at least one destination');
  const out: WeightedDestination[] = [];
  const seen = new Set<string>();
  list.forEach((d, i) => {
    const p = `${path}[${i}]`;
    const o = c.object(d, p);
    if (!o) return;
    c.known(o, p, ['cluster', 'weight']);
    const cluster = dnsLabel(c, o.cluster, at(p, 'cluster'), DNS_HINT);
    const weight = c.int(o.weight, at(p, 'weight'), 0, MAX_DESTINATION_WEIGHT);
    const repeated = cluster !== undefined && seen.has(cluster);
    if (repeated) c.fail(at(p, 'cluster'), `${JSON.stringify(cluster)} is already a destination of this route`);
    if (cluster !== undefined) seen.add(cluster);
    if (cluster !== undefined && weight !== undefined && !repeated) out.push({ cluster, weight });
  });
  if (out.length !== list.length) return undefined;
  // Weight 0 parks a destination (a canary rolled back to nothing) without deleting it; all zero routes nowhere.
  if (!out.some((d) => d.weight > 0)) return c.fail(path, 'at least one weight must be above 0');
  return out;
}

export function checkRetries(c: Checker, v: unknown, path: string): RetrySpec | undefined {
  const o = block(c, v, path, [
    'maxAttempts', 'retryOn', 'perTryTimeoutMs', 'backoffBaseMs', 'backoffMaxMs',
    'budgetPercent', 'minRetriesPerSecond', 'retryNonIdempotent', 'replayBufferBytes',
  ]);
  if (!o) return undefined;
  const maxAttempts = c.int(o.maxAttempts, at(path, 'maxAttempts'), 1, 10, RETRY_DEFAULTS.maxAttempts);
  const retryOn = statusNames(c, o.retryOn, at(path, 'retryOn'), ['UNAVAILABLE']);
  const perTryTimeoutMs = o.perTryTimeoutMs === undefined ? undefined : c.int(o.perTryTimeoutMs, at(path, 'perTryTimeoutMs'), 1, HOUR_MS);
  const backoffBaseMs = c.int(o.backoffBaseMs, at(path, 'backoffBaseMs'), 1, 60_000, RETRY_DEFAULTS.backoffBaseMs);
  const backoffMaxMs = c.int(o.backoffMaxMs, at(path, 'backoffMaxMs'), 1, 600_000, RETRY_DEFAULTS.backoffMaxMs);
  if (backoffBaseMs !== undefined && backoffMaxMs !== undefined && backoffMaxMs < backoffBaseMs) {
    c.fail(at(path, 'backoffMaxMs'), `must be at least backoffBaseMs (${backoffBaseMs}), got ${backoffMaxMs}`);
  }
  // Percentages may be fractional (a 0.5% budget on a very busy route); counts and sizes may not.
  const budgetPercent = o.budgetPercent === undefined ? undefined : c.number(o.budgetPercent, at(path, 'budgetPercent'), 0, 100);
  const minRetriesPerSecond =
    o.minRetriesPerSecond === undefined ? undefined : c.int(o.minRetriesPerSecond, at(path, 'minRetriesPerSecond'), 0, 10_000);
  const retryNonIdempotent = o.retryNonIdempotent === undefined ? undefined : c.bool(o.retryNonIdempotent, at(path, 'retryNonIdempotent'));
  const replayBufferBytes =
    o.replayBufferBytes === undefined ? undefined : c.int(o.replayBufferBytes, at(path, 'replayBufferBytes'), 0, MAX_REPLAY_BUFFER_BYTES);
  if (maxAttempts === undefined || backoffBaseMs === undefined || backoffMaxMs === undefined) return undefined;
  return {
    maxAttempts,
    retryOn,
    ...(perTryTimeoutMs !== undefined ? { perTryTimeoutMs } : {}),
    backoffBaseMs,
    backoffMaxMs,
    ...(budgetPercent !== undefined ? { budgetPercent } : {}),
    ...(minRetriesPerSecond !== undefined ? { minRetriesPerSecond } : {}),
    ...(retryNonIdempotent !== undefined ? { retryNonIdempotent } : {}),
    ...(replayBufferBytes !== undefined ? { replayBufferBytes } : {}),
  };
}

function percent(c: Checker, v: unknown, path: string): number | undefined {
  // Absent: every call (of those the fault applies to). Fractions allowed: 0.1% aborts is a common drill.
  return c.number(v, path, 0, 100, 100);
}

export function checkFault(c: Checker, v: unknown, path: string): FaultSpec | undefined {
  const o = block(c, v, path, ['delay', 'abort', 'onlyWithHeader']);
  if (!o) return undefined;
  if (o.delay === undefined && o.abort === undefined) return c.fail(path, 'must set delay, abort or both');
  let delay: FaultSpec['delay'];
  let abort: FaultSpec['abort'];
  let only: FaultSpec['onlyWithHeader'];
  let ok = true;
  if (o.delay !== undefined) {
    const d = block(c, o.delay, at(path, 'delay'), ['fixedMs', 'percent']);
    const fixedMs = d ? c.int(d.fixedMs, at(path, 'delay.fixedMs'), 0, HOUR_MS) : undefined;
    const pct = d ? percent(c, d.percent, at(path, 'delay.percent')) : undefined;
    if (fixedMs !== undefined && pct !== undefined) delay = { fixedMs, percent: pct };
    else ok = false;
  }
  if (o.abort !== undefined) {
    const a = block(c, o.abort, at(path, 'abort'), ['status', 'percent', 'message']);
    const status = a ? c.oneOf(a.status, at(path, 'abort.status'), GRPC_STATUS_NAMES) : undefined;
    const pct = a ? percent(c, a.percent, at(path, 'abort.percent')) : undefined;
    const message = a?.message === undefined ? undefined : text(c, a.message, at(path, 'abort.message'));
    if (status !== undefined && pct !== undefined && (a?.message === undefined || message !== undefined)) {
      abort = { status, percent: pct, ...(message !== undefined ? { message } : {}) };
    } else ok = false;
  }
  if (o.onlyWithHeader !== undefined) {
    const h = block(c, o.onlyWithHeader, at(path, 'onlyWithHeader'), ['name', 'exact']);
    const name = h ? checkHeaderName(c, h.name, at(path, 'onlyWithHeader.name')) : undefined;
    const exact = h?.exact === undefined ? undefined : text(c, h.exact, at(path, 'onlyWithHeader.exact'));
    if (name !== undefined && (h?.exact === undefined || exact !== undefined)) only = { name, ...(exact !== undefined ? { exact } : {}) };
    else ok = false;
  }
  if (!ok) return undefined;
  return { ...(delay ? { delay } : {}), ...(abort ? { abort } : {}), ...(only ? { onlyWithHeader: only } : {}) };
}

export function checkMirror(c: Checker, v: unknown, path: string): RouteSpec['mirror'] | undefined {
  const o = block(c, v, path, ['cluster', 'percent']);
  if (!o) return undefined;
  const cluster = dnsLabel(c, o.cluster, at(path, 'cluster'), DNS_HINT);
  const pct = o.percent === undefined ? undefined : percent(c, o.percent, at(path, 'percent'));
  if (cluster === undefined || (o.percent !== undefined && pct === undefined)) return undefined;
  return { cluster, ...(pct !== undefined ? { percent: pct } : {}) };
}

/**
 * Every RouteSpec field of `o`, without the unknown-field check: the Route resource's spec and the
 * sidecar's route entry (which adds `name`) each check their own field list, then call this.
 */
export function checkRouteFields(c: Checker, o: Obj, path: string): RouteSpec | undefined {
  const match = checkRouteMatch(c, o.match, at(path, 'match'));
  let cluster: string | undefined;
  let destinations: WeightedDestination[] | undefined;
  let targetOk = true;
  if (o.cluster !== undefined && o.destinations !== undefined) {
    c.fail(at(path, 'destinations'), 'use either cluster (one cluster) or destinations (a weighted split), not both');
    targetOk = false;
  } else if (o.destinations !== undefined) {
    destinations = checkDestinations(c, o.destinations, at(path, 'destinations'));
    targetOk = destinations !== undefined;
  } else {
    // Neither: reported as a missing cluster, the common case (a split is the exception).
    cluster = dnsLabel(c, o.cluster, at(path, 'cluster'), DNS_HINT);
    targetOk = cluster !== undefined;
  }
  const failover = o.failover === undefined ? undefined : dnsLabel(c, o.failover, at(path, 'failover'), DNS_HINT);
  const timeoutMs = o.timeoutMs === undefined ? undefined : c.int(o.timeoutMs, at(path, 'timeoutMs'), 1, HOUR_MS);
  const grpcTimeout = o.grpcTimeout === undefined ? undefined : c.oneOf(o.grpcTimeout, at(path, 'grpcTimeout'), GRPC_TIMEOUT_MODES);
  const idleTimeoutMs = o.idleTimeoutMs === undefined ? undefined : c.int(o.idleTimeoutMs, at(path, 'idleTimeoutMs'), 1, DAY_MS);
  const retries = checkRetries(c, o.retries, at(path, 'retries'));
  const fault = checkFault(c, o.fault, at(path, 'fault'));
  const mirror = checkMirror(c, o.mirror, at(path, 'mirror'));
  if (retries?.perTryTimeoutMs !== undefined && timeoutMs !== undefined && retries.perTryTimeoutMs > timeoutMs) {
    c.fail(at(path, 'retries.perTryTimeoutMs'), `must not exceed timeoutMs (${timeoutMs}), got ${retries.perTryTimeoutMs}`);
  }
  const optionalOk =
    (o.failover === undefined || failover !== undefined) &&
    (o.timeoutMs === undefined || timeoutMs !== undefined) &&
    (o.grpcTimeout === undefined || grpcTimeout !== undefined) &&
    (o.idleTimeoutMs === undefined || idleTimeoutMs !== undefined) &&
    (o.retries === undefined || retries !== undefined) &&
    (o.fault === undefined || fault !== undefined) &&
    (o.mirror === undefined || mirror !== undefined);
  if (match === undefined || !targetOk || !optionalOk) return undefined;
  return {
    match,
    ...(cluster !== undefined ? { cluster } : {}),
    ...(destinations !== undefined ? { destinations } : {}),
    ...(failover !== undefined ? { failover } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(grpcTimeout !== undefined ? { grpcTimeout } : {}),
    ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
    ...(retries ? { retries } : {}),
    ...(fault ? { fault } : {}),
    ...(mirror ? { mirror } : {}),
  };
}

export function checkRouteSpec(c: Checker, spec: Obj, path: string): RouteSpec | undefined {
  c.known(spec, path, ROUTE_SPEC_FIELDS);
  return checkRouteFields(c, spec, path);
}

/**
 * A canonical text of what a route matches: two routes with the same key would compete for the
 * same calls with nothing to choose between them, so the sidecar rejects that. Header order does
 * not matter.
 */
export function routeMatchKey(match: RouteSpec['match']): string {
  const method = match.method?.exact !== undefined ? `=${match.method.exact}` : match.method?.prefix !== undefined ? `^${match.method.prefix}` : '';
  const headers = (match.headers ?? []).map((h) => JSON.stringify([h.name, h.exact, h.regex, h.present])).sort();
  return JSON.stringify([match.service, method, headers]);
}
