/**
 * The mTLS pair (`two-hop-mtls`): certificates made here with lib/pki (one bench root, a SPIFFE
 * certificate per sidecar, written to the bench's temp dir), and the check that the pair really
 * talks mTLS before (and after) it is measured: the right identities installed, the client sidecar
 * dialling the server sidecar with an expected identity, the server sidecar refusing plaintext, and
 * a call through the pair succeeding.
 */
import http2 from 'node:http2';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateKeyPair, type KeyPair } from '../lib/pki/keys.js';
import { createCsr, createSelfSignedCa, readCsr, signWorkloadCertificate } from '../lib/pki/x509.js';
import { spiffeId } from '../lib/pki/spiffe.js';
import { UNARY_PATH } from './echo-service.js';
import { grpcFrame } from './loadgen.js';

export const TRUST_DOMAIN = 'cluster.local';
export const BENCH_NAMESPACE = 'default';
export const CLIENT_SERVICE_ACCOUNT = 'bench-client';
export const SERVER_SERVICE_ACCOUNT = 'bench-server';
const VALIDITY_MS = 24 * 60 * 60 * 1000;
const UNAUTHENTICATED = 16;

/** What `remora sidecar --cert-file --key-file --trust-bundle-file` needs, and whom it makes us. */
export interface WorkloadFiles {
  readonly serviceAccount: string;
  readonly spiffeId: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly trustBundleFile: string;
}

export interface BenchPki {
  readonly client: WorkloadFiles;
  readonly server: WorkloadFiles;
  /** The DNS name in the server's certificate (beside its SPIFFE ID). */
  readonly serverName: string;
}

/** Key material on disk: readable by the bench's user only. */
export const writeSecret = (file: string, pem: string): Promise<void> => writeFile(file, pem, { mode: 0o600 });

/**
 * One self-signed root and two workload certificates signed by it (RSA 2048, as lib/pki makes
 * them; 24 h), each through a CSR as the mesh CA would see it. Files go to `<dir>/pki`, mode 0600.
 */
export async function writeBenchPki(dir: string): Promise<BenchPki> {
  const pkiDir = path.join(dir, 'pki');
  await mkdir(pkiDir, { recursive: true, mode: 0o700 });
  const [rootKeys, clientKeys, serverKeys] = await Promise.all([generateKeyPair(), generateKeyPair(), generateKeyPair()]);
  const notBefore = new Date();
  const notAfter = new Date(notBefore.getTime() + VALIDITY_MS);
  const rootPem = createSelfSignedCa({ keys: rootKeys, commonName: 'remora bench root', organization: 'Remora bench', notBefore, notAfter });
  const trustBundleFile = path.join(pkiDir, 'roots.pem');
  await writeSecret(trustBundleFile, rootPem);

  const workload = async (serviceAccount: string, keys: KeyPair, dnsNames: readonly string[] = []): Promise<WorkloadFiles> => {
    const id = spiffeId({ trustDomain: TRUST_DOMAIN, namespace: BENCH_NAMESPACE, serviceAccount });
    const csr = readCsr(createCsr(keys, id));
    if (csr.uris.length !== 1 || csr.uris[0] !== id) throw new Error(`bench PKI: the CSR for ${id} names ${JSON.stringify(csr.uris)}`);
    const certPem = signWorkloadCertificate({
      subjectPublicKeyPem: csr.publicKeyPem,
      spiffeId: id,
      dnsNames,
      notBefore,
      notAfter,
      issuerCertPem: rootPem,
      issuerKeyPem: rootKeys.privateKeyPem,
    });
    const certFile = path.join(pkiDir, `${serviceAccount}.pem`);
    const keyFile = path.join(pkiDir, `${serviceAccount}-key.pem`);
    await Promise.all([writeSecret(certFile, certPem), writeSecret(keyFile, keys.privateKeyPem)]);
    return { serviceAccount, spiffeId: id, certFile, keyFile, trustBundleFile };
  };
  return {
    client: await workload(CLIENT_SERVICE_ACCOUNT, clientKeys),
    // A DNS name too, for the reference proxies: nginx's grpc_ssl_verify always checks one.
    server: await workload(SERVER_SERVICE_ACCOUNT, serverKeys, [SERVER_SERVICE_ACCOUNT]),
    serverName: SERVER_SERVICE_ACCOUNT,
  };
}

export interface GrpcOutcome {
  /** grpc-status from headers (trailers-only) or trailers; undefined when none came. */
  readonly status: number | undefined;
  readonly message: string;
}

/** One unary echo call over plaintext h2c, as the load generator makes it; only its status is read. */
export function grpcCallStatus(port: number, authority: string, timeoutMs = 5_000): Promise<GrpcOutcome> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    let status: number | undefined;
    let message = '';
    let settled = false;
    const settle = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      if (err) reject(err);
      else resolve({ status, message });
    };
    const timer = setTimeout(() => settle(new Error(`no answer from 127.0.0.1:${port} within ${timeoutMs} ms`)), timeoutMs);
    const read = (h: http2.IncomingHttpHeaders): void => {
      const s = h['grpc-status'];
      if (s !== undefined) status = Number(s);
      const m = h['grpc-message'];
      if (typeof m === 'string') {
        try {
          message = decodeURIComponent(m);
        } catch {
          message = m;
        }
      }
    };
    session.on('error', (err) => settle(err));
    const req = session.request({ ':method': 'POST', ':path': UNARY_PATH, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
    req.on('response', read);
    req.on('trailers', read);
    req.on('data', () => {});
    req.on('close', () => settle(undefined));
    req.on('error', (err) => settle(err));
    req.end(grpcFrame(16));
  });
}

interface CertsView {
  readonly required: boolean;
  readonly valid: boolean;
  readonly identity: { readonly spiffeId?: string; readonly lastError?: string } | null;
}

interface ConfigDump {
  readonly clusters?: readonly { readonly name: string; readonly endpoints: readonly { readonly address: string; readonly port: number; readonly identity?: string }[] }[];
}

async function getJson<T>(port: number, urlPath: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, { signal: AbortSignal.timeout(5_000) });
  if (res.status !== 200) throw new Error(`GET 127.0.0.1:${port}${urlPath}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

/** Waits until the sidecar holds a valid certificate for `expected` (they load it just after listening). */
async function waitForIdentity(role: string, adminPort: number, expected: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: CertsView | undefined;
  for (;;) {
    let unreachable: string | undefined;
    try {
      last = await getJson<CertsView>(adminPort, '/certs');
      if (last.required && last.valid && last.identity?.spiffeId !== undefined) break;
    } catch (err) {
      // The admin port opens just after the listeners the topology waited for: try again.
      unreachable = (err as Error).message;
    }
    if (Date.now() > deadline) {
      const why = last?.identity?.lastError ? `: ${last.identity.lastError}` : unreachable ? `: admin port ${adminPort}: ${unreachable}` : '';
      throw new Error(`${role} has no valid workload certificate after ${timeoutMs} ms${why} (admin /certs: ${JSON.stringify(last ?? null)})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (last?.identity?.spiffeId !== expected) throw new Error(`${role} presents ${last.identity?.spiffeId}, not ${expected}`);
}

export interface MtlsPair {
  /** Scenario name, for messages. */
  readonly scenario: string;
  /** The cluster (and :authority) the load generator calls. */
  readonly cluster: string;
  readonly client: { readonly role: string; readonly adminPort: number; readonly outboundPort: number; readonly identity: string };
  readonly server: { readonly role: string; readonly adminPort: number; readonly inboundPort: number; readonly identity: string };
}

/**
 * Throws, saying what is wrong, unless the pair is mTLS end to end: both sidecars hold their
 * certificates, the client's cluster names the server's identity for every endpoint (so it dials
 * TLS and checks the name), the server answers a plaintext call with UNAUTHENTICATED (STRICT), and
 * a call through the pair succeeds.
 */
export async function verifyMtlsPair(pair: MtlsPair, certTimeoutMs = 15_000): Promise<void> {
  const fail = (what: string): Error => new Error(`bench: ${pair.scenario} is not measuring mTLS: ${what}`);
  try {
    await Promise.all([
      waitForIdentity(`${pair.client.role} (client sidecar)`, pair.client.adminPort, pair.client.identity, certTimeoutMs),
      waitForIdentity(`${pair.server.role} (server sidecar)`, pair.server.adminPort, pair.server.identity, certTimeoutMs),
    ]);
  } catch (err) {
    throw fail((err as Error).message);
  }

  const dump = await getJson<ConfigDump>(pair.client.adminPort, '/config_dump');
  const endpoints = dump.clusters?.find((c) => c.name === pair.cluster)?.endpoints ?? [];
  if (endpoints.length === 0) throw fail(`${pair.client.role}'s /config_dump has no endpoints for cluster ${pair.cluster}`);
  for (const e of endpoints) {
    if (e.identity !== pair.server.identity) {
      throw fail(`${pair.client.role} dials ${e.address}:${e.port} with identity ${e.identity ?? '(none: plaintext)'}, not ${pair.server.identity}`);
    }
  }

  const plaintext = await grpcCallStatus(pair.server.inboundPort, pair.cluster);
  if (plaintext.status !== UNAUTHENTICATED) {
    throw fail(
      `a plaintext h2c call straight to ${pair.server.role}'s inbound port ${pair.server.inboundPort} ended with ` +
        `grpc-status ${plaintext.status ?? '(none)'} ${JSON.stringify(plaintext.message)}, not 16 (UNAUTHENTICATED): the server sidecar is not STRICT`,
    );
  }

  const through = await grpcCallStatus(pair.client.outboundPort, pair.cluster);
  if (through.status !== 0) {
    throw fail(`a call through ${pair.client.role} → ${pair.server.role} ended with grpc-status ${through.status ?? '(none)'} ${JSON.stringify(through.message)}`);
  }
}
