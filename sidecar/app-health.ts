/**
 * The sidecar checks its own app with grpc.health.v1 `Check`, like peers' endpoints, and reports
 * the result in /healthz/ready and in its registration, so peers stop calling an instance whose app
 * is down. An app without a health service (UNIMPLEMENTED) counts as serving: it answered, and
 * most apps have no health service; an app that does not answer at all does not.
 */
import { HealthChecker } from './health/health-checker.js';
import { probeGrpcHealth, type HealthProbeResult } from './health/grpc-health-probe.js';
import { Status } from './grpc/status.js';
import type { Endpoint } from './upstream/endpoint.js';

export interface AppHealthOptions {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** The service name sent in Check; "" asks about the app as a whole. */
  readonly serviceName: string;
  readonly authority: string;
}

export class AppHealth {
  private readonly checker: HealthChecker<Endpoint>;
  private last: string | undefined;

  constructor(private readonly app: Endpoint, opts: AppHealthOptions, onChange: (serving: boolean, why: string) => void) {
    this.checker = new HealthChecker<Endpoint>(
      // One success makes the app ready; two failures in a row make it not ready.
      { intervalMs: opts.intervalMs, jitterMs: Math.floor(opts.intervalMs / 10), healthyThreshold: 1, unhealthyThreshold: 2 },
      async (e) => {
        const result: HealthProbeResult = await probeGrpcHealth(e.acquire(Date.now()).session, {
          authority: opts.authority,
          serviceName: opts.serviceName,
          timeoutMs: opts.timeoutMs,
        });
        return typeof result !== 'string' && result.grpcStatus === Status.UNIMPLEMENTED ? 'SERVING' : result;
      },
      (_e, healthy, why) => {
        this.last = why;
        onChange(healthy, why);
      },
      Math.random,
      // Not ready until the app has answered once.
      { initiallyHealthy: false },
    );
    this.checker.setTargets([app]);
  }

  get serving(): boolean {
    return this.checker.isHealthy(this.app);
  }

  get lastResult(): string | undefined {
    return this.last ?? this.checker.lastResult(this.app);
  }

  stop(): void {
    this.checker.stop();
  }
}
