/** `remora demo-service`: run one or more demo services in this process until SIGTERM/SIGINT. */
import os from 'node:os';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from '../cli/flags.js';
import { createLogger } from '../lib/log.js';
import { writePortsFile } from '../lib/ports-file.js';
import { parseKnobs } from './knobs.js';
import { startDemoServer } from './server.js';
import { isServiceName, SERVICE_NAMES, type ServiceName } from './services.js';

const SUMMARY = 'Run demo shop services (catalog, inventory, orders) with health, reflection and failure knobs.';

const flags = {
  name: { type: 'list', help: `service(s) to serve, comma-separated: ${SERVICE_NAMES.join(', ')}` },
  port: { type: 'int', help: 'port to listen on (0 = any free port; the "listening" log line has it)', default: 0 },
  address: { type: 'string', help: 'address to listen on', default: '127.0.0.1' },
  instance: { type: 'string', help: 'instance id, sent in the x-remora-instance header (default <hostname>-<pid>)' },
  upstream: { type: 'string', help: 'orders: host:port of the local sidecar outbound listener', default: '127.0.0.1:15001' },
  'catalog-authority': { type: 'string', help: 'orders: :authority for calls to catalog', default: 'catalog' },
  'inventory-authority': { type: 'string', help: 'orders: :authority for calls to inventory', default: 'inventory' },
  'initial-stock': { type: 'int', help: 'inventory: starting stock per product', default: 100_000 },
  'latency-ms': { type: 'int', help: 'delay added to every call', default: 0 },
  'latency-jitter-ms': { type: 'int', help: 'extra random delay, uniform in [0, N)', default: 0 },
  'error-rate': { type: 'string', help: 'fraction of calls (0..1) answered with --error-code', default: '0' },
  'error-code': { type: 'string', help: 'gRPC status (name or number) of injected errors', default: 'UNAVAILABLE' },
  'error-message': { type: 'string', help: 'status message of injected errors', default: 'injected fault' },
  'error-mode': {
    type: 'string',
    help: 'headers = trailers-only error response; trailers = response headers first, status in trailers',
    default: 'headers',
  },
  'crash-after': { type: 'int', help: 'SIGKILL this process when call N+1 arrives (0 = never)', default: 0 },
  'drain-delay-ms': { type: 'int', help: 'on SIGTERM, report NOT_SERVING this long before shutting down', default: 0 },
  'shutdown-timeout-ms': { type: 'int', help: 'then cancel calls still open after this long', default: 5000 },
  'ports-file': { type: 'string', help: 'once listening, write {"grpc": <port>} here (lets tests use --port 0)' },
} as const satisfies FlagDefs;

function parseNames(raw: readonly string[]): ServiceName[] {
  if (raw.length === 0) throw new UsageError(`--name is required (one or more of ${SERVICE_NAMES.join(', ')})`);
  const names: ServiceName[] = [];
  for (const n of raw) {
    if (!isServiceName(n)) throw new UsageError(`--name: unknown service ${JSON.stringify(n)}; known: ${SERVICE_NAMES.join(', ')}`);
    if (!names.includes(n)) names.push(n);
  }
  return names;
}

function parsePort(port: number): number {
  if (port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, got ${port}`);
  return port;
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

export const demoServiceCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const parsed = parseCommand(flags, argv);
    if (parsed.help) {
      process.stdout.write(usage('demo-service', SUMMARY, flags) + '\n');
      return;
    }
    const f = parsed.flags;
    const names = parseNames(f.name);
    const port = parsePort(f.port);
    const instance = f.instance ?? `${os.hostname()}-${process.pid}`;
    const knobs = parseKnobs({ ...f, instance });
    for (const flag of ['drain-delay-ms', 'shutdown-timeout-ms', 'initial-stock'] as const) {
      if (f[flag] < 0) throw new UsageError(`--${flag} must be >= 0, got ${f[flag]}`);
    }
    const log = createLogger(`demo-${names.join('+')}`);
    const server = await startDemoServer({
      names,
      address: f.address,
      port,
      knobs,
      context: {
        instance,
        log,
        initialStock: f['initial-stock'],
        upstream: {
          address: f.upstream,
          catalogAuthority: f['catalog-authority'],
          inventoryAuthority: f['inventory-authority'],
        },
      },
    });

    if (f['ports-file']) await writePortsFile(f['ports-file'], { grpc: server.port });

    const signal = await waitForSignal();
    log.info({ signal }, 'shutting down');
    // A second signal means "now": skip the rest of the drain.
    const impatient = () => {
      log.warn('second signal; stopping immediately');
      server.forceStop();
      process.exit(0);
    };
    process.once('SIGTERM', impatient);
    process.once('SIGINT', impatient);
    await server.drain(f['drain-delay-ms'], f['shutdown-timeout-ms']);
    log.info('stopped');
    process.exit(0);
  },
};
