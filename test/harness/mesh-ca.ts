/** Secrets for a test mesh with a CA, and certificates a test signs itself to play a peer. */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import { CA_STATE_PATH, fingerprintOf, parseCaState } from '../../control-plane/ca/ca-state.js';
import { createLogger } from '../../lib/log.js';
import { decryptPrivateKey, generateKeyPair } from '../../lib/pki/keys.js';
import { createSelfSignedCa, createCsr, readCsr, signWorkloadCertificate } from '../../lib/pki/x509.js';

export interface MeshSecrets {
  readonly dir: string;
  readonly passphrase: string;
  readonly passphraseFile: string;
  readonly token: string;
  readonly tokenFile: string;
  /** For startControlPlane: an etcd-kept CA and the bootstrap token. */
  readonly cpArgs: string[];
  /** For startSidecar: the token file. */
  readonly sidecarArgs: string[];
}

export async function meshSecrets(): Promise<MeshSecrets> {
  const dir = await mkdtemp(path.join(tmpdir(), 'remora-ca-'));
  const passphrase = randomBytes(24).toString('base64url');
  const token = randomBytes(24).toString('base64url');
  const passphraseFile = path.join(dir, 'ca-passphrase');
  const tokenFile = path.join(dir, 'token');
  const tokensFile = path.join(dir, 'bootstrap-tokens');
  await writeFile(passphraseFile, passphrase, { mode: 0o600 });
  await writeFile(tokenFile, token, { mode: 0o600 });
  await writeFile(tokensFile, `${token} *\n`, { mode: 0o600 });
  return {
    dir,
    passphrase,
    passphraseFile,
    token,
    tokenFile,
    cpArgs: ['--ca', 'etcd', '--ca-key-passphrase-file', passphraseFile, '--bootstrap-token-file', tokensFile],
    sidecarArgs: ['--ca-token-file', tokenFile],
  };
}

export interface TestCa {
  readonly certPem: string;
  readonly keyPem: string;
  readonly fingerprint: string;
}

/** The mesh's signing root, read from etcd as a control plane would (the test knows the passphrase). */
export async function meshCaFromEtcd(endpoint: string, passphrase: string): Promise<TestCa & { roots: string[] }> {
  const store = new EtcdStore({ endpoints: [endpoint], prefix: '/remora/', leaseTtlSeconds: 10, replicaId: 'test' }, { log: createLogger('test', 'silent') });
  try {
    const doc = await store.readDocument(CA_STATE_PATH);
    if (!doc) throw new Error('no CA state in etcd yet');
    const state = parseCaState(doc.value);
    const signing = state.roots.find((r) => fingerprintOf(r.certPem) === state.signing)!;
    return { certPem: signing.certPem, keyPem: decryptPrivateKey(signing.keyPem!, passphrase), fingerprint: state.signing, roots: state.roots.map((r) => r.certPem) };
  } finally {
    await store.close({ revokeLease: false });
  }
}

export async function otherCa(): Promise<TestCa> {
  const keys = await generateKeyPair();
  const certPem = createSelfSignedCa({ keys, commonName: 'Not the mesh CA', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3600_000) });
  return { certPem, keyPem: keys.privateKeyPem, fingerprint: fingerprintOf(certPem) };
}

export interface TestLeaf {
  readonly certPem: string;
  readonly keyPem: string;
}

export async function leafFrom(ca: TestCa, spiffeId: string, validity: { notBefore?: Date; notAfter?: Date } = {}): Promise<TestLeaf> {
  const keys = await generateKeyPair();
  const csr = readCsr(createCsr(keys, spiffeId));
  const certPem = signWorkloadCertificate({
    subjectPublicKeyPem: csr.publicKeyPem,
    spiffeId,
    notBefore: validity.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: validity.notAfter ?? new Date(Date.now() + 3600_000),
    issuerCertPem: ca.certPem,
    issuerKeyPem: ca.keyPem,
  });
  return { certPem, keyPem: keys.privateKeyPem };
}

/** A gRPC client that dials a sidecar's inbound port with mTLS, as a peer sidecar would. */
export function mtlsClient(port: number, authority: string, leaf: TestLeaf, trust: readonly string[]): grpc.Client {
  const creds = grpc.credentials.createSsl(Buffer.from(trust.join('\n')), Buffer.from(leaf.keyPem), Buffer.from(leaf.certPem), {
    // Mesh certificates carry SPIFFE IDs, not DNS names: the chain is what this client checks.
    checkServerIdentity: () => undefined,
  });
  return new grpc.Client(`127.0.0.1:${port}`, creds, { 'grpc.default_authority': authority, 'grpc.enable_retries': 0 });
}

/** Writes a certificate for `spiffeId` from `ca` into files; returns the sidecar flags that use them. */
export async function certificateFileArgs(ca: TestCa, spiffeId: string): Promise<string[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'remora-cert-'));
  const leaf = await leafFrom(ca, spiffeId);
  const files = { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem'), roots: path.join(dir, 'roots.pem') };
  await writeFile(files.cert, leaf.certPem);
  await writeFile(files.key, leaf.keyPem, { mode: 0o600 });
  await writeFile(files.roots, ca.certPem);
  return ['--cert-file', files.cert, '--key-file', files.key, '--trust-bundle-file', files.roots];
}
