/** `remora sidecar`: run the data plane from a static config file. */
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from '../cli/flags.js';
import { createLogger } from '../lib/log.js';
import { loadStaticConfig } from './config/static-file.js';
import { ConfigError } from './config/validate.js';
import { Sidecar } from './sidecar.js';
import { adminServer, healthServer, listenHttp } from './admin-server.js';
import { writePortsFile } from '../lib/ports-file.js';
import { installFastAsyncBind } from './perf/fast-async-bind.js';

const FLAGS = {
  config: { type: 'string', help: 'static mesh config (YAML: clusters, routes); SIGHUP reloads it', short: 'c' },
  service: { type: 'string', help: 'name of the service this sidecar rides with', default: 'unknown' },
  namespace: { type: 'string', help: 'namespace of the service', default: 'default' },
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
  'drain-timeout-ms': { type: 'int', help: 'how long in-flight calls may run after SIGTERM', default: 20_000 },
  'fast-async-bind': { type: 'bool', help: 'replace AsyncResource#bind with a lean equivalent (see sidecar/perf/fast-async-bind.ts)', default: true },
  'ports-file': { type: 'string', help: 'once listening, write the bound ports here as JSON (lets tests use port 0)' },
} as const satisfies FlagDefs;

const SUMMARY = 'Run the Remora sidecar: outbound (app → mesh) and inbound (mesh → app) gRPC proxies.';

export const sidecarCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const { flags, help } = parseCommand(FLAGS, argv);
    if (help) {
      process.stdout.write(usage('sidecar', SUMMARY, FLAGS) + '\n');
      return;
    }
    if (!flags.config) throw new UsageError('--config FILE is required until the control plane exists (see README)');
    for (const p of ['app-port', 'outbound-port', 'inbound-port', 'admin-port', 'stats-port'] as const) {
      if (flags[p] < 0 || flags[p] > 65535) throw new UsageError(`--${p} must be a port from 0 to 65535, got ${flags[p]}`);
    }
    if (flags['fast-async-bind']) installFastAsyncBind();
    const log = createLogger('sidecar');
    let config;
    try {
      config = await loadStaticConfig(flags.config);
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(err.message);
      throw err;
    }
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
      },
      config,
    );
    const ports = await sidecar.start();
    let stopping: Promise<void> | undefined;
    const admin = adminServer(sidecar, () => void stop('admin /drain'));
    const health = healthServer(sidecar);
    const adminPort = await listenHttp(admin, flags['admin-port'], flags['admin-address']);
    const statsPort = await listenHttp(health, flags['stats-port'], flags['stats-address']);
    const bound = { outbound: ports.outboundPort, inbound: ports.inboundPort, admin: adminPort, stats: statsPort };
    if (flags['ports-file']) await writePortsFile(flags['ports-file'], bound);
    log.info({ ...bound, service: flags.service, version: config.version }, 'sidecar ready');

    function stop(why: string): Promise<void> {
      stopping ??= (async () => {
        log.info({ why, drainTimeoutMs: flags['drain-timeout-ms'] }, 'draining');
        const result = await sidecar.drain();
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
      loadStaticConfig(flags.config!).then(
        (next) => sidecar.apply(next),
        (err: Error) => log.error({ err: err.message }, 'config reload rejected; keeping the last good config'),
      );
    });
  },
};
