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
import { readFile } from 'node:fs/promises';
import { MeshCa } from './ca/mesh-ca.js';
import { CaConfigError, startCa, type CaSettings } from './ca/ca-loader.js';
import { CaStateError } from './ca/ca-state.js';
import { PkiError } from '../lib/pki/x509.js';
import { addCertificateService } from './ca/certificate-service.js';
import { ServingCertificate } from './ca/serving-certificate.js';
import { ControlPlaneMetrics } from './observability/cp-metrics.js';
import { startWebhookServer } from './injection/webhook-server.js';
import { injectOptions, InjectOptionsError } from './injection/options.js';
import { remoraVersion } from '../cli/inject-command.js';
import { anyOf, type Authenticator } from './ca/authenticator.js';
import { loadBootstrapTokens } from './ca/bootstrap-tokens.js';
import { KubernetesTokenReviewer, inClusterTokenReviewOptions } from './ca/token-review.js';

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
  'webhook-port': { type: 'int', help: 'Kubernetes mutating admission webhook (HTTPS, certificate from the mesh CA); -1 = none', default: 15_017 },
  'webhook-dns-names': { type: 'list', help: 'DNS names in the webhook\'s certificate (its Service)', default: 'remora-webhook.remora-system.svc,remora-webhook.remora-system,remora-webhook' },
  'inject-image': { type: 'string', help: 'sidecar image the webhook injects', default: 'localhost/remora:local' },
  'inject-mode': { type: 'string', help: 'native (init container with restartPolicy Always, Kubernetes 1.29+) or classic (an ordinary container)', default: 'native' },
  'inject-control-plane': { type: 'string', help: 'control-plane address injected sidecars dial (TLS)', default: 'remora-control-plane.remora-system.svc:15012' },
  'tls-port': { type: 'int', help: 'discovery and certificate gRPC port with TLS (a certificate from the mesh CA; sidecars verify it with --control-plane-ca-file); -1 = none', default: 15_012 },
  'tls-dns-names': { type: 'list', help: 'DNS names in the TLS port\'s certificate, besides its SPIFFE ID', default: `localhost,remora-control-plane,remora-control-plane.remora-system.svc,${os.hostname()}` },
  ca: { type: 'string', help: 'mesh CA: etcd (a root kept in etcd, key encrypted), files (--ca-cert-file/--ca-key-file, e.g. an intermediate of your company root), or none (plaintext mesh)', default: 'etcd' },
  'ca-key-passphrase-file': { type: 'string', help: 'with --ca etcd: file holding the passphrase (16+ characters) that encrypts the CA keys in etcd; the same on every replica' },
  'ca-cert-file': { type: 'string', help: 'with --ca files: the CA certificate (and its chain) that signs workload certificates' },
  'ca-key-file': { type: 'string', help: 'with --ca files: its private key' },
  'ca-bundle-file': { type: 'string', help: 'with --ca files: the roots sidecars trust (default: the CA certificate itself)' },
  'cert-ttl-s': { type: 'int', help: 'lifetime of workload certificates (sidecars may ask for less)', default: 86_400 },
  'bootstrap-token-file': { type: 'string', help: 'tokens sidecars may present to get certificates, one per line: <token> [*|<ns>/*|<ns>/<sa>]' },
  'kube-api-server': { type: 'string', help: 'check Kubernetes service-account tokens with this API server\'s TokenReview (default in a pod: the in-cluster API server)' },
  'kube-token-file': { type: 'string', help: 'our own service-account token for the TokenReview call', default: '/var/run/secrets/kubernetes.io/serviceaccount/token' },
  'kube-ca-file': { type: 'string', help: 'the API server\'s CA certificate', default: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt' },
  'token-audience': { type: 'list', help: 'audiences a sidecar token must be issued for (TokenReview)' },
} as const satisfies FlagDefs;

type Flags = ReturnType<typeof parseCommand<typeof FLAGS>>['flags'];

function caSettings(flags: Flags): CaSettings {
  switch (flags.ca) {
    case 'none':
      return { kind: 'none' };
    case 'files':
      if (!flags['ca-cert-file'] || !flags['ca-key-file']) throw new UsageError('--ca files needs --ca-cert-file and --ca-key-file');
      return { kind: 'files', certFile: flags['ca-cert-file'], keyFile: flags['ca-key-file'], bundleFile: flags['ca-bundle-file'] };
    case 'etcd':
      if (!flags['ca-key-passphrase-file']) {
        throw new UsageError(
          'the mesh CA keeps its root key in etcd encrypted with a passphrase: give --ca-key-passphrase-file FILE (the same on every replica), ' +
            'or --ca files with your own CA certificate and key, or --ca none for a plaintext mesh',
        );
      }
      return { kind: 'etcd', passphraseFile: flags['ca-key-passphrase-file'] };
    default:
      throw new UsageError(`--ca must be etcd, files or none, got ${JSON.stringify(flags.ca)}`);
  }
}

async function authenticators(flags: Flags): Promise<Authenticator[]> {
  const list: Authenticator[] = [];
  if (flags['bootstrap-token-file']) {
    try {
      list.push(await loadBootstrapTokens(flags['bootstrap-token-file']));
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  if (flags['kube-api-server']) {
    const caPem = await readFile(flags['kube-ca-file'], 'utf8').catch(() => undefined);
    const tokenFile = flags['kube-token-file'];
    list.push(new KubernetesTokenReviewer({
      apiServer: flags['kube-api-server'],
      bearerToken: async () => (await readFile(tokenFile, 'utf8')).trim(),
      ...(caPem !== undefined ? { caPem } : {}),
      ...(flags['token-audience'].length > 0 ? { audiences: flags['token-audience'] } : {}),
    }));
  } else {
    const inCluster = inClusterTokenReviewOptions();
    if (inCluster) list.push(new KubernetesTokenReviewer({ ...inCluster, ...(flags['token-audience'].length > 0 ? { audiences: flags['token-audience'] } : {}) }));
  }
  return list;
}

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
    if (flags['cert-ttl-s'] < 10) throw new UsageError('--cert-ttl-s must be at least 10');
    const ca = caSettings(flags);
    const auth = ca.kind === 'none' ? [] : await authenticators(flags);
    const replicaId = flags['replica-id'] ?? `${os.hostname()}-${process.pid}`;
    const log = createLogger('control-plane');
    const prefix = flags.prefix.endsWith('/') ? flags.prefix : `${flags.prefix}/`;
    const store = new EtcdStore({ endpoints: flags['etcd-endpoints'], prefix, leaseTtlSeconds: flags['lease-ttl-s'], replicaId });
    const meshCa = new MeshCa(flags['cert-ttl-s'], flags['cert-ttl-s']);
    const metrics: ControlPlaneMetrics = new ControlPlaneMetrics({
      connectedSidecars: () => discovery.connectedCount(),
      certificatesIssued: () => meshCa.issued,
      watchLagSeconds: () => discovery.watchLagSeconds(),
    });
    const discovery = new DiscoveryServer({ store, replicaId, log, deregisterGraceMs: flags['deregister-grace-ms'], ca: meshCa, metrics });
    if (ca.kind !== 'none' && auth.length === 0) {
      log.warn('no way to authenticate sidecars is configured (--bootstrap-token-file, --kube-api-server): every certificate request will be refused');
    }

    const grpcServer = new grpc.Server({
      // Find dead sidecars (and let them find a dead replica) within seconds, not TCP timeouts.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    });
    discovery.addTo(grpcServer);
    addCertificateService(grpcServer, {
      ca: meshCa,
      authenticator: ca.kind === 'none' ? undefined : anyOf(auth),
      trustDomain: () => discovery.trustDomain(),
      log,
      onRefused: () => metrics.certificateRefusals.inc(),
    });
    const port = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync(`${flags.address}:${flags.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const httpServer = controlPlaneHttpServer(discovery, metrics);
    const httpPort = await listenHttp(httpServer, flags['http-port'], flags.address);
    log.info({ replicaId, port, httpPort, etcd: flags['etcd-endpoints'] }, 'control plane listening; loading mesh state');
    // The TLS port listens at once; it completes handshakes once the CA has issued its certificate.
    const serving = ca.kind === 'none' || flags['tls-port'] < 0 ? undefined : new ServingCertificate(meshCa, flags['tls-dns-names'], () => discovery.trustDomain(), log);
    const tlsPort = serving
      ? await new Promise<number>((resolve, reject) =>
          grpcServer.bindAsync(
            `${flags.address}:${flags['tls-port']}`,
            // The provider serves both roles: grpc-js has swapped the two parameters in some versions.
            grpc.experimental.createCertificateProviderServerCredentials(serving, serving, false),
            (err, p) => (err ? reject(err) : resolve(p)),
          ),
        )
      : undefined;
    // The admission webhook: HTTPS with its own certificate from the mesh CA (none: --ca none or --webhook-port -1).
    let inject: ReturnType<typeof injectOptions>;
    try {
      inject = injectOptions({ image: flags['inject-image'], mode: flags['inject-mode'] as 'native' | 'classic', controlPlane: flags['inject-control-plane'], version: await remoraVersion() });
    } catch (err) {
      if (err instanceof InjectOptionsError) throw new UsageError(`--inject-*: ${err.message}`);
      throw err;
    }
    const webhookCert = ca.kind === 'none' || flags['webhook-port'] < 0 ? undefined : new ServingCertificate(meshCa, flags['webhook-dns-names'], () => discovery.trustDomain(), log, 'remora-webhook');
    let webhookTls: { key: string; cert: string } | undefined;
    const webhook = webhookCert
      ? await startWebhookServer({ address: flags.address, port: flags['webhook-port'], tls: () => webhookTls, injectOptions: inject, log })
      : undefined;
    webhookCert?.addIdentityCertificateListener((update) => {
      webhookTls = update ? { key: update.privateKey.toString(), cert: update.certificate.toString() } : undefined;
      webhook?.refreshTls();
    });
    if (flags['ports-file']) await writePortsFile(flags['ports-file'], { grpc: port, http: httpPort, ...(tlsPort !== undefined ? { tls: tlsPort } : {}), ...(webhook ? { webhook: webhook.port } : {}) });

    let stopping = false;
    const stop = async (why: string): Promise<void> => {
      if (stopping) return;
      stopping = true;
      log.info({ why }, 'stopping');
      serving?.stop();
      webhookCert?.stop();
      await webhook?.close();
      await caWatch?.close();
      await discovery.stop();
      grpcServer.forceShutdown();
      httpServer.close();
      // Registrations stay on our lease until it expires: sidecars re-register with another replica.
      await store.close({ revokeLease: false }).catch(() => undefined);
      setTimeout(() => process.exit(0), 50).unref();
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));

    let caWatch: { close(): Promise<void> } | undefined;
    // The CA first: the first snapshot then already names the trust bundle, so sidecars start mTLS at once.
    for (;;) {
      try {
        caWatch = await startCa(ca, store, meshCa, log, () => {
          discovery.caChanged();
          serving?.caChanged();
          webhookCert?.caChanged();
        });
        break;
      } catch (err) {
        if (err instanceof CaConfigError || err instanceof CaStateError || err instanceof PkiError) {
          log.fatal({ err: err.message }, 'cannot start the mesh CA');
          setTimeout(() => process.exit(1), 50);
          return;
        }
        log.warn({ err: (err as Error).message }, 'cannot load the mesh CA from etcd; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    await discovery.start();
    if (webhookCert) await webhookCert.refresh();
    if (serving) {
      await serving.refresh();
      log.info({ tlsPort }, 'control plane TLS port serving');
    }
    log.info({ version: discovery.current()?.version }, 'control plane ready');
  },
};
