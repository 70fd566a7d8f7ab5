/**
 * The mesh PKI: key pairs, SPIFFE IDs, CSRs, CA and workload certificates.
 * The strongest checks run certificates through node's own TLS stack (mutual TLS 1.3 with ALPN h2
 * on 127.0.0.1): if OpenSSL accepts the chain, the certificates are right.
 */
import test from 'ava';
import crypto from 'node:crypto';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import forge from 'node-forge';
import { decryptPrivateKey, encryptPrivateKey, generateKeyPair, type KeyPair } from '../lib/pki/keys.js';
import { parseSpiffeId, spiffeId } from '../lib/pki/spiffe.js';
import {
  PkiError,
  certificateInfo,
  createCsr,
  createIntermediateCa,
  createSelfSignedCa,
  keyMatchesCertificate,
  readCsr,
  signWorkloadCertificate,
  splitPemBundle,
} from '../lib/pki/x509.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const WEB = 'spiffe://cluster.local/ns/default/sa/web';
const API = 'spiffe://cluster.local/ns/default/sa/api';

// ---------------------------------------------------------------------------------------------
// Fixtures: keys are made once (asynchronously, in parallel) and shared by the tests.

interface Fixtures {
  root: KeyPair;
  rootPem: string;
  otherRoot: KeyPair;
  otherRootPem: string;
  web: KeyPair;
  api: KeyPair;
  intermediate: KeyPair;
}

let fixtures: Promise<Fixtures> | undefined;

function getFixtures(): Promise<Fixtures> {
  fixtures ??= (async () => {
    const [root, otherRoot, web, api, intermediate] = await Promise.all([
      generateKeyPair(),
      generateKeyPair(),
      generateKeyPair(),
      generateKeyPair(),
      generateKeyPair(),
    ]);
    const now = Date.now();
    const validity = { notBefore: new Date(now - HOUR), notAfter: new Date(now + 365 * DAY) };
    const rootPem = createSelfSignedCa({ keys: root, commonName: 'Remora test root', organization: 'Remora', ...validity });
    const otherRootPem = createSelfSignedCa({ keys: otherRoot, commonName: 'Someone else', ...validity });
    return { root, rootPem, otherRoot, otherRootPem, web, api, intermediate };
  })();
  return fixtures;
}

/** A workload certificate valid from a minute ago for an hour, unless told otherwise. */
function leaf(
  keys: KeyPair,
  id: string,
  issuer: { certPem: string; keyPem: string },
  validity: { notBefore: Date; notAfter: Date } = { notBefore: new Date(Date.now() - MINUTE), notAfter: new Date(Date.now() + HOUR) },
): string {
  return signWorkloadCertificate({ subjectPublicKeyPem: keys.publicKeyPem, spiffeId: id, issuerCertPem: issuer.certPem, issuerKeyPem: issuer.keyPem, ...validity });
}

// ---------------------------------------------------------------------------------------------
// A mutual TLS 1.3 handshake over 127.0.0.1, recording what each side saw. Everything it opens is closed.

interface Side {
  key: string;
  /** Leaf certificate, optionally followed by intermediates. */
  cert: string;
  /** Trusted roots. */
  ca: string;
}

interface HandshakeResult {
  server: { authorized: boolean; authorizationError?: string; peerSan?: string; alpn?: string | false | null; protocol?: string | null | undefined } | undefined;
  serverClientErrors: string[];
  client: { authorized: boolean; peerSan?: string; alpn?: string | false | null; protocol?: string | null | undefined } | undefined;
  clientError: string | undefined;
  clientGotData: string;
}

/**
 * `serverRejectsUnauthorized: false` makes the server accept any client so that the test can see why
 * it would have been refused (node's TLS 1.3 server otherwise just drops the connection after the
 * client's handshake has completed: the client sees a clean end and no error).
 */
async function handshake(serverSide: Side, clientSide: Side, expectedServerId: string, serverRejectsUnauthorized = true): Promise<HandshakeResult> {
  const result: HandshakeResult = { server: undefined, serverClientErrors: [], client: undefined, clientError: undefined, clientGotData: '' };
  const serverSockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({
    key: serverSide.key,
    cert: serverSide.cert,
    ca: serverSide.ca,
    requestCert: true,
    rejectUnauthorized: serverRejectsUnauthorized,
    ALPNProtocols: ['h2'],
    minVersion: 'TLSv1.3',
  });
  server.on('secureConnection', (socket) => {
    serverSockets.add(socket);
    socket.on('close', () => serverSockets.delete(socket));
    socket.on('error', () => {});
    result.server = {
      authorized: socket.authorized,
      ...(socket.authorizationError === undefined ? {} : { authorizationError: String(socket.authorizationError) }),
      peerSan: socket.getPeerCertificate().subjectaltname,
      alpn: socket.alpnProtocol,
      protocol: socket.getProtocol(),
    };
    socket.end('hello from the server');
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => result.serverClientErrors.push(err.code ?? err.message));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  try {
    await new Promise<void>((resolve) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        key: clientSide.key,
        cert: clientSide.cert,
        ca: clientSide.ca,
        ALPNProtocols: ['h2'],
        minVersion: 'TLSv1.3',
        // The mesh identifies servers by SPIFFE ID, not host name.
        checkServerIdentity: (_host, cert) =>
          (cert.subjectaltname ?? '').split(', ').includes(`URI:${expectedServerId}`)
            ? undefined
            : new Error(`server is not ${expectedServerId}: ${cert.subjectaltname ?? 'no SAN'}`),
      });
      const timer = setTimeout(() => socket.destroy(new Error('handshake test timed out')), 10_000);
      socket.on('secureConnect', () => {
        result.client = {
          authorized: socket.authorized,
          peerSan: socket.getPeerCertificate().subjectaltname,
          alpn: socket.alpnProtocol,
          protocol: socket.getProtocol(),
        };
      });
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (result.clientGotData += chunk));
      socket.on('error', (err: NodeJS.ErrnoException) => (result.clientError ??= err.code ?? err.message));
      socket.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } finally {
    for (const socket of serverSockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Keys

test('generateKeyPair is asynchronous (the event loop keeps turning) and yields a usable RSA 2048 pair', async (t) => {
  let ticks = 0;
  let pending = true;
  const spin = (): void => {
    if (!pending) return;
    ticks++;
    setImmediate(spin);
  };
  const promise = generateKeyPair();
  t.true(promise instanceof Promise);
  setImmediate(spin);
  const keys = await promise;
  pending = false;
  t.true(ticks > 0, 'the event loop ran while the key was being generated');

  t.regex(keys.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  t.regex(keys.publicKeyPem, /^-----BEGIN PUBLIC KEY-----\n/);
  const privateKey = crypto.createPrivateKey(keys.privateKeyPem);
  t.is(privateKey.asymmetricKeyType, 'rsa');
  t.is(privateKey.asymmetricKeyDetails?.modulusLength, 2048);
  const data = Buffer.from('remora');
  const signature = crypto.sign('sha256', data, privateKey);
  t.true(crypto.verify('sha256', data, keys.publicKeyPem, signature));
});

test('encryptPrivateKey / decryptPrivateKey round trip; a wrong passphrase is bad-passphrase', async (t) => {
  const { web } = await getFixtures();
  const encrypted = encryptPrivateKey(web.privateKeyPem, 'correct horse');
  t.regex(encrypted, /^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
  t.false(encrypted.includes(web.privateKeyPem.split('\n')[1]!));
  t.is(decryptPrivateKey(encrypted, 'correct horse'), web.privateKeyPem);

  const wrong = t.throws(() => decryptPrivateKey(encrypted, 'battery staple'), { instanceOf: PkiError });
  t.is(wrong?.code, 'bad-passphrase');
  t.regex(wrong?.message ?? '', /passphrase is wrong/);
  t.is((t.throws(() => decryptPrivateKey(encrypted, ''), { instanceOf: PkiError }))?.code, 'bad-passphrase');
  t.is((t.throws(() => encryptPrivateKey(web.privateKeyPem, ''), { instanceOf: PkiError }))?.code, 'bad-passphrase');
  // Not encrypted at all, or not a key: bad-key, and the message does not echo the key.
  const notEncrypted = t.throws(() => decryptPrivateKey(web.privateKeyPem, 'x'), { instanceOf: PkiError });
  t.is(notEncrypted?.code, 'bad-key');
  t.false(notEncrypted?.message.includes(web.privateKeyPem.split('\n')[1]!));
  t.is((t.throws(() => encryptPrivateKey('not a key', 'x'), { instanceOf: PkiError }))?.code, 'bad-key');
  // An encrypted key cannot be used to sign until it is decrypted.
  const { rootPem, root } = await getFixtures();
  const err = t.throws(
    () => signWorkloadCertificate({ subjectPublicKeyPem: web.publicKeyPem, spiffeId: WEB, notBefore: new Date(), notAfter: new Date(Date.now() + HOUR), issuerCertPem: rootPem, issuerKeyPem: encryptPrivateKey(root.privateKeyPem, 'p') }),
    { instanceOf: PkiError },
  );
  t.is(err?.code, 'bad-key');
  t.regex(err?.message ?? '', /encrypted/);
});

// ---------------------------------------------------------------------------------------------
// SPIFFE IDs

test('spiffeId / parseSpiffeId round trip', (t) => {
  const id = { trustDomain: 'cluster.local', namespace: 'payments', serviceAccount: 'Ledger_v2.svc-1' };
  const uri = spiffeId(id);
  t.is(uri, 'spiffe://cluster.local/ns/payments/sa/Ledger_v2.svc-1');
  t.deepEqual(parseSpiffeId(uri), id);
  t.deepEqual(parseSpiffeId('spiffe://mesh/ns/a/sa/b'), { trustDomain: 'mesh', namespace: 'a', serviceAccount: 'b' });
  t.is(parseSpiffeId(`spiffe://td/ns/${'a'.repeat(63)}/sa/x`)?.namespace, 'a'.repeat(63));
});

test('parseSpiffeId rejects anything but exactly spiffe://<td>/ns/<ns>/sa/<sa>', (t) => {
  for (const bad of [
    '',
    'spiffe://cluster.local/ns/default/sa/',
    'spiffe://cluster.local/ns//sa/web',
    'spiffe:///ns/default/sa/web',
    'SPIFFE://cluster.local/ns/default/sa/web',
    'https://cluster.local/ns/default/sa/web',
    'spiffe://Cluster.Local/ns/default/sa/web', // trust domain must be lower case
    'spiffe://cluster.local:8443/ns/default/sa/web',
    'spiffe://user@cluster.local/ns/default/sa/web',
    'spiffe://-cluster.local/ns/default/sa/web',
    'spiffe://cluster..local/ns/default/sa/web',
    'spiffe://cluster_local/ns/default/sa/web',
    'spiffe://cluster.local/ns/Default/sa/web', // namespace must be a lower-case DNS label
    'spiffe://cluster.local/ns/de_fault/sa/web',
    'spiffe://cluster.local/ns/-default/sa/web',
    `spiffe://cluster.local/ns/${'a'.repeat(64)}/sa/web`,
    'spiffe://cluster.local/ns/default/sa/web/extra',
    'spiffe://cluster.local/ns/default/sa/web/',
    'spiffe://cluster.local/ns/default/sa/we b',
    'spiffe://cluster.local/ns/default/sa/web%20',
    'spiffe://cluster.local/ns/default/sa/web?x=1',
    'spiffe://cluster.local/ns/default/sa/web#frag',
    'spiffe://cluster.local/ns/default/sa/..',
    'spiffe://cluster.local/ns/default/sa/.',
    'spiffe://cluster.local/ns/default/sa/web\n',
    'spiffe://cluster.local/sa/web/ns/default',
    'spiffe://cluster.local/namespace/default/sa/web',
    `spiffe://cluster.local/ns/default/sa/${'a'.repeat(2048)}`,
  ]) {
    t.is(parseSpiffeId(bad), undefined, bad);
  }
  t.throws(() => spiffeId({ trustDomain: 'cluster.local', namespace: 'Default', serviceAccount: 'web' }), { instanceOf: RangeError, message: /namespace "Default"/ });
  t.throws(() => spiffeId({ trustDomain: 'x/y', namespace: 'a', serviceAccount: 'web' }), { instanceOf: RangeError, message: /trust domain/ });
  t.throws(() => spiffeId({ trustDomain: 'td', namespace: 'a', serviceAccount: 'w/x' }), { instanceOf: RangeError, message: /service account/ });
});

// ---------------------------------------------------------------------------------------------
// Certificates

test('a self-signed CA certificate has the CA extensions, a positive 16-byte serial, and reads back', async (t) => {
  const { root, rootPem } = await getFixtures();
  const info = certificateInfo(rootPem);
  t.is(info.subject, 'O=Remora\nCN=Remora test root');
  t.is(info.issuer, info.subject);
  t.true(info.isCa);
  t.deepEqual(info.uris, []);
  t.regex(info.serialNumber, /^[4-7][0-9A-F]{31}$/);
  t.regex(info.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  t.true(info.notBefore < new Date() && info.notAfter > new Date());
  const x = new crypto.X509Certificate(rootPem);
  t.true(x.verify(crypto.createPublicKey(root.publicKeyPem)));
  t.true(x.checkIssued(x));
  t.true(keyMatchesCertificate(root.privateKeyPem, rootPem));
  // Two CAs from the same key still get different serials.
  const again = createSelfSignedCa({ keys: root, commonName: 'Remora test root', notBefore: new Date(), notAfter: new Date(Date.now() + DAY) });
  t.not(certificateInfo(again).serialNumber, info.serialNumber);
  // Names are UTF8Strings, so characters PrintableString cannot hold survive.
  const fancy = createSelfSignedCa({ keys: root, commonName: 'mesh_CA @ Zürich', organization: 'Ünïcode & Co', notBefore: new Date(), notAfter: new Date(Date.now() + DAY) });
  t.is(certificateInfo(fancy).subject, 'O=Ünïcode & Co\nCN=mesh_CA @ Zürich');
  t.true(new crypto.X509Certificate(fancy).checkIssued(new crypto.X509Certificate(fancy)));
  // Times are whole seconds.
  const notBefore = new Date('2030-01-02T03:04:05.678Z');
  const exact = certificateInfo(createSelfSignedCa({ keys: root, commonName: 'x', notBefore, notAfter: new Date('2051-01-01T00:00:00Z') }));
  t.is(exact.notBefore.toISOString(), '2030-01-02T03:04:05.000Z');
  t.is(exact.notAfter.toISOString(), '2051-01-01T00:00:00.000Z'); // GeneralizedTime from 2050 on
});

test('root → leaf: X509Certificate#verify, certificateInfo, and mutual TLS 1.3 (h2) with node’s TLS', async (t) => {
  const { root, rootPem, web, api } = await getFixtures();
  const issuer = { certPem: rootPem, keyPem: root.privateKeyPem };
  const webPem = signWorkloadCertificate({
    subjectPublicKeyPem: web.publicKeyPem,
    spiffeId: WEB,
    dnsNames: ['web.default.svc', 'web.default.svc.cluster.local'],
    notBefore: new Date(Date.now() - MINUTE),
    notAfter: new Date(Date.now() + HOUR),
    issuerCertPem: rootPem,
    issuerKeyPem: root.privateKeyPem,
  });
  const apiPem = leaf(api, API, issuer);

  const x = new crypto.X509Certificate(webPem);
  t.true(x.verify(crypto.createPublicKey(root.publicKeyPem)));
  t.true(x.checkIssued(new crypto.X509Certificate(rootPem)));
  t.false(x.ca);
  const info = certificateInfo(webPem);
  t.deepEqual(info.uris, [WEB]);
  t.deepEqual(info.dnsNames, ['web.default.svc', 'web.default.svc.cluster.local']);
  t.is(info.subject, '');
  t.is(info.issuer, 'O=Remora\nCN=Remora test root');
  t.false(info.isCa);
  t.regex(info.serialNumber, /^[4-7][0-9A-F]{31}$/);
  t.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']); // node calls extKeyUsage "keyUsage"
  t.true(keyMatchesCertificate(web.privateKeyPem, webPem));

  const result = await handshake(
    { key: web.privateKeyPem, cert: webPem, ca: rootPem },
    { key: api.privateKeyPem, cert: apiPem, ca: rootPem },
    WEB,
  );
  t.is(result.clientError, undefined);
  t.deepEqual(result.serverClientErrors, []);
  t.is(result.clientGotData, 'hello from the server');
  t.true(result.client?.authorized);
  t.is(result.client?.alpn, 'h2');
  t.is(result.client?.protocol, 'TLSv1.3');
  t.true(result.client?.peerSan?.split(', ').includes(`URI:${WEB}`));
  t.true(result.server?.authorized);
  t.is(result.server?.alpn, 'h2');
  t.true(result.server?.peerSan?.split(', ').includes(`URI:${API}`));
});

test('the TLS server rejects a client whose leaf comes from another root', async (t) => {
  const { root, rootPem, otherRoot, otherRootPem, web, api } = await getFixtures();
  const webPem = leaf(web, WEB, { certPem: rootPem, keyPem: root.privateKeyPem });
  const strangerPem = leaf(api, API, { certPem: otherRootPem, keyPem: otherRoot.privateKeyPem });
  t.false(new crypto.X509Certificate(strangerPem).verify(crypto.createPublicKey(root.publicKeyPem)));

  const result = await handshake(
    { key: web.privateKeyPem, cert: webPem, ca: rootPem },
    { key: api.privateKeyPem, cert: strangerPem, ca: rootPem },
    WEB,
  );
  t.is(result.server, undefined, 'the server never accepted the connection');
  t.is(result.clientGotData, '');
  t.is(result.serverClientErrors.length, 1, 'the server dropped the client');

  // Why: with the server told to let everyone in, it reports the client as unauthorized.
  const permissive = await handshake(
    { key: web.privateKeyPem, cert: webPem, ca: rootPem },
    { key: api.privateKeyPem, cert: strangerPem, ca: rootPem },
    WEB,
    false,
  );
  t.false(permissive.server?.authorized);
  t.is(permissive.server?.authorizationError, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  t.is(permissive.clientGotData, 'hello from the server');
});

test('root → intermediate → leaf: the chain verifies when the leaf is sent with its intermediate', async (t) => {
  const { root, rootPem, intermediate, web, api } = await getFixtures();
  const intermediatePem = createIntermediateCa({
    subjectPublicKeyPem: intermediate.publicKeyPem,
    commonName: 'Remora mesh CA (intermediate)',
    notBefore: new Date(Date.now() - HOUR),
    notAfter: new Date(Date.now() + 30 * DAY),
    issuerCertPem: rootPem,
    issuerKeyPem: root.privateKeyPem,
    pathLen: 0,
  });
  const interInfo = certificateInfo(intermediatePem);
  t.true(interInfo.isCa);
  t.is(interInfo.issuer, 'O=Remora\nCN=Remora test root');
  t.is(interInfo.subject, 'CN=Remora mesh CA (intermediate)');
  t.true(new crypto.X509Certificate(intermediatePem).checkIssued(new crypto.X509Certificate(rootPem)));

  const byIntermediate = { certPem: intermediatePem, keyPem: intermediate.privateKeyPem };
  const webPem = leaf(web, WEB, byIntermediate);
  const apiPem = leaf(api, API, byIntermediate);
  t.is(certificateInfo(webPem).issuer, 'CN=Remora mesh CA (intermediate)');
  t.true(new crypto.X509Certificate(webPem).checkIssued(new crypto.X509Certificate(intermediatePem)));

  const bundle = webPem + '# some comment between blocks\n' + intermediatePem;
  t.deepEqual(splitPemBundle(bundle), [webPem, intermediatePem]);

  const result = await handshake(
    { key: web.privateKeyPem, cert: webPem + intermediatePem, ca: rootPem },
    { key: api.privateKeyPem, cert: apiPem + intermediatePem, ca: rootPem },
    WEB,
  );
  t.is(result.clientError, undefined);
  t.deepEqual(result.serverClientErrors, []);
  t.true(result.client?.authorized);
  t.true(result.server?.authorized);
  t.true(result.server?.peerSan?.split(', ').includes(`URI:${API}`));

  // Control: without the intermediate the client cannot build the chain to the root.
  const withoutIntermediate = await handshake(
    { key: web.privateKeyPem, cert: webPem, ca: rootPem },
    { key: api.privateKeyPem, cert: apiPem + intermediatePem, ca: rootPem },
    WEB,
  );
  t.is(withoutIntermediate.clientError, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');

  // pathLen 0: the intermediate may not sign another CA that signs leaves.
  const subCaPem = createIntermediateCa({
    subjectPublicKeyPem: api.publicKeyPem,
    commonName: 'too deep',
    notBefore: new Date(Date.now() - HOUR),
    notAfter: new Date(Date.now() + DAY),
    issuerCertPem: intermediatePem,
    issuerKeyPem: intermediate.privateKeyPem,
  });
  const tooDeep = await handshake(
    { key: web.privateKeyPem, cert: leaf(web, WEB, { certPem: subCaPem, keyPem: api.privateKeyPem }) + subCaPem + intermediatePem, ca: rootPem },
    { key: api.privateKeyPem, cert: apiPem + intermediatePem, ca: rootPem },
    WEB,
  );
  t.is(tooDeep.clientError, 'PATH_LENGTH_EXCEEDED');
});

test('an expired leaf is rejected by TLS with CERT_HAS_EXPIRED', async (t) => {
  const { root, rootPem, web, api } = await getFixtures();
  const issuer = { certPem: rootPem, keyPem: root.privateKeyPem };
  const expiredPem = leaf(web, WEB, issuer, { notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) });
  t.true(certificateInfo(expiredPem).notAfter < new Date());
  const result = await handshake(
    { key: web.privateKeyPem, cert: expiredPem, ca: rootPem },
    { key: api.privateKeyPem, cert: leaf(api, API, issuer), ca: rootPem },
    WEB,
  );
  t.is(result.clientError, 'CERT_HAS_EXPIRED');
  t.is(result.clientGotData, '');
});

test('signing refuses bad issuers and bad subjects with PkiErrors that carry no key material', async (t) => {
  const { root, rootPem, otherRoot, web, api } = await getFixtures();
  const base = {
    subjectPublicKeyPem: web.publicKeyPem,
    spiffeId: WEB,
    notBefore: new Date(Date.now() - MINUTE),
    notAfter: new Date(Date.now() + HOUR),
    issuerCertPem: rootPem,
    issuerKeyPem: root.privateKeyPem,
  };
  const keyLines = [root.privateKeyPem, otherRoot.privateKeyPem, web.privateKeyPem].flatMap((pem) => pem.split('\n').slice(1, -2));
  const code = (fn: () => unknown): string | undefined => {
    const err = t.throws(fn, { instanceOf: PkiError });
    for (const line of keyLines) if (err?.message.includes(line)) t.fail('a message contains key material');
    return err?.code;
  };
  t.is(code(() => signWorkloadCertificate({ ...base, issuerKeyPem: otherRoot.privateKeyPem })), 'key-mismatch');
  const webLeaf = leaf(web, WEB, { certPem: rootPem, keyPem: root.privateKeyPem });
  t.is(code(() => signWorkloadCertificate({ ...base, issuerCertPem: webLeaf, issuerKeyPem: web.privateKeyPem })), 'bad-certificate'); // not a CA
  t.is(code(() => signWorkloadCertificate({ ...base, issuerCertPem: 'garbage' })), 'bad-certificate');
  t.is(code(() => signWorkloadCertificate({ ...base, issuerKeyPem: 'garbage' })), 'bad-key');
  t.is(code(() => signWorkloadCertificate({ ...base, subjectPublicKeyPem: web.privateKeyPem })), 'bad-key'); // a private key where a public one belongs
  t.is(code(() => signWorkloadCertificate({ ...base, subjectPublicKeyPem: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string })), 'bad-key');
  t.is(code(() => signWorkloadCertificate({ ...base, spiffeId: 'spiffe://cluster.local/web' })), 'bad-certificate');
  t.is(code(() => signWorkloadCertificate({ ...base, dnsNames: ['not a dns name'] })), 'bad-certificate');
  t.is(code(() => signWorkloadCertificate({ ...base, notAfter: base.notBefore })), 'bad-certificate');
  t.is(code(() => signWorkloadCertificate({ ...base, notBefore: new Date(Number.NaN) })), 'bad-certificate');
  t.is(code(() => createSelfSignedCa({ keys: { privateKeyPem: root.privateKeyPem, publicKeyPem: api.publicKeyPem }, commonName: 'x', notBefore: base.notBefore, notAfter: base.notAfter })), 'key-mismatch');
  t.is(code(() => createSelfSignedCa({ keys: root, commonName: '', notBefore: base.notBefore, notAfter: base.notAfter })), 'bad-certificate');
  t.is(code(() => createIntermediateCa({ ...base, commonName: 'x', pathLen: -1 })), 'bad-certificate');
  t.is(code(() => certificateInfo('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')), 'bad-certificate');
  t.is(code(() => certificateInfo('')), 'bad-certificate');
  t.is(code(() => keyMatchesCertificate('garbage', rootPem)), 'bad-key');
  t.is(code(() => keyMatchesCertificate(root.privateKeyPem, 'garbage')), 'bad-certificate');
});

test('keyMatchesCertificate tells a certificate’s own key from another', async (t) => {
  const { root, rootPem, otherRoot, otherRootPem, web } = await getFixtures();
  t.true(keyMatchesCertificate(root.privateKeyPem, rootPem));
  t.true(keyMatchesCertificate(otherRoot.privateKeyPem, otherRootPem));
  t.false(keyMatchesCertificate(otherRoot.privateKeyPem, rootPem));
  const webPem = leaf(web, WEB, { certPem: rootPem, keyPem: root.privateKeyPem });
  t.true(keyMatchesCertificate(web.privateKeyPem, webPem));
  t.false(keyMatchesCertificate(root.privateKeyPem, webPem));
});

test('splitPemBundle splits concatenated certificates and ignores what lies between them', async (t) => {
  const { rootPem, otherRootPem } = await getFixtures();
  t.deepEqual(splitPemBundle(`subject=whatever\n${rootPem}\n\n${otherRootPem.replace(/\n/g, '\r\n')}trailing text`), [rootPem, otherRootPem]);
  t.deepEqual(splitPemBundle('no certificates here'), []);
  t.deepEqual(splitPemBundle(''), []);
});

// ---------------------------------------------------------------------------------------------
// CSRs

/** The DER inside a single-block PEM, and a way back. */
const pemToDer = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
const derToCsrPem = (der: Buffer): string => forge.pem.encode({ type: 'CERTIFICATE REQUEST', body: der.toString('binary') });

test('CSR round trip: readCsr returns the SPIFFE URI and the very same public key, and the CA signs it', async (t) => {
  const { root, rootPem, web } = await getFixtures();
  const csrPem = createCsr(web, WEB);
  t.regex(csrPem, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
  const csr = readCsr(csrPem);
  t.deepEqual(csr.uris, [WEB]);
  t.is(csr.publicKeyPem, web.publicKeyPem);
  t.true(crypto.createPublicKey(csr.publicKeyPem).equals(crypto.createPublicKey(web.privateKeyPem)));
  // Forge can read it too, and agrees the subject CN is the SPIFFE ID.
  const parsed = forge.pki.certificationRequestFromPem(csrPem);
  t.is(parsed.subject.getField('CN').value, WEB);
  t.is(parsed.subject.getField('CN').valueTagClass, forge.asn1.Type.UTF8);

  const certPem = signWorkloadCertificate({ subjectPublicKeyPem: csr.publicKeyPem, spiffeId: csr.uris[0]!, notBefore: new Date(), notAfter: new Date(Date.now() + HOUR), issuerCertPem: rootPem, issuerKeyPem: root.privateKeyPem });
  t.true(keyMatchesCertificate(web.privateKeyPem, certPem));
  t.deepEqual(certificateInfo(certPem).uris, [WEB]);

  t.is((t.throws(() => createCsr(web, 'spiffe://nope'), { instanceOf: PkiError }))?.code, 'bad-csr');
  t.is((t.throws(() => createCsr({ privateKeyPem: web.privateKeyPem, publicKeyPem: root.publicKeyPem }, WEB), { instanceOf: PkiError }))?.code, 'key-mismatch');
});

test('readCsr rejects garbage, truncation, tampering, small and non-RSA keys with bad-csr', async (t) => {
  const { web } = await getFixtures();
  const csrPem = createCsr(web, WEB);
  const der = pemToDer(csrPem);
  const rejects = (input: unknown, why: RegExp, label: string): void => {
    const err = t.throws(() => readCsr(input as string), { instanceOf: PkiError }, label);
    t.is(err?.code, 'bad-csr', label);
    t.regex(err?.message ?? '', why, label);
  };

  rejects('', /no "-----BEGIN CERTIFICATE REQUEST-----"/, 'empty');
  rejects('hello world', /no "-----BEGIN CERTIFICATE REQUEST-----"/, 'garbage');
  rejects(undefined, /PEM string/, 'not a string');
  rejects('-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n', /base64/, 'bad base64');
  rejects(derToCsrPem(crypto.randomBytes(300)), /malformed|CertificationRequest/, 'random bytes');
  rejects(csrPem + csrPem, /exactly one/, 'two CSRs');
  rejects('x'.repeat(70_000), /larger than/, 'huge');

  // Truncated: the PEM cut in half, and the DER cut short then re-armoured.
  rejects(csrPem.slice(0, csrPem.length / 2), /no "-----BEGIN CERTIFICATE REQUEST-----"/, 'truncated PEM');
  rejects(derToCsrPem(der.subarray(0, der.length - 10)), /truncated/, 'truncated DER');
  rejects(derToCsrPem(Buffer.concat([der, Buffer.from([0x05, 0x00])])), /trailing data/, 'trailing data');

  // Tampered: a flipped signature bit; and a different identity spliced into the signed part.
  const badSignature = Buffer.from(der);
  badSignature[badSignature.length - 1]! ^= 0x01;
  rejects(derToCsrPem(badSignature), /signature does not verify/, 'tampered signature');
  const otherIdentity = Buffer.from(der.toString('latin1').replaceAll('/sa/web', '/sa/adm'), 'latin1');
  t.not(otherIdentity.toString('latin1'), der.toString('latin1'));
  rejects(derToCsrPem(otherIdentity), /signature does not verify/, 'tampered identity');

  // A 1024-bit RSA key, with a CSR built and signed by forge (createCsr itself refuses such keys).
  const small = crypto.generateKeyPairSync('rsa', { modulusLength: 1024, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  t.is((t.throws(() => createCsr({ privateKeyPem: small.privateKey, publicKeyPem: small.publicKey }, WEB), { instanceOf: PkiError }))?.code, 'bad-key');
  const smallCsr = forge.pki.createCertificationRequest();
  smallCsr.publicKey = forge.pki.publicKeyFromPem(small.publicKey);
  smallCsr.setSubject([{ name: 'commonName', value: WEB }]);
  smallCsr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: WEB }] }] }]);
  smallCsr.sign(forge.pki.privateKeyFromPem(small.privateKey) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  const smallPem = forge.pki.certificationRequestToPem(smallCsr);
  t.true(forge.pki.certificationRequestFromPem(smallPem).verify(), 'the 1024-bit CSR is otherwise valid');
  rejects(smallPem, /1024 bits; at least 2048/, '1024-bit key');

  // An EC (P-256) key: a valid CSR, but not one the mesh CA signs.
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { asn1 } = forge;
  const cri = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, '\x00'),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, []),
    asn1.fromDer(ec.publicKey.export({ type: 'spki', format: 'der' }).toString('binary')),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, []),
  ]);
  const criDer = asn1.toDer(cri).getBytes();
  const ecSignature = crypto.sign('sha256', Buffer.from(criDer, 'binary'), ec.privateKey).toString('binary');
  const ecCsr = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    cri,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer('1.2.840.10045.4.3.2').getBytes()),
    ]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + ecSignature),
  ]);
  rejects(forge.pem.encode({ type: 'CERTIFICATE REQUEST', body: asn1.toDer(ecCsr).getBytes() }), /key is ec/, 'EC key');
});

test('readCsr: every single-byte change to a valid CSR is rejected, and nothing but PkiError ever escapes', async (t) => {
  const { web } = await getFixtures();
  const der = pemToDer(createCsr(web, WEB));
  fc.assert(
    fc.property(fc.nat({ max: der.length - 1 }), fc.integer({ min: 1, max: 255 }), (index, xor) => {
      const mutated = Buffer.from(der);
      mutated[index]! ^= xor;
      try {
        readCsr(derToCsrPem(mutated));
        return false;
      } catch (err) {
        return err instanceof PkiError && err.code === 'bad-csr';
      }
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 600 }).map((bytes) => derToCsrPem(Buffer.from(bytes)))), (input) => {
      try {
        readCsr(input);
        return false;
      } catch (err) {
        return err instanceof PkiError && err.code === 'bad-csr';
      }
    }),
    { numRuns: 300 },
  );
  t.pass();
});
