/**
 * The mesh CA's state in etcd, one JSON document at `<prefix>ca/state`:
 *
 *   { "roots": [{ "certPem": "...", "keyPem": "<PKCS#8, AES-256 encrypted>" }, ...],
 *     "signing": "<SHA-256 fingerprint of the root that signs now>" }
 *
 * Every root listed is in the trust bundle, so a root is replaced with no outage in three steps
 * (add a new root, sign with it, remove the old one), each pushed to every sidecar before the
 * next. The keys are encrypted with a passphrase only the control plane (and `remora ca`) is given
 * (a Kubernetes Secret, a file): etcd, its backups and anyone who can read them see ciphertext.
 * Every write is a compare-and-swap on the document's revision, so replicas that start together
 * create one root between them, and concurrent `remora ca` commands cannot lose each other's work.
 */
import { X509Certificate } from 'node:crypto';
import { generateKeyPair, encryptPrivateKey } from '../../lib/pki/keys.js';
import { createSelfSignedCa } from '../../lib/pki/x509.js';

export const CA_STATE_PATH = 'ca/state';
const ROOT_LIFETIME_MS = 10 * 365 * 24 * 3600 * 1000;
const CAS_ATTEMPTS = 5;

export interface CaRootRecord {
  readonly certPem: string;
  /** Encrypted PKCS#8; absent for a root we only trust (an operator's, or one being retired). */
  readonly keyPem?: string;
}

export interface CaStateDoc {
  readonly roots: readonly CaRootRecord[];
  readonly signing: string;
}

/** The slice of the store the CA uses. */
export interface DocumentStore {
  readDocument(path: string): Promise<{ value: string; modRevision: string } | undefined>;
  writeDocument(path: string, value: string, modRevision: string): Promise<boolean>;
}

export class CaStateError extends Error {
  readonly code = 'REMORA_CA_STATE';
}

export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

export function parseCaState(json: string): CaStateDoc {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (err) {
    throw new CaStateError(`the CA state in etcd is not JSON: ${(err as Error).message}`);
  }
  const o = doc as Partial<CaStateDoc> | null;
  if (!o || !Array.isArray(o.roots) || typeof o.signing !== 'string') throw new CaStateError('the CA state in etcd must be {"roots": [...], "signing": "<fingerprint>"}');
  const roots = o.roots.map((r, i) => {
    if (!r || typeof r.certPem !== 'string' || (r.keyPem !== undefined && typeof r.keyPem !== 'string')) throw new CaStateError(`CA state roots[${i}] must be {certPem, keyPem?}`);
    try {
      fingerprintOf(r.certPem);
    } catch {
      throw new CaStateError(`CA state roots[${i}].certPem is not a certificate`);
    }
    return r.keyPem === undefined ? { certPem: r.certPem } : { certPem: r.certPem, keyPem: r.keyPem };
  });
  if (!roots.some((r) => fingerprintOf(r.certPem) === o.signing && r.keyPem !== undefined)) {
    throw new CaStateError(`CA state names signing root ${o.signing}, which is not a listed root with a key`);
  }
  return { roots, signing: o.signing };
}

/** A new self-signed root, its key encrypted with the passphrase. Key generation runs off the event loop. */
export async function newRoot(passphrase: string, now = new Date()): Promise<CaRootRecord> {
  const keys = await generateKeyPair();
  const stamp = now.toISOString().slice(0, 10);
  const certPem = createSelfSignedCa({
    keys,
    commonName: `Remora mesh root ${stamp} ${keys.publicKeyPem.slice(-20, -12).replace(/[^A-Za-z0-9]/g, '')}`,
    organization: 'Remora',
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + ROOT_LIFETIME_MS),
  });
  return { certPem, keyPem: encryptPrivateKey(keys.privateKeyPem, passphrase) };
}

/** Reads the state, creating the first root if there is none (only one replica's root wins). */
export async function ensureCaState(store: DocumentStore, passphrase: string): Promise<{ doc: CaStateDoc; created: boolean }> {
  const existing = await store.readDocument(CA_STATE_PATH);
  if (existing) return { doc: parseCaState(existing.value), created: false };
  const root = await newRoot(passphrase);
  const doc: CaStateDoc = { roots: [root], signing: fingerprintOf(root.certPem) };
  if (await store.writeDocument(CA_STATE_PATH, JSON.stringify(doc), '0')) return { doc, created: true };
  const winner = await store.readDocument(CA_STATE_PATH);
  if (!winner) throw new CaStateError('the CA state vanished while it was being created');
  return { doc: parseCaState(winner.value), created: false };
}

/** Read-modify-write with compare-and-swap; `change` may be called again if someone else wrote meanwhile. */
export async function updateCaState(store: DocumentStore, change: (doc: CaStateDoc) => CaStateDoc | Promise<CaStateDoc>): Promise<CaStateDoc> {
  for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
    const current = await store.readDocument(CA_STATE_PATH);
    if (!current) throw new CaStateError('there is no mesh CA in etcd yet: start a control plane with --ca-key-passphrase-file first');
    const next = await change(parseCaState(current.value));
    parseCaState(JSON.stringify(next));
    if (await store.writeDocument(CA_STATE_PATH, JSON.stringify(next), current.modRevision)) return next;
  }
  throw new CaStateError(`the CA state changed under us ${CAS_ATTEMPTS} times; try again`);
}
