/** `remora sidecar`: run the data plane, configured by a control plane or a static file. */
import os from 'node:os';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from '../cli/flags.js';
import { createLogger, type Logger } from '../lib/log.js';
import { writePortsFile } from '../lib/ports-file.js';
import { DNS_LABEL } from '../lib/validate.js';
import { loadStaticConfig } from './config/static-file.js';
import { ConfigError } from './config/validate.js';
import type { MeshConfig } from './config/model.js';
import { Sidecar } from './sidecar.js';
import { adminServer, healthServer } from './admin-server.js';
import { listenHttp } from '../lib/json-http.js';
import { DiscoveryClient } from './discovery/client.js';
import { translateResources } from './discovery/translate.js';
import { HealthState } from '../protos/gen/remora/mesh/v1/discovery.js';
import { IdempotencyCatalog } from './idempotency/catalog.js';
import { loadDescriptorSet } from './idempotency/descriptor-set.js';
import { WorkloadIdentity, type CertificateSource } from './security/workload-identity.js';
import { FileCertificateSource } from './security/file-source.js';
import { CaClient } from './security/ca-client.js';
import { ControlPlaneTrust } from './security/control-plane-trust.js';
import { RequestMetrics } from './observability/request-metrics.js';
import { StatsReporter } from './observability/stats-reporter.js';
import { AccessLog } from './observability/access-log.js';
import { SidecarMetrics } from './observability/sidecar-metrics.js';
import { Tracer } from './observability/tracer.js';
import { ZipkinExporter } from './observability/zipkin-exporter.js';
import { splitPemBundle } from '../lib/pki/x509.js';
import { readFile } from 'node:fs/promises';

const FLAGS = {
  'control-plane': { type: 'list', help: 'control-plane discovery addresses host:port, comma-separated (any replica)' },
  config: { type: 'string', help: 'static mesh config (YAML: clusters, routes) instead of a control plane; SIGHUP reloads it', short: 'c' },
  service: { type: 'string', help: 'name of the service this sidecar rides with', default: 'unknown' },
  namespace: { type: 'string', help: 'namespace of the service', default: 'default' },
  'instance-id': { type: 'string', help: 'this instance\'s id (default: hostname-pid)' },
  zone: { type: 'string', help: 'zone of this instance', default: '' },
  labels: { type: 'list', help: 'instance labels, k=v comma-separated (e.g. version=v2)' },
  'service-account': { type: 'string', help: 'service account (identity) of the app', default: 'default' },
  'advertise-address': { type: 'string', help: 'address peers use to reach this sidecar\'s inbound listener', default: '127.0.0.1' },
  register: { type: 'bool', help: 'register this instance with the control plane so peers call it', default: true },
  'deregister-delay-ms': { type: 'int', help: 'on SIGTERM, wait this long after deregistering before draining, so peers stop picking us', default: 1_000 },
  'app-address': { type: 'string', help: 'address of the local app', default: '127.0.0.1' },
  'app-port': { type: 'int', help: 'port of the local app (inbound calls go here)', default: 8080 },
  'outbound-address': { type: 'string', help: 'outbound listener address (app → mesh)', default: '127.0.0.1' },
  'outbound-port': { type: 'int', help: 'outbound listener port', default: 15001 },
  'inbound-address': { type: 'string', help: 'inbound listener address (peers → app)', default: '0.0.0.0' },
  'inbound-port': { type: 'int', help: 'inbound listener port', default: 15006 },
  'admin-address': { type: 'string', help: 'admin server address', default: '127.0.0.1' },
  'admin-port': { type: 'int', help: 'admin server port (/config_dump, /clusters, /drain)', default: 15000 },
  'stats-address': { type: 'string', help: 'health/metrics server address', default: '0.0.0.0' },
  'stats-port': { type: 'int', help: 'health/metrics server port (/healthz/ready, /healthz/live)', default: 15020 },
  'app-health-interval-ms': { type: 'int', help: 'check the local app with grpc.health.v1 this often; 0 = never (an app without a health service counts as serving)', default: 2_000 },
  'app-health-service': { type: 'string', help: 'service name sent in the local app\'s health Check ("" = the whole app)', default: '' },
  'descriptor-set': { type: 'list', help: 'FileDescriptorSet files (buf build -o, protoc --descriptor_set_out) telling which methods are idempotent, for retries; servers\' reflection is asked otherwise' },
  'control-plane-ca-file': { type: 'string', help: 'roots (PEM; `remora ca bundle`) to verify the control plane\'s TLS port with: --control-plane then names its 15012 port, and tokens never cross the network in the clear' },
  'ca-token-file': { type: 'string', help: 'token proving our identity to the mesh CA: a bootstrap token, or a projected Kubernetes service-account token (re-read for every request)' },
  'cert-ttl-s': { type: 'int', help: 'lifetime to ask the mesh CA for (0: the control plane\'s default, 24 h); renewed at about half of it', default: 0 },
  'cert-file': { type: 'string', help: 'without a control plane: our certificate chain (PEM, spiffe:// URI SAN) for mTLS; re-read at half-life and on SIGHUP' },
  'key-file': { type: 'string', help: 'with --cert-file: its private key (PEM)' },
  'trust-bundle-file': { type: 'string', help: 'with --cert-file: the root certificates peers must chain to (PEM)' },
  metrics: { type: 'bool', help: 'serve Prometheus metrics at the stats port\'s /metrics (per-call metrics cost a little CPU per call)', default: true },
  'access-log': { type: 'bool', help: 'log one JSON line per call (switch at runtime: POST /logging?access=on|off on the admin port)', default: false },
  'access-log-sample': { type: 'string', help: 'share of calls the access log records, 0..1', default: '1' },
  'zipkin-url': { type: 'string', help: 'export trace spans to this Zipkin v2 endpoint, e.g. http://zipkin:9411/api/v2/spans (tracing is off without it)' },
  'trace-sample-rate': { type: 'string', help: 'share of calls arriving without a sampling decision that are traced, 0..1', default: '0.01' },
  'stats-report-interval-ms': { type: 'int', help: 'report golden metrics to the control plane (its dashboard) this often', default: 5_000 },
  'drain-timeout-ms': { type: 'int', help: 'how long in-flight calls may run after SIGTERM', default: 20_000 },
  'ports-file': { type: 'string', help: 'once listening, write the bound ports here as JSON (lets tests use port 0)' },
} as const satisfies FlagDefs;

const SUMMARY = 'Run the Remora sidecar: outbound (app → mesh) and inbound (mesh → app) gRPC proxies.';
const EMPTY_CONFIG: MeshConfig = Object.freeze({ version: '', clusters: [], routes: [] });

type Flags = ReturnType<typeof parseCommand<typeof FLAGS>>['flags'];

function checkFlags(flags: Flags): void {
  if (!flags.config === (flags['control-plane'].length === 0)) {
    throw new UsageError('give exactly one config source: --control-plane HOST:PORT[,HOST:PORT] or --config FILE');
  }
  for (const p of ['app-port', 'outbound-port', 'inbound-port', 'admin-port', 'stats-port'] as const) {
    if (flags[p] < 0 || flags[p] > 65535) throw new UsageError(`--${p} must be a port from 0 to 65535, got ${flags[p]}`);
  }
  if (!DNS_LABEL.test(flags.service)) throw new UsageError(`--service must be a lower-case DNS label, got ${JSON.stringify(flags.service)}`);
  if (!DNS_LABEL.test(flags.namespace)) throw new UsageError(`--namespace must be a lower-case DNS label, got ${JSON.stringify(flags.namespace)}`);
  const files = [flags['cert-file'], flags['key-file'], flags['trust-bundle-file']].filter((f) => f !== undefined).length;
  if (files !== 0 && files !== 3) throw new UsageError('--cert-file, --key-file and --trust-bundle-file go together');
  if (files === 3 && !flags.config) throw new UsageError('certificate files are for static config (--config); with a control plane, the mesh CA issues certificates');
  for (const f of ['access-log-sample', 'trace-sample-rate'] as const) {
    const v = Number(flags[f]);
    if (!(v >= 0 && v <= 1)) throw new UsageError(`--${f} must be a number from 0 to 1, got ${JSON.stringify(flags[f])}`);
  }
  if (flags['zipkin-url'] !== undefined && !/^https?:\/\//.test(flags['zipkin-url'])) throw new UsageError(`--zipkin-url must be an http(s) URL, got ${JSON.stringify(flags['zipkin-url'])}`);
  if (flags['cert-ttl-s'] < 0) throw new UsageError('--cert-ttl-s must not be negative');
  for (const l of flags.labels) if (!/^[^=]+=.*$/.test(l)) throw new UsageError(`--labels entries must be key=value, got ${JSON.stringify(l)}`);
}

async function initialConfig(flags: Flags): Promise<MeshConfig> {
  if (!flags.config) return EMPTY_CONFIG;
  try {
    return await loadStaticConfig(flags.config);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

function startDiscovery(flags: Flags, sidecar: Sidecar, inboundPort: number, log: Logger, cpTrust: ControlPlaneTrust | undefined, metrics: RequestMetrics | undefined): DiscoveryClient {
  const reporter = metrics ? new StatsReporter(metrics, () => sidecar.certificateExpiry()) : undefined;
  const client = new DiscoveryClient({
    controlPlanes: flags['control-plane'],
    instance: {
      service: flags.service,
      namespace: flags.namespace,
      instanceId: flags['instance-id'] ?? `${os.hostname()}-${process.pid}`,
      address: flags['advertise-address'],
      port: inboundPort,
      zone: flags.zone,
      labels: Object.fromEntries(flags.labels.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])),
      serviceAccount: flags['service-account'],
      // Registered as not serving until the app has answered its first health check.
      health: sidecar.appServing ? HealthState.HEALTH_STATE_SERVING : HealthState.HEALTH_STATE_NOT_SERVING,
    },
    register: flags.register,
    sidecarVersion: process.env.npm_package_version ?? 'dev',
    appliedVersion: () => sidecar.config.version,
    apply: (snap) => {
      const result = translateResources(snap.version, snap.resources);
      if (result.config) {
        sidecar.apply(result.config);
        if (cpTrust && result.config.security) cpTrust.add(result.config.security.trustBundle);
      }
      return result.errors;
    },
    log,
    ...(cpTrust ? { credentials: cpTrust.credentials() } : {}),
    ...(reporter ? { stats: () => reporter.next(), statsIntervalMs: flags['stats-report-interval-ms'] } : {}),
  });
  client.start();
  return client;
}

async function controlPlaneTrust(flags: Flags): Promise<ControlPlaneTrust | undefined> {
  const file = flags['control-plane-ca-file'];
  if (!file) return undefined;
  let roots: string[];
  try {
    roots = splitPemBundle(await readFile(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--control-plane-ca-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (roots.length === 0) throw new UsageError(`--control-plane-ca-file ${file} holds no PEM certificate`);
  return new ControlPlaneTrust(roots);
}

function workloadIdentity(flags: Flags, log: Logger, onChange: () => void, cpTrust: ControlPlaneTrust | undefined): WorkloadIdentity | undefined {
  let source: CertificateSource;
  if (flags['cert-file'] && flags['key-file'] && flags['trust-bundle-file']) {
    source = new FileCertificateSource({ certFile: flags['cert-file'], keyFile: flags['key-file'], trustBundleFile: flags['trust-bundle-file'] });
  } else if (flags['control-plane'].length > 0) {
    source = new CaClient({
      controlPlanes: flags['control-plane'],
      namespace: flags.namespace,
      serviceAccount: flags['service-account'],
      tokenFile: flags['ca-token-file'],
      ttlSeconds: flags['cert-ttl-s'],
      ...(cpTrust ? { credentials: cpTrust.credentials() } : {}),
    });
  } else {
    return undefined;
  }
  return new WorkloadIdentity(source, { log, onChange });
}

export const sidecarCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const { flags, help } = parseCommand(FLAGS, argv);
    if (help) {
      process.stdout.write(usage('sidecar', SUMMARY, FLAGS) + '\n');
      return;
    }
    checkFlags(flags);
    const log = createLogger('sidecar');
    const config = await initialConfig(flags);
    const descriptors = new IdempotencyCatalog();
    for (const file of flags['descriptor-set']) {
      const loaded = await loadDescriptorSet(file);
      if (loaded.reason) throw new UsageError(`--descriptor-set ${file}: ${loaded.reason}`);
      descriptors.add(loaded.levels, file);
    }
    const cpTrust = await controlPlaneTrust(flags);
    const requestMetrics = flags.metrics ? new RequestMetrics() : undefined;
    const accessLog = new AccessLog(createLogger('access', 'info'), { enabled: flags['access-log'], sampleRate: Number(flags['access-log-sample']) });
    const exporter = flags['zipkin-url'] ? new ZipkinExporter({ url: flags['zipkin-url'], onError: (err) => log.warn({ err: err.message }, 'span export failed; spans dropped') }) : undefined;
    const tracer = exporter ? new Tracer({ serviceName: flags.service, sampleRate: Number(flags['trace-sample-rate']), exporter }) : undefined;
    const identity = workloadIdentity(flags, log, () => sidecar.tlsChanged(), cpTrust);
    const sidecar = new Sidecar(
      {
        service: flags.service,
        namespace: flags.namespace,
        appAddress: flags['app-address'],
        appPort: flags['app-port'],
        outboundAddress: flags['outbound-address'],
        outboundPort: flags['outbound-port'],
        inboundAddress: flags['inbound-address'],
        inboundPort: flags['inbound-port'],
        drainTimeoutMs: flags['drain-timeout-ms'],
        log,
        appHealthIntervalMs: flags['app-health-interval-ms'],
        appHealthService: flags['app-health-service'],
        descriptors,
        onAppHealth: (serving) => discovery?.setHealth(serving),
        ...(identity ? { identity, identityFromStart: flags['cert-file'] !== undefined } : {}),
        observability: { service: flags.service, metrics: requestMetrics, accessLog, tracer },
      },
      config,
      // From a control plane the sidecar is not ready until its first snapshot is applied.
      flags.config !== undefined,
    );
    let discovery: DiscoveryClient | undefined;
    const ports = await sidecar.start();
    let stopping: Promise<void> | undefined;
    const admin = adminServer(sidecar, () => void stop('admin /drain'), { log, accessLog });
    const metrics = flags.metrics
      ? new SidecarMetrics({
          requests: requestMetrics,
          clusters: () => sidecar.clusterList(),
          connections: () => sidecar.connectionCounts(),
          configVersion: () => sidecar.config.version,
          nacks: () => ({ count: discovery?.nacks ?? 0, lastAt: discovery?.lastNackAt ?? 0 }),
          certificateExpiry: () => sidecar.certificateExpiry(),
        })
      : undefined;
    const health = healthServer(sidecar, metrics);
    const adminPort = await listenHttp(admin, flags['admin-port'], flags['admin-address']);
    const statsPort = await listenHttp(health, flags['stats-port'], flags['stats-address']);
    discovery = flags.config ? undefined : startDiscovery(flags, sidecar, ports.inboundPort, log, cpTrust, requestMetrics);
    const bound = { outbound: ports.outboundPort, inbound: ports.inboundPort, admin: adminPort, stats: statsPort };
    if (flags['ports-file']) await writePortsFile(flags['ports-file'], bound);
    log.info({ ...bound, service: flags.service, source: flags.config ?? flags['control-plane'] }, 'sidecar listening');

    function stop(why: string): Promise<void> {
      stopping ??= (async () => {
        log.info({ why, drainTimeoutMs: flags['drain-timeout-ms'] }, 'draining');
        if (discovery) {
          // Deregister first and give peers a moment to stop picking us, then GOAWAY.
          sidecar.notReady();
          discovery.drain();
          await new Promise((r) => setTimeout(r, flags['deregister-delay-ms']));
        }
        const result = await sidecar.drain();
        await exporter?.close();
        discovery?.stop();
        admin.close();
        health.close();
        log.info({ result }, 'stopped');
        // Let pino flush, then leave even if some socket still holds the loop.
        setTimeout(() => process.exit(0), 50).unref();
      })();
      return stopping;
    }
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
    process.on('SIGHUP', () => {
      if (!flags.config) return;
      if (flags['cert-file']) void sidecar.rotateCertificate();
      loadStaticConfig(flags.config).then(
        (next) => sidecar.apply(next),
        (err: Error) => log.error({ err: err.message }, 'config reload rejected; keeping the last good config'),
      );
    });
  },
};
