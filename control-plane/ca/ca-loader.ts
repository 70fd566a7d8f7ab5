/**
 * Where the mesh CA's signing key comes from, chosen by the operator:
 *  - etcd: a root the control plane creates on first start (or `remora ca` adds), its key stored
 *    encrypted in etcd and decrypted in memory with a passphrase file; every replica shares it.
 *  - files: an operator's CA certificate and key (typically an intermediate under a company root)
 *    mounted into every replica; the key is never written anywhere by us.
 *  - none: no CA; sidecars talk plaintext and say so.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from '../../lib/log.js';
import { decryptPrivateKey } from '../../lib/pki/keys.js';
import { certificateInfo, keyMatchesCertificate, splitPemBundle } from '../../lib/pki/x509.js';
import { CA_STATE_PATH, ensureCaState, fingerprintOf, parseCaState, type CaStateDoc, type DocumentStore } from './ca-state.js';
import type { MeshCa } from './mesh-ca.js';

export type CaSettings =
  | { readonly kind: 'etcd'; readonly passphraseFile: string }
  | { readonly kind: 'files'; readonly certFile: string; readonly keyFile: string; readonly bundleFile: string | undefined }
  | { readonly kind: 'none' };

export interface CaDocumentStore extends DocumentStore {
  watchDocument(path: string, onChange: (value: string) => void): Promise<{ close(): Promise<void> }>;
}

export class CaConfigError extends Error {
  readonly code = 'REMORA_CA_CONFIG';
}

async function readPassphrase(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CaConfigError(`cannot read the CA key passphrase file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const passphrase = text.replace(/\r?\n$/, '');
  if (passphrase.length < 16) throw new CaConfigError(`the CA key passphrase in ${file} is shorter than 16 characters`);
  return passphrase;
}

function configureFromDoc(ca: MeshCa, doc: CaStateDoc, passphrase: string): void {
  const signing = doc.roots.find((r) => fingerprintOf(r.certPem) === doc.signing)!;
  const keyPem = decryptPrivateKey(signing.keyPem!, passphrase);
  ca.configure(doc.roots.map((r) => r.certPem), { certPem: signing.certPem, keyPem, intermediates: [], fingerprint: doc.signing });
}

/** Configures `ca` and keeps it current; resolves once it can sign. */
export async function startCa(settings: CaSettings, store: CaDocumentStore, ca: MeshCa, log: Logger, onChange: () => void): Promise<{ close(): Promise<void> }> {
  if (settings.kind === 'none') return { close: async () => undefined };
  if (settings.kind === 'files') {
    await configureFromFiles(ca, settings.certFile, settings.keyFile, settings.bundleFile);
    log.info({ signer: ca.signerFingerprint, roots: ca.trustBundle.length, source: settings.certFile }, 'mesh CA loaded from files');
    return { close: async () => undefined };
  }
  const passphrase = await readPassphrase(settings.passphraseFile);
  const { doc, created } = await ensureCaState(store, passphrase);
  configureFromDoc(ca, doc, passphrase);
  log.info({ signer: doc.signing, roots: doc.roots.length, created }, created ? 'mesh CA created a new root' : 'mesh CA loaded from etcd');
  return store.watchDocument(CA_STATE_PATH, (json) => {
    try {
      const next = parseCaState(json);
      configureFromDoc(ca, next, passphrase);
      log.info({ signer: next.signing, roots: next.roots.length }, 'mesh CA state changed');
      onChange();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'ignoring an unusable CA state from etcd; still signing with the last good one');
    }
  });
}

async function configureFromFiles(ca: MeshCa, certFile: string, keyFile: string, bundleFile: string | undefined): Promise<void> {
  const read = (f: string) => readFile(f, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new CaConfigError(`cannot read ${f}: ${err.code ?? err.message}`);
  });
  const [chainText, keyPem, bundleText] = await Promise.all([read(certFile), read(keyFile), bundleFile ? read(bundleFile) : Promise.resolve('')]);
  const chain = splitPemBundle(chainText);
  const certPem = chain[0];
  if (!certPem) throw new CaConfigError(`${certFile} holds no PEM certificate`);
  if (!certificateInfo(certPem).isCa) throw new CaConfigError(`${certFile} is not a CA certificate (basicConstraints CA:true)`);
  if (!keyMatchesCertificate(keyPem, certPem)) throw new CaConfigError(`${keyFile} is not the private key of ${certFile}`);
  const bundle = bundleFile ? splitPemBundle(bundleText) : [certPem];
  if (bundle.length === 0) throw new CaConfigError(`${bundleFile} holds no PEM certificate`);
  const fingerprint = fingerprintOf(certPem);
  const bundlePrints = new Set(bundle.map(fingerprintOf));
  // Send the CA certificate and the rest of its chain after each workload certificate, up to a trusted root.
  const intermediates = chain.filter((pem) => !bundlePrints.has(fingerprintOf(pem)));
  ca.configure(bundle, { certPem, keyPem, intermediates, fingerprint });
}
