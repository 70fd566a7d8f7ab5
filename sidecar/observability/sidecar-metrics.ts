/**
 * The sidecar's /metrics (Prometheus text on the stats port, :15020): the per-call metrics from
 * RequestMetrics, the clusters' event counters, and gauges read at scrape time (connections,
 * streams, config version, NACKs, certificate expiry) plus prom-client's Node process metrics.
 * Everything is read when scraped; nothing here runs per call.
 */
import client from 'prom-client';
import type { Cluster } from '../upstream/cluster.js';
import { escapeLabel, type RequestMetrics } from './request-metrics.js';
import { activeCalls } from './observe-calls.js';

export interface SidecarMetricsSource {
  readonly requests: RequestMetrics | undefined;
  clusters(): readonly Cluster[];
  connections(): { inbound: number; outbound: number; upstream: number };
  configVersion(): string;
  nacks(): { count: number; lastAt: number };
  /** ms since the epoch, or undefined without a certificate. */
  certificateExpiry(): number | undefined;
}

function counter(name: string, help: string, rows: string[]): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} counter`, ...rows];
}

export class SidecarMetrics {
  private readonly registry = new client.Registry();

  constructor(private readonly source: SidecarMetricsSource) {
    client.collectDefaultMetrics({ register: this.registry });
    const s = source;
    new client.Gauge({
      name: 'remora_open_connections', help: 'Open HTTP/2 connections: from local apps (outbound), from peers (inbound), to upstreams.', labelNames: ['direction'], registers: [this.registry],
      collect() {
        const c = s.connections();
        this.set({ direction: 'inbound' }, c.inbound);
        this.set({ direction: 'outbound' }, c.outbound);
        this.set({ direction: 'upstream' }, c.upstream);
      },
    });
    new client.Gauge({
      name: 'remora_active_streams', help: 'Calls in flight through the sidecar.', labelNames: ['direction'], registers: [this.registry],
      collect() {
        this.set({ direction: 'inbound' }, activeCalls.inbound);
        this.set({ direction: 'outbound' }, activeCalls.outbound);
      },
    });
    new client.Gauge({
      name: 'remora_config_version', help: 'The applied config version (the control plane\'s etcd revision; 0 before any).', registers: [this.registry],
      collect() {
        const v = Number(s.configVersion());
        this.set(Number.isFinite(v) ? v : 0);
      },
    });
    new client.Gauge({
      name: 'remora_config_last_nack_timestamp_seconds', help: 'When the last config was rejected (0: never).', registers: [this.registry],
      collect() {
        this.set(s.nacks().lastAt / 1000);
      },
    });
    new client.Gauge({
      name: 'remora_certificate_expiry_timestamp_seconds', help: 'When the workload certificate expires (absent without one).', registers: [this.registry],
      collect() {
        const at = s.certificateExpiry();
        if (at === undefined) this.reset();
        else this.set(at / 1000);
      },
    });
  }

  private clusterCounters(): string {
    const retries: string[] = [];
    const exhausted: string[] = [];
    const timeouts: string[] = [];
    const overflows: string[] = [];
    const ejections: string[] = [];
    const checks: string[] = [];
    for (const c of this.source.clusters()) {
      const d = `destination="${escapeLabel(c.name)}"`;
      const st = c.stats;
      retries.push(`remora_retries_total{${d}} ${st.retries}`);
      exhausted.push(`remora_retry_budget_exhausted_total{${d}} ${st.retryBudgetExhausted}`);
      timeouts.push(`remora_timeouts_total{${d}} ${st.timeouts + st.perTryTimeouts}`);
      for (const [breaker, n] of st.overflows) overflows.push(`remora_overflows_total{${d},breaker="${escapeLabel(breaker)}"} ${n}`);
      ejections.push(`remora_outlier_ejections_total{${d}} ${st.ejections}`);
      checks.push(`remora_health_checks_total{${d},result="healthy"} ${st.healthChecksHealthy}`, `remora_health_checks_total{${d},result="unhealthy"} ${st.healthChecksUnhealthy}`);
    }
    return [
      ...counter('remora_retries_total', 'Retry attempts made.', retries),
      ...counter('remora_retry_budget_exhausted_total', 'Retries not made because the retry budget was spent.', exhausted),
      ...counter('remora_timeouts_total', 'Deadlines, idle and per-try timeouts the sidecar enforced.', timeouts),
      ...counter('remora_overflows_total', 'Calls refused by a circuit breaker.', overflows),
      ...counter('remora_outlier_ejections_total', 'Endpoints ejected by outlier detection.', ejections),
      ...counter('remora_health_checks_total', 'Active health check results.', checks),
      ...counter('remora_config_nacks_total', 'Config snapshots rejected.', [`remora_config_nacks_total ${this.source.nacks().count}`]),
      '',
    ].join('\n');
  }

  async render(): Promise<string> {
    return (this.source.requests?.render() ?? '') + this.clusterCounters() + (await this.registry.metrics());
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
