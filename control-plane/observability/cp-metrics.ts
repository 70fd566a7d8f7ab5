/**
 * The control plane's /metrics (:15014): connected sidecars, push latency and counts, NACKs by
 * reason, etcd watch lag and errors, certificates issued and refused, and Node process metrics.
 */
import client from 'prom-client';

export interface ControlPlaneMetricsSource {
  connectedSidecars(): number;
  certificatesIssued(): number;
  /** Seconds the watch is behind etcd's latest revision (0 when caught up). */
  watchLagSeconds(): number;
}

export class ControlPlaneMetrics {
  readonly registry = new client.Registry();
  readonly pushDuration: client.Histogram;
  readonly pushes: client.Counter;
  readonly nacks: client.Counter<'reason'>;
  readonly watchErrors: client.Counter;
  readonly certificateRefusals: client.Counter;

  constructor(source: ControlPlaneMetricsSource) {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry });
    new client.Gauge({ name: 'remora_cp_connected_sidecars', help: 'Sidecars with a discovery stream to this replica.', registers, collect() { this.set(source.connectedSidecars()); } });
    this.pushDuration = new client.Histogram({
      name: 'remora_cp_push_duration_seconds',
      help: 'From an etcd change reaching this replica to the new snapshot written to every connected sidecar.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.pushes = new client.Counter({ name: 'remora_cp_pushes_total', help: 'Snapshots pushed (each to every connected sidecar).', registers });
    this.nacks = new client.Counter({ name: 'remora_cp_nacks_total', help: 'Snapshots sidecars rejected, by the kind of the first resource at fault.', labelNames: ['reason'], registers });
    new client.Gauge({ name: 'remora_cp_etcd_watch_lag_seconds', help: 'How long this replica\'s view has been behind etcd\'s latest revision (0: caught up).', registers, collect() { this.set(source.watchLagSeconds()); } });
    this.watchErrors = new client.Counter({ name: 'remora_cp_etcd_watch_errors_total', help: 'etcd reads or watches that failed or had to be restarted.', registers });
    new client.Counter({
      name: 'remora_cp_certificates_issued_total', help: 'Workload certificates signed by this replica.', registers,
      collect() {
        this.reset();
        this.inc(source.certificatesIssued());
      },
    });
    this.certificateRefusals = new client.Counter({ name: 'remora_cp_certificate_requests_refused_total', help: 'Certificate requests refused (bad token, bad CSR).', registers });
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
