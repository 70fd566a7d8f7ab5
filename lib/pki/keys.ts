/**
 * Key pairs for the mesh CA and for workloads.
 *
 * Keys are RSA 2048, not EC: certificates are assembled with node-forge, and node-forge can only
 * put RSA public keys into certificates (its SubjectPublicKeyInfo encoder knows no EC keys).
 * Key generation is node:crypto's asynchronous generateKeyPair, which runs on the libuv threadpool;
 * node-forge's pure-JS key generation would block the event loop for hundreds of milliseconds.
 *
 * No message produced here ever contains key material.
 */
import crypto from 'node:crypto';
import { PkiError, isEncryptedPem, loadPrivateKey } from './x509.js';

export interface KeyPair {
  /** PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"). */
  readonly privateKeyPem: string;
  /** SPKI PEM ("-----BEGIN PUBLIC KEY-----"). */
  readonly publicKeyPem: string;
}

const RSA_MODULUS_BITS = 2048;

/** A new RSA 2048 key pair, generated off the event loop. */
export function generateKeyPair(): Promise<KeyPair> {
  return new Promise((resolve, reject) => {
    crypto.generateKeyPair(
      'rsa',
      {
        modulusLength: RSA_MODULUS_BITS,
        publicExponent: 0x10001,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      },
      (err, publicKeyPem, privateKeyPem) => {
        if (err) reject(err);
        else resolve({ privateKeyPem, publicKeyPem });
      },
    );
  });
}

/** PKCS#8 PEM encrypted with AES-256 (node:crypto export with cipher 'aes-256-cbc' and passphrase). */
export function encryptPrivateKey(privateKeyPem: string, passphrase: string): string {
  if (typeof passphrase !== 'string' || passphrase.length === 0) {
    throw new PkiError('bad-passphrase', 'a non-empty passphrase is required to encrypt a private key');
  }
  const key = loadPrivateKey(privateKeyPem);
  return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
}

/**
 * Decrypts an encrypted private key PEM and returns it as unencrypted PKCS#8 PEM.
 * Throws PkiError('bad-passphrase') on a wrong passphrase and PkiError('bad-key') if the input
 * is not an encrypted private key at all.
 */
export function decryptPrivateKey(encryptedPem: string, passphrase: string): string {
  if (typeof encryptedPem !== 'string' || !isEncryptedPem(encryptedPem)) {
    throw new PkiError(
      'bad-key',
      'expected an encrypted private key PEM ("-----BEGIN ENCRYPTED PRIVATE KEY-----"); this key is not encrypted or not a PEM key',
    );
  }
  if (typeof passphrase !== 'string' || passphrase.length === 0) {
    throw new PkiError('bad-passphrase', 'the private key is encrypted and no passphrase was given');
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey({ key: encryptedPem, format: 'pem', passphrase });
  } catch {
    // A wrong passphrase shows up as "bad decrypt" most of the time, and occasionally (when the
    // garbage happens to have valid padding) as an ASN.1 error; both mean the same thing to a user.
    throw new PkiError('bad-passphrase', 'could not decrypt the private key: the passphrase is wrong (or the encrypted key file is corrupt)');
  }
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}
