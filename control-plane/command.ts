/** `remora control-plane`: the discovery API on etcd. Run several replicas against one etcd. */
import os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from '../cli/flags.js';
import { createLogger } from '../lib/log.js';
import { writePortsFile } from '../lib/ports-file.js';
import { listenHttp } from '../lib/json-http.js';
import { DiscoveryServer } from './discovery/discovery-server.js';
import { controlPlaneHttpServer } from './http-server.js';
import { EtcdStore } from './store/etcd-store.js';

const FLAGS = {
  'etcd-endpoints': { type: 'list', help: 'etcd client URLs, comma-separated', default: 'http://127.0.0.1:2379' },
  prefix: { type: 'string', help: 'etcd key prefix', default: '/remora/' },
  address: { type: 'string', help: 'listen address of the gRPC and HTTP ports', default: '0.0.0.0' },
  port: { type: 'int', help: 'discovery gRPC port (plaintext)', default: 15010 },
  'http-port': { type: 'int', help: 'HTTP port: /healthz/ready, /healthz/live, /debug/sidecars', default: 15014 },
  'replica-id': { type: 'string', help: 'this replica\'s name (default: hostname-pid)' },
  'lease-ttl-s': { type: 'int', help: 'etcd lease TTL for registrations: a dead replica\'s registrations vanish after this', default: 10 },
  'deregister-grace-ms': { type: 'int', help: 'how long a sidecar whose stream broke stays registered, waiting to reconnect', default: 10_000 },
  'ports-file': { type: 'string', help: 'once listening, write the bound ports here as JSON' },
} as const satisfies FlagDefs;

const SUMMARY = 'Run a control-plane replica: watch etcd, push config to sidecars, register their instances.';

export const controlPlaneCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const { flags, help } = parseCommand(FLAGS, argv);
    if (help) {
      process.stdout.write(usage('control-plane', SUMMARY, FLAGS) + '\n');
      return;
    }
    if (flags['etcd-endpoints'].length === 0) throw new UsageError('--etcd-endpoints needs at least one URL');
    if (flags['lease-ttl-s'] < 2) throw new UsageError('--lease-ttl-s must be at least 2');
    const replicaId = flags['replica-id'] ?? `${os.hostname()}-${process.pid}`;
    const log = createLogger('control-plane');
    const prefix = flags.prefix.endsWith('/') ? flags.prefix : `${flags.prefix}/`;
    const store = new EtcdStore({ endpoints: flags['etcd-endpoints'], prefix, leaseTtlSeconds: flags['lease-ttl-s'], replicaId });
    const discovery = new DiscoveryServer({ store, replicaId, log, deregisterGraceMs: flags['deregister-grace-ms'] });

    const grpcServer = new grpc.Server({
      // Find dead sidecars (and let them find a dead replica) within seconds, not TCP timeouts.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    });
    discovery.addTo(grpcServer);
    const port = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync(`${flags.address}:${flags.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const httpServer = controlPlaneHttpServer(discovery);
    const httpPort = await listenHttp(httpServer, flags['http-port'], flags.address);
    log.info({ replicaId, port, httpPort, etcd: flags['etcd-endpoints'] }, 'control plane listening; loading mesh state');
    if (flags['ports-file']) await writePortsFile(flags['ports-file'], { grpc: port, http: httpPort });

    let stopping = false;
    const stop = async (why: string): Promise<void> => {
      if (stopping) return;
      stopping = true;
      log.info({ why }, 'stopping');
      await discovery.stop();
      grpcServer.forceShutdown();
      httpServer.close();
      // Registrations stay on our lease until it expires: sidecars re-register with another replica.
      await store.close({ revokeLease: false }).catch(() => undefined);
      setTimeout(() => process.exit(0), 50).unref();
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));

    await discovery.start();
    log.info({ version: discovery.current()?.version }, 'control plane ready');
  },
};
