/**
 * A cluster owns its endpoints (and their session pools), its balancer, its active health checker,
 * outlier detector and circuit breakers. The balancer only ever sees the endpoints that may take
 * calls: healthy (active checks) and not ejected (passive outlier detection), unless too few are
 * (the panic threshold), then all of them. Config updates keep the endpoints whose address is
 * unchanged, so live sessions survive a push; removed ones drain.
 */
import type { SecureContext } from 'node:tls';
import { ClusterStats } from './cluster-stats.js';
import { hasFailover, isRetried, type ClusterConfig, type HealthCheckSpec, type OutlierDetectionSpec } from '../config/model.js';
import type { Balancer, PickContext } from './balancer.js';
import { createBalancer, DEFAULT_LOAD_BALANCING } from './balancers.js';
import { Endpoint, type ConnectionGate } from './endpoint.js';
import { HealthChecker } from '../health/health-checker.js';
import { probeGrpcHealth } from '../health/grpc-health-probe.js';
import { OutlierDetector } from '../health/outlier-detector.js';
import { EndpointBreaker } from '../health/endpoint-breaker.js';
import { ClusterCircuitBreakers } from '../health/circuit-breakers.js';
import { DEFAULT_FAILURE_CODES } from '../health/failure-codes.js';
import { CALLER_CANCELLED, TRANSPORT_FAILURE, type CallObserver } from '../proxy/forward.js';
import { IdempotencyCatalog } from '../idempotency/catalog.js';
import { fetchDescriptorsByReflection } from '../idempotency/reflection-client.js';
import type { IdempotencyLevel, MethodKind } from '../idempotency/levels.js';
import { DEFAULT_PANIC_THRESHOLD_PERCENT, servingSet } from '../health/panic-threshold.js';

/** How often a cluster asks its endpoints' reflection again, after a success and at most after failures. */
const REFLECT_REFRESH_MS = 5 * 60_000;
const REFLECT_RETRY_MS = 30_000;
/** The first retry after a failed reflection; doubles up to REFLECT_RETRY_MS. */
const REFLECT_FIRST_RETRY_MS = 1_000;
/** How long one reflection may take. */
const REFLECT_TIMEOUT_MS = 2_000;
/** Nobody to ask yet (no endpoints, or no workload certificate for mTLS yet): look again after this, doubling up to the cap. */
const REFLECT_WAIT_MS = 250;
const REFLECT_WAIT_CAP_MS = 5_000;

/** Bits a call carries so it gives back exactly the cluster breakers it took. */
export const HELD_REQUEST = 1;
export const HELD_PENDING = 2;

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** What a cluster needs from the sidecar around it. */
export interface ClusterDeps {
  /** Our workload certificate's client context, for endpoints reached with mTLS. */
  readonly clientTls?: () => SecureContext | undefined;
}

export class Cluster implements CallObserver, ConnectionGate {
  readonly name: string;
  private endpoints = new Map<string, Endpoint>();
  /** What the balancer has: the healthy endpoints, or every endpoint in a panic. */
  private eligible: readonly Endpoint[] = [];
  /** Passing health checks and not ejected. */
  private healthy: readonly Endpoint[] = [];
  /** Too few endpoints are healthy: the balancer has all of them (see panic-threshold.ts). */
  private panic = false;
  /** How many times the cluster went into panic. */
  private panics = 0;
  private balancer: Balancer<Endpoint>;
  private health: HealthChecker<Endpoint> | undefined;
  private outliers: OutlierDetector<Endpoint> | undefined;
  private failureCodes: ReadonlySet<number> = DEFAULT_FAILURE_CODES;
  readonly stats = new ClusterStats();
  /** Undefined when the cluster sets no limits, so the common path skips the counting. */
  breakers: ClusterCircuitBreakers | undefined;
  private cfg: ClusterConfig;
  private readonly idempotency = new IdempotencyCatalog();
  /** The reflection under way, if any: a retry decision that needs its answer may wait for it. */
  private reflecting: Promise<void> | undefined;
  private nextReflectAt = 0;
  /** Why the last reflection attempt learned nothing (for /clusters). */
  private reflectionProblem: string | undefined;
  /** A retrying route sends calls here: learn the methods before any call needs them, and keep them fresh. */
  private methodsWanted = false;
  private methodsTimer: NodeJS.Timeout | undefined;
  private reflectFailures = 0;
  private reflectWaits = 0;
  private closed = false;

  constructor(cfg: ClusterConfig, private readonly deps: ClusterDeps = {}) {
    this.name = cfg.name;
    this.cfg = cfg;
    this.balancer = createBalancer<Endpoint>(cfg.loadBalancing ?? DEFAULT_LOAD_BALANCING);
    this.update(cfg);
  }

  update(cfg: ClusterConfig): void {
    const previous = this.cfg;
    this.cfg = cfg;
    if (!same(previous.loadBalancing, cfg.loadBalancing)) this.balancer = createBalancer<Endpoint>(cfg.loadBalancing ?? DEFAULT_LOAD_BALANCING);
    if (!same(previous.circuitBreakers, cfg.circuitBreakers) || (cfg.circuitBreakers && !this.breakers)) {
      this.breakers = cfg.circuitBreakers ? new ClusterCircuitBreakers(cfg.circuitBreakers) : undefined;
    }
    const breakersChanged = !same(previous.circuitBreakers, cfg.circuitBreakers);
    const typicalRttMs = this.typicalLatencyMs(Date.now());
    const next = new Map<string, Endpoint>();
    let added = false;
    for (const e of cfg.endpoints) {
      const key = Endpoint.keyOf(e);
      const old = this.endpoints.get(key);
      // Same address, weight and identity: keep the old object, its warm sessions and its statistics.
      if (old && old.weight === e.weight && old.identity === e.identity && !breakersChanged) {
        next.set(key, old);
        continue;
      }
      added = true;
      next.set(key, new Endpoint(e, {
        connectTimeoutMs: cfg.connectTimeoutMs,
        maxSessionAgeMs: cfg.maxSessionAgeMs,
        connections: this,
        ...(this.deps.clientTls ? { clientTls: this.deps.clientTls } : {}),
        ...(cfg.circuitBreakers ? { breaker: new EndpointBreaker() } : {}),
        ...(typicalRttMs !== undefined ? { initialRttMs: typicalRttMs } : {}),
      }));
    }
    for (const [key, old] of this.endpoints) if (next.get(key) !== old) old.close();
    this.endpoints = next;
    this.configureHealth(previous.healthCheck, cfg.healthCheck);
    this.configureOutliers(previous.outlierDetection, cfg.outlierDetection);
    this.refresh();
    if (isRetried(cfg)) this.wantMethods();
    // New endpoints to ask, and nothing learnt yet: don't wait for the backoff to run out.
    if (added && this.methodsWanted && this.idempotency.size === 0 && this.reflecting === undefined) this.scheduleReflection(0);
  }

  /**
   * The median latency estimate of the current endpoints: what a new endpoint starts with, so
   * PEAK_EWMA neither starves it (a fixed guess far above the others' real latency) nor floods it.
   */
  private typicalLatencyMs(now: number): number | undefined {
    const estimates = [...this.endpoints.values()].map((e) => e.latencyEstimateMs(now)).sort((a, b) => a - b);
    return estimates.length === 0 ? undefined : estimates[Math.floor(estimates.length / 2)];
  }

  private configureHealth(before: HealthCheckSpec | undefined, spec: HealthCheckSpec | undefined): void {
    if (!same(before, spec) || (spec && !this.health)) {
      this.health?.stop();
      this.health = spec
        ? new HealthChecker<Endpoint>(
            spec,
            (e) => probeGrpcHealth(e.acquire(Date.now()).session, { authority: this.name, serviceName: spec.serviceName, timeoutMs: spec.timeoutMs }).then((r) => {
              if (r === 'SERVING') this.stats.healthChecksHealthy++;
              else this.stats.healthChecksUnhealthy++;
              return r;
            }),
            () => this.refresh(),
          )
        : undefined;
    }
    this.health?.setTargets([...this.endpoints.values()]);
  }

  private configureOutliers(before: OutlierDetectionSpec | undefined, spec: OutlierDetectionSpec | undefined): void {
    if (!same(before, spec) || (spec && !this.outliers)) {
      this.outliers?.stop();
      this.outliers = spec
        ? new OutlierDetector<Endpoint>(spec, (_e, ejected) => {
            if (ejected) this.stats.ejections++;
            this.refresh();
          })
        : undefined;
      this.failureCodes = this.outliers?.failureCodes ?? DEFAULT_FAILURE_CODES;
    }
    this.outliers?.setTargets([...this.endpoints.values()]);
  }

  /** Recomputes the endpoints calls may use and hands them to the balancer. */
  private refresh(): void {
    const set = servingSet(
      [...this.endpoints.values()],
      (e) => !(this.health && !this.health.isHealthy(e)) && !this.outliers?.isEjected(e),
      this.panicThresholdPercent(),
    );
    if (set.panic && !this.panic) this.panics++;
    this.panic = set.panic;
    this.healthy = set.healthy;
    this.eligible = set.endpoints;
    this.balancer.update(set.endpoints);
  }

  /** 0 (never panic) when a route fails this cluster over to another: that one takes the calls instead. */
  private panicThresholdPercent(): number {
    return hasFailover(this.cfg) ? 0 : (this.cfg.panicThresholdPercent ?? DEFAULT_PANIC_THRESHOLD_PERCENT);
  }

  /** An endpoint for one call; its breaker (if any) has admitted the call. */
  pick(ctx: PickContext): Endpoint | undefined {
    // A half-open breaker admits one probe; whoever loses that race tries another endpoint.
    for (let tries = 0; tries < 3; tries++) {
      const e = this.balancer.pick(ctx);
      if (e === undefined) return undefined;
      if (e.breaker === undefined || e.breaker.tryAcquire(ctx.now)) return e;
    }
    return undefined;
  }

  hasCandidates(now: number): boolean {
    for (const e of this.eligible) if (e.available(now)) return true;
    return false;
  }

  responseStarted(endpoint: Endpoint, rttMs: number, now: number): void {
    endpoint.ewma.observe(rttMs, now);
  }

  /** Gives back the cluster breakers a call took (HELD_* bits). */
  releaseHeld(held: number): void {
    if (held !== 0 && this.breakers) {
      if (held & HELD_REQUEST) this.breakers.release('request');
      if (held & HELD_PENDING) this.breakers.release('pending');
    }
  }

  callEnded(endpoint: Endpoint, outcome: number, startedAt: number, now: number, held: number): void {
    this.releaseHeld(held);
    if (outcome === CALLER_CANCELLED) {
      endpoint.breaker?.record('cancelled', startedAt, now);
      return;
    }
    const failed = outcome === TRANSPORT_FAILURE || this.failureCodes.has(outcome);
    endpoint.breaker?.record(failed ? 'failure' : 'success', startedAt, now);
    this.outliers?.record(endpoint, failed ? 'failure' : 'success', now);
  }

  tryAcquireConnection(): string | null {
    return this.breakers ? this.breakers.tryAcquire('connection') : null;
  }

  releaseConnection(): void {
    this.breakers?.release('connection');
  }

  /**
   * How safe a method of this cluster's service is to send twice, from its descriptors (server
   * reflection). A cluster a retrying route uses learns them as soon as it is applied (see
   * wantMethods); otherwise, or when that has not worked yet, the first question starts a
   * reflection and gets UNKNOWN (the safe answer) until it is in. Refreshed every few minutes.
   */
  idempotencyOf(path: string): IdempotencyLevel {
    this.reflectIfDue();
    return this.idempotency.levelOf(path);
  }

  /** The method's shape from its descriptor, when known: a unary answer may wait for its status. */
  methodKindOf(path: string): MethodKind | undefined {
    return this.idempotency.kindOf(path);
  }

  /**
   * Resolves when the reflection under way settles; undefined when none is. Lets the first failed
   * call of a fresh sidecar wait (bounded by its caller) for the answer it needs to be retried.
   */
  methodsPending(): Promise<void> | undefined {
    return this.reflecting;
  }

  /** A retrying route uses this cluster: learn its methods now and keep them fresh, not on the first failure. */
  wantMethods(): void {
    if (this.methodsWanted || this.closed) return;
    this.methodsWanted = true;
    this.scheduleReflection(0);
  }

  private reflectIfDue(): void {
    if (this.reflecting === undefined && Date.now() >= this.nextReflectAt) this.reflect();
  }

  private scheduleReflection(delayMs: number): void {
    if (this.closed) return;
    if (this.methodsTimer) clearTimeout(this.methodsTimer);
    this.methodsTimer = setTimeout(() => {
      this.methodsTimer = undefined;
      this.reflect();
    }, delayMs);
    this.methodsTimer.unref();
  }

  /** Can connect to `e` now: plaintext, or we hold the workload certificate its mTLS needs. */
  private canDial(e: Endpoint): boolean {
    return e.identity === undefined || this.deps.clientTls?.() !== undefined;
  }

  private reflect(): void {
    if (this.closed || this.reflecting !== undefined) return;
    const now = Date.now();
    // A healthy endpoint first; any that can be reached in a panic. Never one we cannot dial yet:
    // a connect that fails for want of our certificate would put it in backoff for real calls.
    const e = this.healthy.find((x) => x.available(now) && this.canDial(x)) ?? this.eligible.find((x) => x.available(now) && this.canDial(x));
    let session;
    try {
      session = e?.acquire(now).session;
    } catch {
      session = undefined;
    }
    if (e === undefined || session === undefined) {
      if (this.methodsWanted) this.scheduleReflection(Math.min(REFLECT_WAIT_CAP_MS, REFLECT_WAIT_MS * 2 ** this.reflectWaits++));
      return;
    }
    this.reflectWaits = 0;
    this.reflecting = fetchDescriptorsByReflection(session, this.name, REFLECT_TIMEOUT_MS).then((result) => {
      this.reflecting = undefined;
      const learnt = result.levels.size > 0;
      if (learnt) {
        this.idempotency.add(result.levels, e.key, result.kinds);
        // Endpoints that left no longer speak for the service; the one that just answered does.
        for (const source of this.idempotency.sources()) if (source !== e.key && !this.endpoints.has(source)) this.idempotency.forget(source);
        this.reflectFailures = 0;
      } else this.reflectFailures++;
      this.reflectionProblem = result.reason;
      const wait = learnt ? REFLECT_REFRESH_MS : Math.min(REFLECT_RETRY_MS, REFLECT_FIRST_RETRY_MS * 2 ** (this.reflectFailures - 1));
      this.nextReflectAt = Date.now() + wait;
      if (this.methodsWanted) this.scheduleReflection(wait);
    });
  }

  /** Why pick() returned nothing, for the caller's error message. */
  unavailableReason(now: number): string {
    const all = [...this.endpoints.values()];
    if (all.length === 0) return `cluster ${this.name} has no endpoints`;
    const unhealthy = this.health ? all.filter((e) => !this.health!.isHealthy(e)).length : 0;
    const ejected = this.outliers ? all.filter((e) => this.outliers!.isEjected(e)).length : 0;
    const backingOff = all.filter((e) => e.inBackoff(now));
    const open = all.filter((e) => e.breaker && e.breaker.state(now) !== 'closed').length;
    const parts = [`${all.length} endpoint${all.length === 1 ? '' : 's'}`];
    if (unhealthy) parts.push(`${unhealthy} failing health checks`);
    if (ejected) parts.push(`${ejected} ejected as outliers`);
    if (open) parts.push(`${open} with an open breaker`);
    if (backingOff.length) parts.push(`${backingOff.length} unreachable (${backingOff[0]!.backoffReason(now)})`);
    if (this.panic) parts.push('all tried: below the panic threshold');
    return `no endpoint of cluster ${this.name} can take the call: ${parts.join(', ')}`;
  }

  /** For /clusters. */
  describe(now: number): object {
    return {
      name: this.name,
      loadBalancing: (this.cfg.loadBalancing ?? DEFAULT_LOAD_BALANCING).policy,
      panicThresholdPercent: this.panicThresholdPercent(),
      panic: this.panic,
      panics: this.panics,
      idempotency: { methods: this.idempotency.size, learning: this.methodsWanted, problem: this.reflectionProblem ?? null },
      circuitBreakers: this.breakers
        ? Object.fromEntries((['connection', 'pending', 'request', 'retry'] as const).map((k) => [k, { active: this.breakers!.active(k), limit: this.breakers!.limit(k), overflows: this.breakers!.overflows(k) }]))
        : null,
      stats: { ...this.stats, overflows: Object.fromEntries(this.stats.overflows) },
      endpoints: [...this.endpoints.values()].map((e) => ({
        address: e.key,
        identity: e.identity ?? null,
        weight: e.weight,
        labels: e.labels,
        healthy: this.health ? this.health.isHealthy(e) : null,
        lastHealthCheck: this.health?.lastResult(e) ?? null,
        ejected: this.outliers ? this.outliers.isEjected(e) : null,
        breaker: e.breaker ? e.breaker.state(now) : null,
        activeRequests: e.activeRequests,
        latencyEwmaMs: Math.round(e.latencyEstimateMs(now) * 100) / 100,
        sessions: e.sessionCount(),
        inBackoff: e.inBackoff(now),
      })),
    };
  }

  endpointList(): Endpoint[] {
    return [...this.endpoints.values()];
  }

  get config(): ClusterConfig {
    return this.cfg;
  }

  private stopChecks(): void {
    this.closed = true;
    if (this.methodsTimer) clearTimeout(this.methodsTimer);
    this.methodsTimer = undefined;
    this.health?.stop();
    this.outliers?.stop();
  }

  close(): void {
    this.stopChecks();
    for (const e of this.endpoints.values()) e.close();
  }

  destroy(): void {
    this.stopChecks();
    for (const e of this.endpoints.values()) e.destroy();
  }
}

