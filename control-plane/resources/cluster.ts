/**
 * Cluster spec: the policy for calls to one service (or a labelled subset of its instances, or a
 * fixed endpoint list). The policy blocks' validators are exported: the sidecar validates pushed
 * and static config with these same functions, so the two can never disagree on a range.
 */
import { Checker, type Obj } from '../../lib/validate.js';
import { at, block, dnsLabel, statusNames, text } from './fields.js';
import {
  LOAD_BALANCING_POLICIES,
  type CircuitBreakersSpec,
  type ClusterSpec,
  type HealthCheckSpec,
  type LoadBalancingSpec,
  type OutlierDetectionSpec,
} from './types.js';

type Endpoint = ClusterSpec['endpoints'][number];

/** A Cluster resource's spec as validated: ClusterSpec and the panic threshold. */
export type ClusterResourceSpec = ClusterSpec & { readonly panicThresholdPercent: number };

/** Envoy's default healthy panic threshold (sidecar/health/panic-threshold.ts). */
export const DEFAULT_PANIC_THRESHOLD_PERCENT = 50;

const HTTP_HEADER = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

const SPIFFE_ID = /^spiffe:\/\/[a-z0-9.-]+\/ns\/[a-z0-9]([-a-z0-9]*[a-z0-9])?\/sa\/[A-Za-z0-9._-]+$/;

export function checkStaticEndpoint(c: Checker, v: unknown, path: string): Endpoint | undefined {
  const o = c.object(v, path);
  if (!o) return undefined;
  c.known(o, path, ['address', 'port', 'weight', 'labels', 'identity']);
  const address = c.string(o.address, at(path, 'address'));
  const port = c.int(o.port, at(path, 'port'), 1, 65535);
  const weight = c.int(o.weight, at(path, 'weight'), 1, 1_000_000, 1);
  const labels = c.labels(o.labels, at(path, 'labels'));
  const identity = o.identity === undefined
    ? undefined
    : c.string(o.identity, at(path, 'identity'), SPIFFE_ID, 'spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>');
  if (address === undefined || port === undefined || weight === undefined) return undefined;
  return { address, port, weight, labels, ...(identity !== undefined ? { identity } : {}) };
}

export function checkLoadBalancing(c: Checker, v: unknown, path: string): LoadBalancingSpec | undefined {
  const o = block(c, v, path, ['policy', 'hashHeader']);
  if (!o) return undefined;
  const policy = c.oneOf(o.policy, at(path, 'policy'), LOAD_BALANCING_POLICIES);
  if (policy === 'RING_HASH') {
    const hashHeader = c.string(o.hashHeader, at(path, 'hashHeader'), HTTP_HEADER, 'a lower-case HTTP header name');
    return hashHeader === undefined ? undefined : { policy, hashHeader };
  }
  if (o.hashHeader !== undefined) c.fail(at(path, 'hashHeader'), 'is only used with policy RING_HASH');
  return policy === undefined ? undefined : { policy };
}

export function checkHealthCheck(c: Checker, v: unknown, path: string): HealthCheckSpec | undefined {
  const o = block(c, v, path, ['intervalMs', 'timeoutMs', 'healthyThreshold', 'unhealthyThreshold', 'jitterMs', 'serviceName']);
  if (!o) return undefined;
  const intervalMs = c.int(o.intervalMs, at(path, 'intervalMs'), 100, 3_600_000, 5_000);
  const timeoutMs = c.int(o.timeoutMs, at(path, 'timeoutMs'), 1, 60_000, 1_000);
  const healthyThreshold = c.int(o.healthyThreshold, at(path, 'healthyThreshold'), 1, 100, 1);
  const unhealthyThreshold = c.int(o.unhealthyThreshold, at(path, 'unhealthyThreshold'), 1, 100, 3);
  // A tenth of the interval by default: enough to keep a thousand sidecars from checking in lockstep.
  const jitterMs = c.int(o.jitterMs, at(path, 'jitterMs'), 0, 3_600_000, Math.floor((intervalMs ?? 5_000) / 10));
  const serviceName = text(c, o.serviceName, at(path, 'serviceName'), '');
  if (intervalMs !== undefined && timeoutMs !== undefined && timeoutMs > intervalMs) {
    c.fail(at(path, 'timeoutMs'), `must not exceed intervalMs (${intervalMs}), got ${timeoutMs}`);
  }
  if (
    intervalMs === undefined || timeoutMs === undefined || healthyThreshold === undefined ||
    unhealthyThreshold === undefined || jitterMs === undefined || serviceName === undefined
  ) return undefined;
  return { intervalMs, timeoutMs, healthyThreshold, unhealthyThreshold, jitterMs, serviceName };
}

export function checkOutlierDetection(c: Checker, v: unknown, path: string): OutlierDetectionSpec | undefined {
  const o = block(c, v, path, ['consecutiveFailures', 'baseEjectionMs', 'maxEjectionMs', 'maxEjectionPercent', 'statusCodes']);
  if (!o) return undefined;
  const consecutiveFailures = c.int(o.consecutiveFailures, at(path, 'consecutiveFailures'), 1, 1_000, 5);
  const baseEjectionMs = c.int(o.baseEjectionMs, at(path, 'baseEjectionMs'), 1, 3_600_000, 30_000);
  const maxEjectionMs = c.int(o.maxEjectionMs, at(path, 'maxEjectionMs'), 1, 86_400_000, 300_000);
  const maxEjectionPercent = c.int(o.maxEjectionPercent, at(path, 'maxEjectionPercent'), 0, 100, 10);
  const statusCodes = statusNames(c, o.statusCodes, at(path, 'statusCodes'), ['UNAVAILABLE', 'INTERNAL']);
  if (baseEjectionMs !== undefined && maxEjectionMs !== undefined && maxEjectionMs < baseEjectionMs) {
    c.fail(at(path, 'maxEjectionMs'), `must be at least baseEjectionMs (${baseEjectionMs}), got ${maxEjectionMs}`);
  }
  if (consecutiveFailures === undefined || baseEjectionMs === undefined || maxEjectionMs === undefined || maxEjectionPercent === undefined) {
    return undefined;
  }
  return { consecutiveFailures, baseEjectionMs, maxEjectionMs, maxEjectionPercent, statusCodes };
}

export function checkCircuitBreakers(c: Checker, v: unknown, path: string): CircuitBreakersSpec | undefined {
  const o = block(c, v, path, ['maxConnections', 'maxPendingRequests', 'maxRequests', 'maxRetries']);
  if (!o) return undefined;
  // Envoy's defaults, which operators already know how to reason about.
  const maxConnections = c.int(o.maxConnections, at(path, 'maxConnections'), 1, 1_000_000, 1024);
  const maxPendingRequests = c.int(o.maxPendingRequests, at(path, 'maxPendingRequests'), 0, 1_000_000, 1024);
  const maxRequests = c.int(o.maxRequests, at(path, 'maxRequests'), 1, 1_000_000, 1024);
  const maxRetries = c.int(o.maxRetries, at(path, 'maxRetries'), 0, 1_000_000, 3);
  if (maxConnections === undefined || maxPendingRequests === undefined || maxRequests === undefined || maxRetries === undefined) {
    return undefined;
  }
  return { maxConnections, maxPendingRequests, maxRequests, maxRetries };
}

/** The share of healthy endpoints (percent) below which calls go to every endpoint; 0 never. */
export function checkPanicThreshold(c: Checker, v: unknown, path: string): number | undefined {
  return c.int(v, path, 0, 100, DEFAULT_PANIC_THRESHOLD_PERCENT);
}

export function checkClusterSpec(c: Checker, spec: Obj, path: string, name: string): ClusterResourceSpec | undefined {
  c.known(spec, path, [
    'service', 'subset', 'endpoints', 'connectTimeoutMs', 'maxSessionAgeMs',
    'loadBalancing', 'healthCheck', 'outlierDetection', 'circuitBreakers', 'panicThresholdPercent',
  ]);
  const service = spec.service === undefined ? name : dnsLabel(c, spec.service, at(path, 'service'), 'lower-case DNS label');
  const subset = c.labels(spec.subset, at(path, 'subset'));
  const endpoints = (c.array(spec.endpoints, at(path, 'endpoints')) ?? [])
    .map((e, i) => checkStaticEndpoint(c, e, `${at(path, 'endpoints')}[${i}]`))
    .filter((e): e is Endpoint => e !== undefined);
  const connectTimeoutMs = c.int(spec.connectTimeoutMs, at(path, 'connectTimeoutMs'), 1, 600_000, 5_000);
  const maxSessionAgeMs = c.int(spec.maxSessionAgeMs, at(path, 'maxSessionAgeMs'), 1_000, 86_400_000, 300_000);
  const lb = checkLoadBalancing(c, spec.loadBalancing, at(path, 'loadBalancing'));
  const hc = checkHealthCheck(c, spec.healthCheck, at(path, 'healthCheck'));
  const od = checkOutlierDetection(c, spec.outlierDetection, at(path, 'outlierDetection'));
  const cb = checkCircuitBreakers(c, spec.circuitBreakers, at(path, 'circuitBreakers'));
  const panicThresholdPercent = checkPanicThreshold(c, spec.panicThresholdPercent, at(path, 'panicThresholdPercent'));
  if (service === undefined || connectTimeoutMs === undefined || maxSessionAgeMs === undefined || panicThresholdPercent === undefined) return undefined;
  return {
    service,
    subset,
    endpoints,
    connectTimeoutMs,
    maxSessionAgeMs,
    panicThresholdPercent,
    ...(lb ? { loadBalancing: lb } : {}),
    ...(hc ? { healthCheck: hc } : {}),
    ...(od ? { outlierDetection: od } : {}),
    ...(cb ? { circuitBreakers: cb } : {}),
  };
}
