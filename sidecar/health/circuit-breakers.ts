/**
 * Per-cluster circuit breakers in Envoy's sense: caps on what one cluster may hold at once, so a
 * slow upstream cannot soak up every connection, queue slot and retry of the sidecar. Over a cap
 * the call fails fast with UNAVAILABLE; tryAcquire names the breaker that tripped so the message
 * and the `x-remora-overflow` header can say which. A threshold left out means no limit.
 *
 * On the request path for every call, so: plain integer fields and a switch, no allocation.
 */
import type { CircuitBreakersSpec } from '../config/model.js';

/** What is being counted. */
export type BreakerKind = 'connection' | 'pending' | 'request' | 'retry';

/** Which breaker tripped: the value of the `x-remora-overflow` response header. */
export type BreakerName = 'max-connections' | 'max-pending-requests' | 'max-requests' | 'max-retries';

export const OVERFLOW_HEADER = 'x-remora-overflow';

export class ClusterCircuitBreakers {
  private readonly maxConnections: number;
  private readonly maxPending: number;
  private readonly maxRequests: number;
  private readonly maxRetries: number;
  private connections = 0;
  private pending = 0;
  private requests = 0;
  private retries = 0;
  private connectionOverflows = 0;
  private pendingOverflows = 0;
  private requestOverflows = 0;
  private retryOverflows = 0;

  constructor(spec: Partial<CircuitBreakersSpec> = {}) {
    this.maxConnections = spec.maxConnections ?? Number.POSITIVE_INFINITY;
    this.maxPending = spec.maxPendingRequests ?? Number.POSITIVE_INFINITY;
    this.maxRequests = spec.maxRequests ?? Number.POSITIVE_INFINITY;
    this.maxRetries = spec.maxRetries ?? Number.POSITIVE_INFINITY;
  }

  /** null when there was room (and the count went up); otherwise the breaker that tripped. */
  tryAcquire(kind: BreakerKind): BreakerName | null {
    switch (kind) {
      case 'connection':
        if (this.connections >= this.maxConnections) {
          this.connectionOverflows++;
          return 'max-connections';
        }
        this.connections++;
        return null;
      case 'pending':
        if (this.pending >= this.maxPending) {
          this.pendingOverflows++;
          return 'max-pending-requests';
        }
        this.pending++;
        return null;
      case 'request':
        if (this.requests >= this.maxRequests) {
          this.requestOverflows++;
          return 'max-requests';
        }
        this.requests++;
        return null;
      case 'retry':
        if (this.retries >= this.maxRetries) {
          this.retryOverflows++;
          return 'max-retries';
        }
        this.retries++;
        return null;
    }
  }

  /**
   * Gives back what tryAcquire took. Never below zero: an extra release is a caller bug, and
   * letting the count go negative would quietly raise the limit for everyone after it.
   */
  release(kind: BreakerKind): void {
    switch (kind) {
      case 'connection':
        if (this.connections > 0) this.connections--;
        return;
      case 'pending':
        if (this.pending > 0) this.pending--;
        return;
      case 'request':
        if (this.requests > 0) this.requests--;
        return;
      case 'retry':
        if (this.retries > 0) this.retries--;
        return;
    }
  }

  /** How many are held now. */
  active(kind: BreakerKind): number {
    switch (kind) {
      case 'connection': return this.connections;
      case 'pending': return this.pending;
      case 'request': return this.requests;
      case 'retry': return this.retries;
    }
  }

  /** The threshold (Infinity when unlimited). */
  limit(kind: BreakerKind): number {
    switch (kind) {
      case 'connection': return this.maxConnections;
      case 'pending': return this.maxPending;
      case 'request': return this.maxRequests;
      case 'retry': return this.maxRetries;
    }
  }

  /** How many times this breaker refused, for metrics. */
  overflows(kind: BreakerKind): number {
    switch (kind) {
      case 'connection': return this.connectionOverflows;
      case 'pending': return this.pendingOverflows;
      case 'request': return this.requestOverflows;
      case 'retry': return this.retryOverflows;
    }
  }
}

/** The UNAVAILABLE message for an overflow, e.g. "circuit breaker max-requests tripped for cluster catalog (limit 100)". */
export function overflowMessage(name: BreakerName, cluster: string, limit: number): string {
  return `circuit breaker ${name} tripped for cluster ${cluster} (limit ${limit})`;
}
