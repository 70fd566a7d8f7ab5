/**
 * Identity and mTLS end to end, all real: etcd, a control plane that is the mesh CA, sidecars
 * that get certificates from it, gRPC apps behind them, and test peers that present certificates
 * of their own making (another CA, expired, another identity).
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { startEtcd } from '../lib/etcd-process.js';
import { startRemora } from '../lib/processes.js';
import { startEchoServer, echoClient, unary, EchoService } from './fixtures/echo-service.js';
import { startSidecar, startControlPlane, getJson, eventually, type SidecarHandle } from './harness/sidecars.js';
import { meshSecrets, meshCaFromEtcd, otherCa, leafFrom, mtlsClient } from './harness/mesh-ca.js';
import { CertificateServiceClient } from '../protos/gen/remora/mesh/v1/certificate.js';
import { generateKeyPair } from '../lib/pki/keys.js';
import { createCsr } from '../lib/pki/x509.js';

const TD = 'cluster.local';
const id = (sa: string, ns = 'default') => `spiffe://${TD}/ns/${ns}/sa/${sa}`;

async function apply(etcd: string, yaml: string): Promise<void> {
  const proc = await startRemora(['apply', '-f', '-', '--etcd-endpoints', etcd], { stdin: yaml });
  const code = await proc.exited;
  if (code !== 0) throw new Error(`remora apply failed: ${proc.output()}`);
}

async function ready(sc: SidecarHandle): Promise<void> {
  await eventually('sidecar ready (certificate installed)', async () => {
    const res = await fetch(`http://127.0.0.1:${sc.stats}/healthz/ready`);
    return res.status === 200;
  }, 20_000);
}

/** The status code a call ends with (OK or the error's). */
async function callStatus(client: grpc.Client, path: string = EchoService.unary.path, md = new grpc.Metadata()): Promise<{ code: number; details: string }> {
  try {
    await unary(client, Buffer.from('ping'), md, { deadline: Date.now() + 5_000 }, path);
    return { code: grpc.status.OK, details: '' };
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details };
  }
}

interface CertsView {
  required: boolean;
  valid: boolean;
  identity: { spiffeId: string; notAfter: string; issuerFingerprint: string; renewals: number; lastError?: string; trustBundle: { fingerprint256: string }[] } | null;
}

test('STRICT mTLS: identities reach the app, plaintext and foreign, expired or misnamed certificates are refused, authorization allows and denies by identity and method', async (t) => {
  const etcd = await startEtcd();
  const secrets = await meshSecrets();
  await apply(etcd.endpoint, 'kind: MeshConfig\nmetadata: { name: mesh, namespace: remora-system }\nspec: { mtlsMode: STRICT }\n');
  const cp = await startControlPlane([etcd.endpoint], secrets.cpArgs);
  const beta = await startEchoServer(0, 'beta');
  const betaSc = await startSidecar({ controlPlanes: [cp.address], service: 'beta', appPort: beta.port, extraArgs: [...secrets.sidecarArgs, '--service-account', 'beta'] });
  const alphaSc = await startSidecar({ controlPlanes: [cp.address], service: 'alpha', extraArgs: [...secrets.sidecarArgs, '--service-account', 'alpha', '--register=false'] });
  const clients: grpc.Client[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await Promise.all([alphaSc, betaSc].map((s) => s.proc.stop()));
    await cp.proc.stop();
    beta.server.forceShutdown();
    await etcd.stop();
  });
  await Promise.all([ready(betaSc), ready(alphaSc)]);
  const viaAlpha = echoClient(`127.0.0.1:${alphaSc.outbound}`, 'beta');
  clients.push(viaAlpha);
  await eventually('alpha knows beta by its SPIFFE ID', async () => (await getJson<{ clusters: { name: string; endpoints: { identity?: string }[] }[] }>(alphaSc.admin, '/config_dump')).clusters.find((c) => c.name === 'beta')?.endpoints[0]?.identity === id('beta'));

  // A call through the mesh: mTLS between the sidecars, the caller's identity handed to the app,
  // and a forged identity header from the caller replaced.
  const forged = new grpc.Metadata();
  forged.set('x-forwarded-client-cert', `By=${id('beta')};URI=${id('admin')}`);
  t.is((await callStatus(viaAlpha, EchoService.unary.path, forged)).code, grpc.status.OK);
  t.is(String(beta.record.lastMetadata?.get('x-forwarded-client-cert')[0]), `By=${id('beta')};URI=${id('alpha')}`);
  const certs = await getJson<CertsView>(alphaSc.admin, '/certs');
  t.is(certs.identity?.spiffeId, id('alpha'));
  t.true(certs.required && certs.valid);

  // Plaintext straight to beta's inbound port: refused by the sidecar, never reaches the app.
  const callsBefore = beta.record.calls;
  const plain = echoClient(`127.0.0.1:${betaSc.inbound}`, 'beta');
  clients.push(plain);
  const plainResult = await callStatus(plain);
  t.is(plainResult.code, grpc.status.UNAUTHENTICATED);
  t.regex(plainResult.details, /requires mutual TLS/);

  const meshCa = await meshCaFromEtcd(etcd.endpoint, secrets.passphrase);
  const trust = [meshCa.certPem];
  // A certificate from another CA, and an expired one from the mesh CA: the handshake fails.
  const foreign = await otherCa();
  const foreignClient = mtlsClient(betaSc.inbound, 'beta', await leafFrom(foreign, id('alpha')), trust);
  const expiredClient = mtlsClient(betaSc.inbound, 'beta', await leafFrom(meshCa, id('alpha'), { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) }), trust);
  const notYetClient = mtlsClient(betaSc.inbound, 'beta', await leafFrom(meshCa, id('alpha'), { notBefore: new Date(Date.now() + 3600_000), notAfter: new Date(Date.now() + 7200_000) }), trust);
  clients.push(foreignClient, expiredClient, notYetClient);
  t.is((await callStatus(foreignClient)).code, grpc.status.UNAVAILABLE);
  t.is((await callStatus(expiredClient)).code, grpc.status.UNAVAILABLE);
  t.is((await callStatus(notYetClient)).code, grpc.status.UNAVAILABLE);
  t.is(beta.record.calls, callsBefore, 'no refused call reached the app');
  // The same kind of peer with a good certificate gets through: the refusals were for the certificates.
  const gamma = mtlsClient(betaSc.inbound, 'beta', await leafFrom(meshCa, id('gamma', 'other')), trust);
  clients.push(gamma);
  t.is((await callStatus(gamma)).code, grpc.status.OK);
  t.is(String(beta.record.lastMetadata?.get('x-forwarded-client-cert')[0]), `By=${id('beta')};URI=${id('gamma', 'other')}`);

  // Outbound: the server must present the identity the control plane names. Pin beta's endpoint
  // to another identity and alpha refuses the connection.
  await apply(etcd.endpoint, [
    'kind: Cluster',
    'metadata: { name: beta-pinned, namespace: default }',
    `spec: { service: beta, endpoints: [{ address: 127.0.0.1, port: ${betaSc.inbound}, identity: "${id('not-beta')}" }] }`,
    '---',
    'kind: Route',
    'metadata: { name: pinned, namespace: default }',
    'spec: { match: { service: pinned }, cluster: beta-pinned }',
    '',
  ].join('\n'));
  const pinned = echoClient(`127.0.0.1:${alphaSc.outbound}`, 'pinned');
  clients.push(pinned);
  const misnamed = await eventually('the pinned route is in place', async () => {
    const r = await callStatus(pinned);
    return r.code !== grpc.status.UNIMPLEMENTED && r;
  });
  t.is(misnamed.code, grpc.status.UNAVAILABLE);
  t.regex(misnamed.details, /server identity spiffe:\/\/cluster\.local\/ns\/default\/sa\/beta is not the expected spiffe:\/\/cluster\.local\/ns\/default\/sa\/not-beta/);

  // Authorization: only alpha, only Unary.
  await apply(etcd.endpoint, [
    'kind: AuthorizationPolicy',
    'metadata: { name: beta-callers, namespace: default }',
    `spec: { service: beta, action: ALLOW, rules: [{ from: ["${id('alpha')}"], methods: [/remora.test.Echo/Unary] }] }`,
    '',
  ].join('\n'));
  const denied = await eventually('gamma denied by the ALLOW policy', async () => {
    const r = await callStatus(gamma);
    return r.code === grpc.status.PERMISSION_DENIED && r;
  });
  t.regex(denied.details, /no ALLOW policy matches caller spiffe:\/\/cluster\.local\/ns\/other\/sa\/gamma/);
  t.is((await callStatus(viaAlpha)).code, grpc.status.OK, 'alpha may call Unary');
  const otherMethod = await callStatus(viaAlpha, EchoService.serverStream.path);
  t.is(otherMethod.code, grpc.status.PERMISSION_DENIED, 'but no other method');
  // A namespace-wide ALLOW lets gamma in; a DENY for alpha's Unary beats alpha's ALLOW.
  await apply(etcd.endpoint, [
    'kind: AuthorizationPolicy',
    'metadata: { name: other-namespace, namespace: default }',
    'spec: { service: beta, action: ALLOW, rules: [{ from: ["ns/other/*"] }] }',
    '---',
    'kind: AuthorizationPolicy',
    'metadata: { name: no-alpha, namespace: default }',
    `spec: { service: beta, action: DENY, rules: [{ from: ["${id('alpha')}"], methods: ["/remora.test.Echo/*"] }] }`,
    '',
  ].join('\n'));
  await eventually('gamma allowed by namespace', async () => (await callStatus(gamma)).code === grpc.status.OK);
  const alphaDenied = await eventually('alpha denied', async () => {
    const r = await callStatus(viaAlpha);
    return r.code === grpc.status.PERMISSION_DENIED && r;
  });
  t.regex(alphaDenied.details, /denied by policy default\/no-alpha/);
});

test('the CA refuses a bad token; a sidecar whose certificate expires stops being ready and recovers when the CA is back', async (t) => {
  const etcd = await startEtcd();
  const secrets = await meshSecrets();
  // Debug logs on, so the check that no secret is ever logged sees everything there is.
  let cp = await startControlPlane([etcd.endpoint], [...secrets.cpArgs, '--cert-ttl-s', '10'], undefined, { REMORA_LOG_LEVEL: 'debug' });
  const firstCp = cp;
  const app = await startEchoServer(0, 'delta');
  const good = await startSidecar({ controlPlanes: [cp.address], service: 'delta', appPort: app.port, extraArgs: [...secrets.sidecarArgs, '--service-account', 'delta'], env: { REMORA_LOG_LEVEL: 'debug' } });
  const { writeFile } = await import('node:fs/promises');
  const badTokenFile = `${secrets.dir}/bad-token`;
  await writeFile(badTokenFile, 'not-a-token-the-ca-knows');
  const bad = await startSidecar({ controlPlanes: [cp.address], service: 'epsilon', extraArgs: ['--ca-token-file', badTokenFile, '--register=false'] });
  t.teardown(async () => {
    await Promise.all([good, bad].map((s) => s.proc.stop()));
    await cp.proc.stop();
    app.server.forceShutdown();
    await etcd.stop();
  });

  // A CSR with a bad token, straight to the API.
  const keys = await generateKeyPair();
  const api = new CertificateServiceClient(cp.address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('authorization', 'Bearer wrong-token-wrong-token');
  const refused = await new Promise<grpc.ServiceError>((resolve) =>
    api.signCertificate({ csrPem: createCsr(keys, id('delta')), namespace: 'default', serviceAccount: 'delta', ttlSeconds: 0 }, md, (err) => resolve(err!)),
  );
  api.close();
  t.is(refused.code, grpc.status.UNAUTHENTICATED);
  t.regex(refused.details, /unknown bootstrap token/);
  t.false(refused.details.includes('wrong-token'), 'the token is never echoed');

  // The sidecar with a bad token: not ready, and /certs says why.
  const badCerts = await eventually('the bad sidecar reports the refusal', async () => {
    const c = await getJson<CertsView>(bad.admin, '/certs');
    return c.identity?.lastError ? c : undefined;
  });
  t.regex(badCerts.identity!.lastError!, /refused the certificate request: .*unknown bootstrap token/);
  t.is((await fetch(`http://127.0.0.1:${bad.stats}/healthz/ready`)).status, 503);

  // The good one is ready; with the CA gone its 10 s certificate runs out and readiness follows.
  await ready(good);
  await cp.proc.stop();
  const expired = await eventually('readiness false once the certificate expired', async () => {
    const res = await fetch(`http://127.0.0.1:${good.stats}/healthz/ready`);
    const body = (await res.json()) as { certificate: { valid: boolean } };
    return res.status === 503 && !body.certificate.valid && body;
  }, 20_000);
  t.false(expired.certificate.valid);
  cp = await startControlPlane([etcd.endpoint], [...secrets.cpArgs, '--cert-ttl-s', '10', '--port', String(cp.grpc)]);
  await ready(good);
  // Nothing secret in any log: no private key, no token, no passphrase.
  const logs = [firstCp.proc.output(), good.proc.output(), bad.proc.output()].join('\n');
  t.true(logs.includes('certificate issued'), 'the debug logs were captured');
  for (const secret of ['PRIVATE KEY', secrets.token, secrets.passphrase, 'not-a-token-the-ca-knows', 'wrong-token']) {
    t.false(logs.includes(secret), `a log contains ${secret === 'PRIVATE KEY' ? 'a private key' : 'a secret'}`);
  }
});

test('sidecars reach the control plane over its TLS port, verified with the mesh roots; a sidecar trusting another CA cannot', async (t) => {
  const etcd = await startEtcd();
  const secrets = await meshSecrets();
  const cp = await startControlPlane([etcd.endpoint], secrets.cpArgs);
  const { writeFile } = await import('node:fs/promises');
  // The control plane creates the mesh CA in etcd just after it starts listening.
  const bundle = await eventually('the mesh CA exists', async () => {
    const p = await startRemora(['ca', 'bundle', '--etcd-endpoints', etcd.endpoint]);
    return (await p.exited) === 0 && p;
  });
  t.is(await bundle.exited, 0);
  const rootsFile = `${secrets.dir}/roots.pem`;
  await writeFile(rootsFile, bundle.output());
  const wrongRootsFile = `${secrets.dir}/wrong-roots.pem`;
  await writeFile(wrongRootsFile, (await otherCa()).certPem);
  const app = await startEchoServer(0, 'zeta');
  const good = await startSidecar({ controlPlanes: [cp.tlsAddress], service: 'zeta', appPort: app.port, extraArgs: [...secrets.sidecarArgs, '--control-plane-ca-file', rootsFile] });
  const lost = await startSidecar({ controlPlanes: [cp.tlsAddress], service: 'eta', extraArgs: [...secrets.sidecarArgs, '--control-plane-ca-file', wrongRootsFile, '--register=false'] });
  t.teardown(async () => {
    await Promise.all([good, lost].map((s) => s.proc.stop()));
    await cp.proc.stop();
    app.server.forceShutdown();
    await etcd.stop();
  });
  await ready(good);
  const certs = await getJson<CertsView>(good.admin, '/certs');
  t.is(certs.identity?.spiffeId, id('default'));
  // PERMISSIVE (the default): plaintext and mTLS callers on the same inbound port.
  const plain = echoClient(`127.0.0.1:${good.inbound}`, 'zeta');
  const meshCa = await meshCaFromEtcd(etcd.endpoint, secrets.passphrase);
  const tls = mtlsClient(good.inbound, 'zeta', await leafFrom(meshCa, id('theta')), [meshCa.certPem]);
  // Each call's own answer says which identity the app saw (the app's "last call" record could be
  // overwritten by a stray call from a concurrent test's process that reached a reused port).
  const seenBy = async (client: grpc.Client): Promise<string> => String((await unary(client, Buffer.from('ping'))).headers.get('x-seen-client-cert')[0]);
  t.is(await seenBy(plain), '', 'a plaintext caller has no identity');
  t.is(await seenBy(tls), `By=${id('default')};URI=${id('theta')}`);
  // Interleaved on the same port, each caller keeps its own answer.
  const mixed = await Promise.all(Array.from({ length: 40 }, (_, i) => seenBy(i % 2 ? tls : plain)));
  t.deepEqual(mixed, Array.from({ length: 40 }, (_, i) => (i % 2 ? `By=${id('default')};URI=${id('theta')}` : '')));
  plain.close();
  tls.close();
  await new Promise((r) => setTimeout(r, 2000));
  const res = await fetch(`http://127.0.0.1:${lost.stats}/healthz/ready`);
  t.is(res.status, 503, 'no config and no certificate from a control plane it cannot verify');
  t.regex(lost.proc.output(), /control plane|certificate|UNAVAILABLE/i);
});
