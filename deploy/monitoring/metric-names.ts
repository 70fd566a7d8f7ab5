/**
 * The metrics contract between the sidecar / control plane and the monitoring config in deploy/
 * (the Prometheus scrape config and the Grafana dashboard). Base names only: a histogram appears
 * once, without its _bucket/_sum/_count series.
 *
 * test/monitoring-config.test.ts checks the dashboard uses nothing outside these lists; the
 * sidecar's and control plane's own tests check they export exactly these names and labels.
 * See docs/monitoring.md for what each one means.
 */

/** Exported by every sidecar at :15020/metrics (its --stats-port). */
export const SIDECAR_METRICS: readonly string[] = [
  'remora_requests_total',
  'remora_request_duration_seconds',
  'remora_request_bytes_total',
  'remora_response_bytes_total',
  'remora_retries_total',
  'remora_retry_budget_exhausted_total',
  'remora_timeouts_total',
  'remora_overflows_total',
  'remora_outlier_ejections_total',
  'remora_health_checks_total',
  'remora_open_connections',
  'remora_active_streams',
  'remora_config_version',
  'remora_config_nacks_total',
  'remora_config_last_nack_timestamp_seconds',
  'remora_certificate_expiry_timestamp_seconds',
];

/** Exported by the control plane at :15014/metrics. */
export const CONTROL_PLANE_METRICS: readonly string[] = [
  'remora_cp_connected_sidecars',
  'remora_cp_push_duration_seconds',
  'remora_cp_pushes_total',
  'remora_cp_nacks_total',
  'remora_cp_etcd_watch_lag_seconds',
  'remora_cp_etcd_watch_errors_total',
  'remora_cp_certificates_issued_total',
  'remora_cp_certificate_requests_refused_total',
];

/**
 * The prom-client default metrics (collectDefaultMetrics) that the dashboard uses. Both processes
 * export these and more; this is the subset the dashboard depends on, not everything exported.
 */
export const NODE_METRICS: readonly string[] = [
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_eventloop_lag_p99_seconds',
  'nodejs_heap_size_used_bytes',
];

/** Labels per metric, as exported (not counting the `le` of a histogram's _bucket series). */
export const METRIC_LABELS: Record<string, readonly string[]> = {
  remora_requests_total: ['direction', 'source', 'destination', 'method', 'grpc_status'],
  remora_request_duration_seconds: ['direction', 'source', 'destination', 'method'],
  remora_request_bytes_total: ['direction', 'source', 'destination', 'method'],
  remora_response_bytes_total: ['direction', 'source', 'destination', 'method'],
  remora_retries_total: ['destination'],
  remora_retry_budget_exhausted_total: ['destination'],
  remora_timeouts_total: ['destination'],
  remora_overflows_total: ['destination', 'breaker'],
  remora_outlier_ejections_total: ['destination'],
  remora_health_checks_total: ['destination', 'result'],
  remora_open_connections: ['direction'],
  remora_active_streams: ['direction'],
  remora_config_version: [],
  remora_config_nacks_total: [],
  remora_config_last_nack_timestamp_seconds: [],
  remora_certificate_expiry_timestamp_seconds: [],

  remora_cp_connected_sidecars: [],
  remora_cp_push_duration_seconds: [],
  remora_cp_pushes_total: [],
  remora_cp_nacks_total: ['reason'],
  remora_cp_etcd_watch_lag_seconds: [],
  remora_cp_etcd_watch_errors_total: [],
  remora_cp_certificates_issued_total: [],
  remora_cp_certificate_requests_refused_total: [],

  process_cpu_seconds_total: [],
  process_resident_memory_bytes: [],
  nodejs_eventloop_lag_p99_seconds: [],
  nodejs_heap_size_used_bytes: [],
};

/** Metric types, so a check can tell which names may carry _bucket/_sum/_count series. */
export const METRIC_TYPES: Record<string, 'counter' | 'gauge' | 'histogram'> = {
  remora_requests_total: 'counter',
  remora_request_duration_seconds: 'histogram',
  remora_request_bytes_total: 'counter',
  remora_response_bytes_total: 'counter',
  remora_retries_total: 'counter',
  remora_retry_budget_exhausted_total: 'counter',
  remora_timeouts_total: 'counter',
  remora_overflows_total: 'counter',
  remora_outlier_ejections_total: 'counter',
  remora_health_checks_total: 'counter',
  remora_open_connections: 'gauge',
  remora_active_streams: 'gauge',
  remora_config_version: 'gauge',
  remora_config_nacks_total: 'counter',
  remora_config_last_nack_timestamp_seconds: 'gauge',
  remora_certificate_expiry_timestamp_seconds: 'gauge',

  remora_cp_connected_sidecars: 'gauge',
  remora_cp_push_duration_seconds: 'histogram',
  remora_cp_pushes_total: 'counter',
  remora_cp_nacks_total: 'counter',
  remora_cp_etcd_watch_lag_seconds: 'gauge',
  remora_cp_etcd_watch_errors_total: 'counter',
  remora_cp_certificates_issued_total: 'counter',
  remora_cp_certificate_requests_refused_total: 'counter',

  process_cpu_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  nodejs_eventloop_lag_p99_seconds: 'gauge',
  nodejs_heap_size_used_bytes: 'gauge',
};

/**
 * The scrape jobs in deploy/prometheus/prometheus.yml: which metrics each exports and the labels
 * Prometheus attaches to every series it scrapes from it (job and instance always; service on
 * sidecar targets, from the target's host name in compose or the pod's `app` label in Kubernetes).
 * No exported metric may use a target label's name.
 */
export const SCRAPE_JOBS: Record<string, { readonly port: number; readonly metrics: readonly string[]; readonly targetLabels: readonly string[] }> = {
  'remora-sidecar': { port: 15020, metrics: [...SIDECAR_METRICS, ...NODE_METRICS], targetLabels: ['job', 'instance', 'service'] },
  'remora-control-plane': { port: 15014, metrics: [...CONTROL_PLANE_METRICS, ...NODE_METRICS], targetLabels: ['job', 'instance'] },
};
