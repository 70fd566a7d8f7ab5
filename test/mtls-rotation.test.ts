/**
 * Rotation under traffic: 10-second certificates renewed at half-life, and a root rotation
 * (add a root, sign with it, drop the old one), all while a bidirectional stream runs for 60 s
 * and unary calls open new mTLS connections every second. Nothing may fail.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { startEtcd } from '../lib/etcd-process.js';
import { startRemora } from '../lib/processes.js';
import { startEchoServer, echoClient, unary, EchoService } from './fixtures/echo-service.js';
import { startSidecar, startControlPlane, getJson, eventually, type SidecarHandle } from './harness/sidecars.js';
import { meshSecrets, meshCaFromEtcd, leafFrom, mtlsClient } from './harness/mesh-ca.js';

const STREAM_MS = 60_000;
const PING_EVERY_MS = 200;

async function remora(args: string[], stdin?: string): Promise<string> {
  const proc = await startRemora(args, stdin === undefined ? {} : { stdin });
  const code = await proc.exited;
  if (code !== 0) throw new Error(`remora ${args[0]} ${args[1] ?? ''} failed: ${proc.output()}`);
  return proc.output();
}

interface Certs {
  identity: { spiffeId: string; issuerFingerprint: string; renewals: number; trustBundle: { fingerprint256: string }[] } | null;
}
const certsOf = (sc: SidecarHandle) => getJson<Certs>(sc.admin, '/certs');

test('certificates rotate every ~5 s and the root is replaced during a 60-second bidirectional stream, with no error', async (t) => {
  t.timeout(150_000);
  const etcd = await startEtcd();
  const secrets = await meshSecrets();
  await remora(['apply', '-f', '-', '--etcd-endpoints', etcd.endpoint], [
    'kind: MeshConfig',
    'metadata: { name: mesh, namespace: remora-system }',
    'spec: { mtlsMode: STRICT }',
    '---',
    // Short-lived upstream connections: new mTLS handshakes keep happening through every rotation.
    'kind: Cluster',
    'metadata: { name: beta, namespace: default }',
    'spec: { service: beta, maxSessionAgeMs: 1000 }',
    '',
  ].join('\n'));
  const cp = await startControlPlane([etcd.endpoint], [...secrets.cpArgs, '--cert-ttl-s', '10']);
  const beta = await startEchoServer(0, 'beta');
  const betaSc = await startSidecar({ controlPlanes: [cp.address], service: 'beta', appPort: beta.port, extraArgs: [...secrets.sidecarArgs, '--service-account', 'beta'] });
  const alphaSc = await startSidecar({ controlPlanes: [cp.address], service: 'alpha', extraArgs: [...secrets.sidecarArgs, '--service-account', 'alpha', '--register=false'] });
  const client = echoClient(`127.0.0.1:${alphaSc.outbound}`, 'beta');
  const clients: grpc.Client[] = [client];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await Promise.all([alphaSc, betaSc].map((s) => s.proc.stop()));
    await cp.proc.stop();
    beta.server.forceShutdown();
    await etcd.stop();
  });
  for (const sc of [alphaSc, betaSc]) {
    await eventually('sidecar ready', async () => (await fetch(`http://127.0.0.1:${sc.stats}/healthz/ready`)).status === 200, 20_000);
  }
  await eventually('beta reachable through alpha', async () => {
    await unary(client, Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 2000 });
    return true;
  });
  const oldCa = await meshCaFromEtcd(etcd.endpoint, secrets.passphrase);
  const startRenewals = (await certsOf(alphaSc)).identity!.renewals;

  // The long stream: one message every 200 ms, each echoed back, for 60 s.
  const errors: string[] = [];
  const stream = client.makeBidiStreamRequest(EchoService.bidi.path, (b: Buffer) => b, (b: Buffer) => b, new grpc.Metadata());
  let echoed = 0;
  let sent = 0;
  stream.on('data', () => echoed++);
  stream.on('error', (err: grpc.ServiceError) => errors.push(`stream: ${err.code} ${err.details}`));
  const streamDone = new Promise<void>((resolve) => stream.on('status', () => resolve()));
  const started = Date.now();
  const pinger = setInterval(() => {
    if (Date.now() - started >= STREAM_MS) {
      clearInterval(pinger);
      stream.end();
      return;
    }
    stream.write(Buffer.from(`ping ${sent++}`));
  }, PING_EVERY_MS);

  // Unary calls beside it, each likely on a fresh connection (sessions live 1 s).
  let unaryOk = 0;
  let unaryStop = false;
  const unaryLoop = (async () => {
    while (!unaryStop) {
      try {
        await unary(client, Buffer.from('u'), new grpc.Metadata(), { deadline: Date.now() + 3000 });
        unaryOk++;
      } catch (err) {
        errors.push(`unary: ${(err as grpc.ServiceError).code} ${(err as grpc.ServiceError).details}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  // Root rotation, each step seen by both sidecars before the next.
  await new Promise((r) => setTimeout(r, 8_000));
  const etcdArgs = ['--etcd-endpoints', etcd.endpoint];
  await remora(['ca', 'add-root', '--ca-key-passphrase-file', secrets.passphraseFile, ...etcdArgs]);
  const status = JSON.parse(await remora(['ca', 'status', '-o', 'json', ...etcdArgs])) as { fingerprint: string; signing: boolean }[];
  const newRoot = status.find((r) => !r.signing)!.fingerprint;
  t.is(status.length, 2);
  for (const sc of [alphaSc, betaSc]) await eventually('both roots trusted', async () => (await certsOf(sc)).identity?.trustBundle.length === 2, 10_000);
  await remora(['ca', 'use-root', newRoot, ...etcdArgs]);
  for (const sc of [alphaSc, betaSc]) await eventually('certificate from the new root', async () => (await certsOf(sc)).identity?.issuerFingerprint === newRoot, 10_000);
  await remora(['ca', 'remove-root', oldCa.fingerprint, ...etcdArgs]);
  for (const sc of [alphaSc, betaSc]) await eventually('old root dropped', async () => (await certsOf(sc)).identity?.trustBundle.length === 1, 10_000);
  const rotatedAt = Date.now() - started;

  // A peer with a certificate from the removed root is now refused.
  const newCa = await meshCaFromEtcd(etcd.endpoint, secrets.passphrase);
  const stale = mtlsClient(betaSc.inbound, 'beta', await leafFrom(oldCa, 'spiffe://cluster.local/ns/default/sa/alpha'), [newCa.certPem]);
  clients.push(stale);
  const staleResult = await unary(stale, Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 3000 }).then(() => 'OK', (err: grpc.ServiceError) => err.code);
  t.is(staleResult, grpc.status.UNAVAILABLE);

  await streamDone;
  unaryStop = true;
  await unaryLoop;
  const renewals = (await certsOf(alphaSc)).identity!.renewals - startRenewals;
  t.log(`stream: ${sent} sent, ${echoed} echoed; unary: ${unaryOk} ok; alpha renewed its certificate ${renewals} times; root rotated by ${rotatedAt} ms`);
  t.deepEqual(errors, []);
  t.is(echoed, sent, 'every stream message came back');
  t.true(sent >= STREAM_MS / PING_EVERY_MS - 10);
  // ~12 at half-life, plus the one for the new root.
  t.true(renewals >= 8 && renewals <= 20, `certificates renewed about every 5 s (got ${renewals})`);
  t.true(unaryOk > 200);
});
