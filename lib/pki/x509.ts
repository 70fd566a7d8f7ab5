/**
 * X.509 for the mesh CA: CA certificates, workload CSRs, workload certificates.
 *
 * Division of labour:
 * - node-forge only builds ASN.1 structures (certificate and CSR bodies, extensions, PEM armour).
 * - node:crypto does everything cryptographic: every signature is `crypto.sign('sha256', tbsDer, key)`
 *   (RSA PKCS#1 v1.5) over the DER that forge produced, every verification is node's, and certificates
 *   are read with `crypto.X509Certificate`. node-forge's pure-JS RSA is slow and would block the
 *   event loop, so it is never used to sign, verify or generate keys.
 * - CSRs are read with a small strict DER walker in this file rather than with forge, so that the
 *   signature is checked over the exact bytes that were received and no non-PkiError escapes.
 *
 * Keys are RSA (2048 bits and up) because node-forge cannot put EC public keys into certificates
 * or CSRs: its SubjectPublicKeyInfo encoder only knows RSA.
 *
 * Every error thrown for bad input is a PkiError; no message ever contains private key material.
 */
import crypto from 'node:crypto';
import forge from 'node-forge';
import type { KeyPair } from './keys.js';
import { parseSpiffeId } from './spiffe.js';

export type PkiErrorCode = 'bad-csr' | 'bad-certificate' | 'bad-key' | 'bad-passphrase' | 'key-mismatch';

export class PkiError extends Error {
  constructor(
    readonly code: PkiErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'PkiError';
  }
}

export interface CertificateInfo {
  /** As X509Certificate gives it ("O=...\nCN=..."); '' for an empty subject. */
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** URI SANs. */
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  readonly isCa: boolean;
  /** Hex, as X509Certificate gives it (upper case). */
  readonly serialNumber: string;
  /** As X509Certificate gives it ("AB:CD:..."). */
  readonly fingerprint256: string;
}

export interface CsrInfo {
  /** SPKI PEM of the key the CSR was signed with. */
  readonly publicKeyPem: string;
  /** URI SANs from the CSR's extensionRequest. */
  readonly uris: readonly string[];
}

const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 8192;
/** A CSR (or one of its PEM blocks) larger than this is refused before any parsing. */
const MAX_CSR_PEM_LENGTH = 64 * 1024;
/** X.520 upper bound for commonName and organizationName. */
const MAX_NAME_LENGTH = 64;
const SERIAL_BYTES = 16;

// node-forge has these but @types/node-forge does not declare them.
const forgePki = forge.pki as typeof forge.pki & {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
  getCertificationRequestInfo(csr: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
};
const SHA256_WITH_RSA_OID = forge.pki.oids['sha256WithRSAEncryption']!;

/**
 * A Name attribute encoded as UTF8String (RFC 5280 4.1.2.4). forge's default is PrintableString,
 * which cannot hold '_', '@', '*' or non-ASCII text and which strict verifiers (Go) reject when abused.
 */
function nameAttribute(name: 'commonName' | 'organizationName', value: string): forge.pki.CertificateField {
  // @types/node-forge types valueTagClass as a tag class, but forge uses it as the universal tag number.
  return { name, value, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class };
}

// =============================================================================================
// Keys (shared with keys.ts)

/** " (ERR_CODE)" for a node/OpenSSL error that has a code; never the message (keeps key bytes out). */
function codeSuffix(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]+$/.test(code) ? ` (${code})` : '';
}

/** True for an encrypted PKCS#8 PEM or a legacy encrypted ("Proc-Type: 4,ENCRYPTED") PEM. */
export function isEncryptedPem(pem: string): boolean {
  return /-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(pem) || /Proc-Type:\s*4,\s*ENCRYPTED/.test(pem);
}

/** Loads an unencrypted PEM private key, or throws PkiError('bad-key'). */
export function loadPrivateKey(privateKeyPem: string, what = 'private key'): crypto.KeyObject {
  if (typeof privateKeyPem !== 'string' || privateKeyPem.trim() === '') {
    throw new PkiError('bad-key', `the ${what} is empty; expected a PEM private key`);
  }
  if (isEncryptedPem(privateKeyPem)) {
    throw new PkiError('bad-key', `the ${what} is encrypted; decrypt it with its passphrase first`);
  }
  try {
    return crypto.createPrivateKey({ key: privateKeyPem, format: 'pem' });
  } catch (err) {
    throw new PkiError('bad-key', `the ${what} could not be read; expected an unencrypted PEM private key (PKCS#8 or PKCS#1)${codeSuffix(err)}`);
  }
}

function requireRsa(key: crypto.KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'rsa') {
    throw new PkiError('bad-key', `the ${what} is ${key.asymmetricKeyType ?? 'of an unknown type'}; Remora needs RSA keys (node-forge cannot put other keys into certificates)`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
    throw new PkiError('bad-key', `the ${what} is a ${bits}-bit RSA key; it must have ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`);
  }
}

/** Loads an RSA public key (SPKI PEM, or a certificate) of an acceptable size, or throws PkiError('bad-key'). */
function loadRsaPublicKey(publicKeyPem: string, what: string): crypto.KeyObject {
  if (typeof publicKeyPem !== 'string' || publicKeyPem.trim() === '') {
    throw new PkiError('bad-key', `the ${what} is empty; expected a PEM public key`);
  }
  if (/PRIVATE KEY-----/.test(publicKeyPem)) {
    // createPublicKey would happily derive it, but private keys must not travel where public keys do.
    throw new PkiError('bad-key', `the ${what} is a private key; pass the public key (SPKI PEM) instead`);
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPublicKey({ key: publicKeyPem, format: 'pem' });
  } catch (err) {
    throw new PkiError('bad-key', `the ${what} could not be read; expected a PEM public key ("-----BEGIN PUBLIC KEY-----")${codeSuffix(err)}`);
  }
  requireRsa(key, what);
  return key;
}

/** forge armours PEM with CRLF; node and everything else in Remora use LF. */
const lf = (pem: string): string => pem.replace(/\r\n/g, '\n');

function spkiDer(key: crypto.KeyObject): Buffer {
  const publicKey = key.type === 'private' ? crypto.createPublicKey(key) : key;
  return publicKey.export({ type: 'spki', format: 'der' });
}

function spkiPem(key: crypto.KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }) as string;
}

// =============================================================================================
// Reading certificates

function loadCertificate(pem: string, what = 'certificate'): crypto.X509Certificate {
  if (typeof pem !== 'string' || !/-----BEGIN CERTIFICATE-----/.test(pem)) {
    throw new PkiError('bad-certificate', `the ${what} is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" line)`);
  }
  try {
    return new crypto.X509Certificate(pem);
  } catch (err) {
    throw new PkiError('bad-certificate', `the ${what} could not be parsed; it is not a valid PEM X.509 certificate${codeSuffix(err)}`);
  }
}

function parseCertDate(text: string, what: string): Date {
  // X509Certificate gives OpenSSL's "Mon DD HH:MM:SS YYYY GMT" (node 20 has no validFromDate).
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw new PkiError('bad-certificate', `the certificate's ${what} date could not be read`);
  return date;
}

/**
 * Splits node's subjectAltName string ("URI:spiffe://..., DNS:a.example") into entries. Node quotes
 * values that contain ',' or other special characters as JSON strings, so those are unquoted here.
 */
function parseSubjectAltName(san: string | undefined): { uris: string[]; dnsNames: string[] } {
  const uris: string[] = [];
  const dnsNames: string[] = [];
  if (!san) return { uris, dnsNames };
  const entry = /([A-Za-z][A-Za-z ]*):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/y;
  let pos = 0;
  while (pos < san.length) {
    entry.lastIndex = pos;
    const m = entry.exec(san);
    if (m === null) break;
    let value = m[2]!;
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        break;
      }
    }
    if (m[1] === 'URI') uris.push(value);
    else if (m[1] === 'DNS') dnsNames.push(value);
    pos = entry.lastIndex;
  }
  return { uris, dnsNames };
}

/** Reads a PEM certificate (the first one, if given a bundle). PkiError('bad-certificate') if unparsable. */
export function certificateInfo(pem: string): CertificateInfo {
  const x = loadCertificate(pem);
  const { uris, dnsNames } = parseSubjectAltName(x.subjectAltName);
  return {
    // node 20 gives undefined (despite its types) for an empty Name, as in Remora's workload certificates.
    subject: (x.subject as string | undefined) ?? '',
    issuer: (x.issuer as string | undefined) ?? '',
    notBefore: parseCertDate(x.validFrom, 'notBefore'),
    notAfter: parseCertDate(x.validTo, 'notAfter'),
    uris,
    dnsNames,
    isCa: x.ca,
    serialNumber: x.serialNumber,
    fingerprint256: x.fingerprint256,
  };
}

/** Splits a PEM bundle (several certificates concatenated) into single PEM strings; ignores text between blocks. */
export function splitPemBundle(pem: string): string[] {
  if (typeof pem !== 'string') return [];
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => `${block.replace(/\r\n/g, '\n')}\n`);
}

/** True if the private key matches the certificate's public key (compares SPKI DER). */
export function keyMatchesCertificate(privateKeyPem: string, certPem: string): boolean {
  const key = loadPrivateKey(privateKeyPem);
  const cert = loadCertificate(certPem);
  return spkiDer(key).equals(spkiDer(cert.publicKey));
}

// =============================================================================================
// A minimal strict DER reader: enough to walk CSRs and certificates and keep exact byte ranges.

class DerError extends Error {}

interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

function readTlv(buf: Buffer, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DerError('the data ends in the middle of an element (truncated?)');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('unexpected multi-byte ASN.1 tag');
  let len = buf[pos + 1]!;
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('indefinite lengths are not allowed in DER');
    if (n > 4) throw new DerError('an element length is too large');
    if (p + n > limit) throw new DerError('the data ends in the middle of an element (truncated?)');
    if (buf[p] === 0) throw new DerError('an element length is not minimally encoded (not DER)');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    if (len < 0x80) throw new DerError('an element length is not minimally encoded (not DER)');
    p += n;
  }
  if (p + len > limit) throw new DerError('an element is longer than the data around it (truncated?)');
  return { tag, start: pos, contentStart: p, end: p + len };
}

function children(buf: Buffer, parent: Tlv): Tlv[] {
  if ((parent.tag & 0x20) === 0) throw new DerError('expected a constructed ASN.1 element');
  const out: Tlv[] = [];
  let pos = parent.contentStart;
  while (pos < parent.end) {
    const tlv = readTlv(buf, pos, parent.end);
    out.push(tlv);
    pos = tlv.end;
  }
  return out;
}

function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined || tlv.tag !== tag) throw new DerError(`${what} is missing or has the wrong type`);
  return tlv;
}

const content = (buf: Buffer, tlv: Tlv): Buffer => buf.subarray(tlv.contentStart, tlv.end);
const whole = (buf: Buffer, tlv: Tlv): Buffer => buf.subarray(tlv.start, tlv.end);
const oidBytes = (oid: string): Buffer => Buffer.from(forge.asn1.oidToDer(oid).getBytes(), 'binary');

const TAG_INTEGER = 0x02;
const TAG_BIT_STRING = 0x03;
const TAG_OCTET_STRING = 0x04;
const TAG_NULL = 0x05;
const TAG_OID = 0x06;
const TAG_SEQUENCE = 0x30;
const TAG_SET = 0x31;
const TAG_CONTEXT_0 = 0xa0; // [0] constructed
const TAG_CONTEXT_3 = 0xa3; // [3] constructed
const TAG_BOOLEAN = 0x01;
const TAG_SAN_URI = 0x86; // [6] IA5String, implicit

const OID_EXTENSION_REQUEST = oidBytes('1.2.840.113549.1.9.14');
const OID_SUBJECT_ALT_NAME = oidBytes('2.5.29.17');
const OID_SUBJECT_KEY_IDENTIFIER = oidBytes('2.5.29.14');
const CSR_SIGNATURE_ALGORITHMS: ReadonlyArray<{ oid: Buffer; hash: string }> = [
  { oid: oidBytes('1.2.840.113549.1.1.11'), hash: 'sha256' },
  { oid: oidBytes('1.2.840.113549.1.1.12'), hash: 'sha384' },
  { oid: oidBytes('1.2.840.113549.1.1.13'), hash: 'sha512' },
];

/** The contents of the PEM blocks with one of the given labels, strictly base64-decoded. */
function pemBlocks(pem: string, labels: readonly string[]): Buffer[] {
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  const out: Buffer[] = [];
  for (const m of pem.matchAll(re)) {
    if (!labels.includes(m[1]!)) continue;
    const b64 = m[2]!.replace(/\s+/g, '');
    if (b64.length === 0 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) {
      throw new DerError('the PEM body is not valid base64 (truncated or altered?)');
    }
    out.push(Buffer.from(b64, 'base64'));
  }
  return out;
}

// =============================================================================================
// CSRs

/**
 * A CSR for a workload: subject CN = the SPIFFE ID, extensionRequest with a URI SAN = spiffeId.
 * Signed (SHA-256 with RSA) by node:crypto with the pair's private key.
 * (Note: X.520 bounds a CN at 64 characters; longer SPIFFE IDs still go into the CN as asked, which
 * OpenSSL and node read without complaint. The CA ignores the subject and uses only the URI SAN.)
 */
export function createCsr(keys: KeyPair, spiffeId: string): string {
  if (parseSpiffeId(spiffeId) === undefined) {
    throw new PkiError('bad-csr', `${JSON.stringify(spiffeId)} is not a SPIFFE ID of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`);
  }
  const privateKey = loadPrivateKey(keys?.privateKeyPem, 'workload private key');
  requireRsa(privateKey, 'workload private key');
  const publicKey = loadRsaPublicKey(keys.publicKeyPem, 'workload public key');
  if (!spkiDer(privateKey).equals(spkiDer(publicKey))) {
    throw new PkiError('key-mismatch', 'the key pair does not match: its public key does not belong to its private key');
  }

  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(spkiPem(publicKey));
  csr.setSubject([nameAttribute('commonName', spiffeId)]);
  csr.setAttributes([
    { name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: spiffeId }] }] },
  ]);
  csr.signatureOid = SHA256_WITH_RSA_OID;
  csr.siginfo.algorithmOid = SHA256_WITH_RSA_OID;
  const cri = forgePki.getCertificationRequestInfo(csr);
  csr.certificationRequestInfo = cri;
  const criDer = Buffer.from(forge.asn1.toDer(cri).getBytes(), 'binary');
  csr.signature = crypto.sign('sha256', criDer, privateKey).toString('binary');
  return lf(forge.pki.certificationRequestToPem(csr));
}

/**
 * Parses a CSR PEM and verifies its self-signature (proof of possession of the private key).
 * Throws PkiError('bad-csr', reason) on anything wrong — and nothing but PkiError, whatever the input.
 */
export function readCsr(csrPem: string): CsrInfo {
  try {
    return readCsrUnchecked(csrPem);
  } catch (err) {
    if (err instanceof PkiError) throw err;
    if (err instanceof DerError) throw new PkiError('bad-csr', `the CSR is malformed: ${err.message}`);
    throw new PkiError('bad-csr', 'the CSR could not be read');
  }
}

function readCsrUnchecked(csrPem: string): CsrInfo {
  const bad = (reason: string): PkiError => new PkiError('bad-csr', reason);
  if (typeof csrPem !== 'string') throw bad('the CSR must be a PEM string');
  if (csrPem.length > MAX_CSR_PEM_LENGTH) throw bad(`the CSR is larger than ${MAX_CSR_PEM_LENGTH} characters`);
  const blocks = pemBlocks(csrPem, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);
  if (blocks.length === 0) throw bad('no "-----BEGIN CERTIFICATE REQUEST-----" ... "-----END CERTIFICATE REQUEST-----" block found');
  if (blocks.length > 1) throw bad('expected exactly one CSR, found several');
  const der = blocks[0]!;

  // CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING }
  const top = expectTag(readTlv(der, 0, der.length), TAG_SEQUENCE, 'the CertificationRequest');
  if (top.end !== der.length) throw bad('the CSR has trailing data after its DER structure');
  const parts = children(der, top);
  if (parts.length !== 3) throw bad('the CSR does not have the three parts of a PKCS#10 CertificationRequest');
  const cri = expectTag(parts[0], TAG_SEQUENCE, 'the CertificationRequestInfo');
  const algorithm = expectTag(parts[1], TAG_SEQUENCE, 'the signature algorithm');
  const signatureBits = expectTag(parts[2], TAG_BIT_STRING, 'the signature');

  const algParts = children(der, algorithm);
  const algOid = content(der, expectTag(algParts[0], TAG_OID, 'the signature algorithm OID'));
  const hash = CSR_SIGNATURE_ALGORITHMS.find((a) => a.oid.equals(algOid))?.hash; // checked after the key, whose error is clearer
  const params = algParts[1];
  if (algParts.length > 2 || (params !== undefined && (params.tag !== TAG_NULL || params.end !== params.contentStart))) {
    throw bad('the CSR signature algorithm has unexpected parameters');
  }
  const sigContent = content(der, signatureBits);
  if (sigContent.length < 2 || sigContent[0] !== 0) throw bad('the CSR signature is not a whole number of bytes');
  const signature = sigContent.subarray(1);

  // CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), subject Name, subjectPKInfo, attributes [0] }
  const criParts = children(der, cri);
  const version = content(der, expectTag(criParts[0], TAG_INTEGER, 'the CSR version'));
  if (version.length !== 1 || version[0] !== 0) throw bad('the CSR version is not 1 (0)');
  expectTag(criParts[1], TAG_SEQUENCE, 'the CSR subject');
  const spki = expectTag(criParts[2], TAG_SEQUENCE, 'the CSR public key');
  const attributes = criParts[3];
  if (criParts.length > 4 || (attributes !== undefined && attributes.tag !== TAG_CONTEXT_0)) {
    throw bad('the CSR has unexpected elements after its public key');
  }

  let publicKey: crypto.KeyObject;
  try {
    publicKey = crypto.createPublicKey({ key: whole(der, spki), format: 'der', type: 'spki' });
  } catch {
    throw bad('the public key in the CSR could not be read');
  }
  if (publicKey.asymmetricKeyType !== 'rsa') {
    throw bad(`the CSR's key is ${publicKey.asymmetricKeyType ?? 'of an unknown type'}; the mesh CA only signs RSA keys`);
  }
  const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw bad(`the CSR's RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required`);
  if (bits > MAX_RSA_BITS) throw bad(`the CSR's RSA key has ${bits} bits; at most ${MAX_RSA_BITS} are accepted`);
  if (hash === undefined) throw bad('the CSR is not signed with sha256/384/512WithRSAEncryption (RSA PKCS#1 v1.5)');

  let verified = false;
  try {
    verified = crypto.verify(hash, whole(der, cri), publicKey, signature);
  } catch {
    verified = false;
  }
  if (!verified) throw bad('the CSR signature does not verify: the CSR was altered or was not signed by the key it contains');

  const uris = attributes === undefined ? [] : csrUris(der, attributes, bad);
  return { publicKeyPem: spkiPem(publicKey), uris };
}

/** URI SANs from the extensionRequest attribute, if any. */
function csrUris(der: Buffer, attributes: Tlv, bad: (reason: string) => PkiError): string[] {
  const uris: string[] = [];
  let sawSan = false;
  for (const attribute of children(der, attributes)) {
    // Attribute ::= SEQUENCE { type OID, values SET OF ... }
    const [type, values, ...rest] = children(der, expectTag(attribute, TAG_SEQUENCE, 'a CSR attribute'));
    if (rest.length > 0) throw bad('a CSR attribute has unexpected elements');
    const typeOid = content(der, expectTag(type, TAG_OID, 'a CSR attribute type'));
    expectTag(values, TAG_SET, 'a CSR attribute value set');
    if (!typeOid.equals(OID_EXTENSION_REQUEST)) continue;
    for (const extensions of children(der, values!)) {
      for (const extension of children(der, expectTag(extensions, TAG_SEQUENCE, 'the requested extensions'))) {
        // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
        const extParts = children(der, expectTag(extension, TAG_SEQUENCE, 'a requested extension'));
        const extOid = content(der, expectTag(extParts[0], TAG_OID, 'a requested extension id'));
        const hasCritical = extParts.length === 3;
        if (extParts.length < 2 || extParts.length > 3) throw bad('a requested extension is malformed');
        if (hasCritical) expectTag(extParts[1], TAG_BOOLEAN, 'a requested extension criticality');
        const value = expectTag(extParts[hasCritical ? 2 : 1], TAG_OCTET_STRING, 'a requested extension value');
        if (!extOid.equals(OID_SUBJECT_ALT_NAME)) continue;
        if (sawSan) throw bad('the CSR requests more than one subjectAltName extension');
        sawSan = true;
        const inner = content(der, value);
        const names = expectTag(readTlv(inner, 0, inner.length), TAG_SEQUENCE, 'the requested subjectAltName');
        if (names.end !== inner.length) throw bad('the requested subjectAltName has trailing data');
        for (const name of children(inner, names)) {
          if (name.tag !== TAG_SAN_URI) continue;
          const bytes = content(inner, name);
          if (bytes.length === 0 || bytes.some((b) => b < 0x21 || b > 0x7e)) throw bad('a URI SAN in the CSR is empty or not printable ASCII');
          uris.push(bytes.toString('latin1'));
        }
      }
    }
  }
  return uris;
}

// =============================================================================================
// Certificates

function checkName(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new PkiError('bad-certificate', `${what} must be 1 to ${MAX_NAME_LENGTH} printable characters`);
  }
  return value;
}

function checkValidity(notBefore: unknown, notAfter: unknown): void {
  for (const [what, d] of [['notBefore', notBefore], ['notAfter', notAfter]] as const) {
    if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new PkiError('bad-certificate', `${what} must be a valid Date`);
    const year = d.getUTCFullYear();
    if (year < 1950 || year > 9999) throw new PkiError('bad-certificate', `${what} must be between the years 1950 and 9999`);
  }
  if ((notAfter as Date).getTime() <= (notBefore as Date).getTime()) {
    throw new PkiError('bad-certificate', 'notAfter must be later than notBefore');
  }
}

const DNS_NAME_RE = /^(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** 16 random bytes, first byte 0x40..0x7f: a positive, minimally encoded DER INTEGER with 126 random bits. */
function randomSerialHex(): string {
  const bytes = crypto.randomBytes(SERIAL_BYTES);
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes.toString('hex');
}

function newCertificate(subjectKey: crypto.KeyObject, notBefore: Date, notAfter: Date): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.version = 2; // v3
  cert.serialNumber = randomSerialHex();
  cert.publicKey = forge.pki.publicKeyFromPem(spkiPem(subjectKey)); // parse only; no forge crypto
  cert.validity.notBefore = new Date(notBefore.getTime());
  cert.validity.notAfter = new Date(notAfter.getTime());
  return cert;
}

interface Issuer {
  readonly key: crypto.KeyObject;
  readonly publicKey: crypto.KeyObject;
  /** The exact DER of the issuer certificate's subject Name, copied into the child's issuer field. */
  readonly nameDer: Buffer;
  /** The issuer's subjectKeyIdentifier (binary string), for the child's authorityKeyIdentifier. */
  readonly keyIdentifier: string;
}

function loadIssuer(issuerCertPem: string, issuerKeyPem: string): Issuer {
  const cert = loadCertificate(issuerCertPem, 'issuer certificate');
  if (!cert.ca) throw new PkiError('bad-certificate', 'the issuer certificate is not a CA certificate (basicConstraints CA:true is missing)');
  const key = loadPrivateKey(issuerKeyPem, 'issuer private key');
  requireRsa(key, 'issuer private key');
  if (!spkiDer(key).equals(spkiDer(cert.publicKey))) {
    throw new PkiError('key-mismatch', 'the issuer private key does not belong to the issuer certificate');
  }
  try {
    return { key, publicKey: cert.publicKey, ...issuerNameAndKeyId(cert.raw) };
  } catch (err) {
    if (err instanceof DerError) throw new PkiError('bad-certificate', `the issuer certificate is malformed: ${err.message}`);
    throw err;
  }
}

/** The subject Name DER and the subjectKeyIdentifier (or its RFC 5280 method-1 value) of a certificate. */
function issuerNameAndKeyId(der: Buffer): { nameDer: Buffer; keyIdentifier: string } {
  const top = expectTag(readTlv(der, 0, der.length), TAG_SEQUENCE, 'the Certificate');
  const tbs = expectTag(children(der, top)[0], TAG_SEQUENCE, 'the TBSCertificate');
  const fields = children(der, tbs);
  const off = fields[0]?.tag === TAG_CONTEXT_0 ? 1 : 0; // explicit version
  const subject = expectTag(fields[off + 4], TAG_SEQUENCE, 'the subject');
  const spki = expectTag(fields[off + 5], TAG_SEQUENCE, 'the subjectPublicKeyInfo');
  const nameDer = Buffer.from(whole(der, subject));

  const extensionsWrapper = fields.slice(off + 6).find((f) => f.tag === TAG_CONTEXT_3);
  if (extensionsWrapper !== undefined) {
    const extensions = expectTag(children(der, extensionsWrapper)[0], TAG_SEQUENCE, 'the extensions');
    for (const extension of children(der, extensions)) {
      const parts = children(der, expectTag(extension, TAG_SEQUENCE, 'an extension'));
      const oid = content(der, expectTag(parts[0], TAG_OID, 'an extension id'));
      if (!oid.equals(OID_SUBJECT_KEY_IDENTIFIER)) continue;
      const value = content(der, expectTag(parts[parts.length - 1], TAG_OCTET_STRING, 'the subjectKeyIdentifier value'));
      const keyId = expectTag(readTlv(value, 0, value.length), TAG_OCTET_STRING, 'the subjectKeyIdentifier');
      return { nameDer, keyIdentifier: content(value, keyId).toString('binary') };
    }
  }
  // No subjectKeyIdentifier: use RFC 5280 method 1, SHA-1 of the subjectPublicKey bits.
  const bits = content(der, expectTag(children(der, spki)[1], TAG_BIT_STRING, 'the subjectPublicKey'));
  return { nameDer, keyIdentifier: crypto.createHash('sha1').update(bits.subarray(1)).digest('binary') };
}

/**
 * Signs `cert` with node:crypto: sets the algorithm, takes forge's TBSCertificate (with the issuer Name
 * replaced by the issuer's exact subject DER, when given), signs its DER, returns the PEM.
 */
function signCertificate(cert: forge.pki.Certificate, signerKey: crypto.KeyObject, verifyKey: crypto.KeyObject, issuerNameDer?: Buffer): string {
  cert.signatureOid = SHA256_WITH_RSA_OID;
  cert.siginfo.algorithmOid = SHA256_WITH_RSA_OID;
  const tbs = forgePki.getTBSCertificate(cert);
  if (issuerNameDer !== undefined) {
    // TBSCertificate: [0] version, serialNumber, signature, issuer, validity, subject, ...
    let issuerName: forge.asn1.Asn1;
    try {
      issuerName = forge.asn1.fromDer(issuerNameDer.toString('binary'));
    } catch {
      throw new PkiError('bad-certificate', "the issuer certificate's subject name could not be parsed");
    }
    (tbs.value as forge.asn1.Asn1[])[3] = issuerName;
  }
  cert.tbsCertificate = tbs;
  const tbsDer = Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
  cert.signature = crypto.sign('sha256', tbsDer, signerKey).toString('binary');
  const pem = lf(forge.pki.certificateToPem(cert));
  // Cheap self-check (one RSA verification) that what forge serialised is what was signed.
  if (!new crypto.X509Certificate(pem).verify(verifyKey)) throw new Error('internal error: a freshly signed certificate does not verify');
  return pem;
}

/** A self-signed CA certificate (basicConstraints CA:true, keyUsage keyCertSign+cRLSign, subjectKeyIdentifier), new random 16-byte serial. */
export function createSelfSignedCa(opts: {
  keys: KeyPair;
  commonName: string;
  organization?: string;
  notBefore: Date;
  notAfter: Date;
}): string {
  const commonName = checkName(opts.commonName, 'commonName');
  const organization = opts.organization === undefined || opts.organization === '' ? undefined : checkName(opts.organization, 'organization');
  checkValidity(opts.notBefore, opts.notAfter);
  const privateKey = loadPrivateKey(opts.keys?.privateKeyPem, 'CA private key');
  requireRsa(privateKey, 'CA private key');
  const publicKey = loadRsaPublicKey(opts.keys.publicKeyPem, 'CA public key');
  if (!spkiDer(privateKey).equals(spkiDer(publicKey))) {
    throw new PkiError('key-mismatch', 'the CA key pair does not match: its public key does not belong to its private key');
  }

  const cert = newCertificate(publicKey, opts.notBefore, opts.notAfter);
  const name = [
    ...(organization === undefined ? [] : [nameAttribute('organizationName', organization)]),
    nameAttribute('commonName', commonName),
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  return signCertificate(cert, privateKey, publicKey);
}

/**
 * A CA certificate signed by another CA (an intermediate, e.g. an operator's company root signing the
 * mesh CA). `pathLen` sets basicConstraints pathLenConstraint; omitted means unconstrained.
 */
export function createIntermediateCa(opts: {
  subjectPublicKeyPem: string;
  commonName: string;
  notBefore: Date;
  notAfter: Date;
  issuerCertPem: string;
  issuerKeyPem: string;
  pathLen?: number;
}): string {
  const commonName = checkName(opts.commonName, 'commonName');
  checkValidity(opts.notBefore, opts.notAfter);
  if (opts.pathLen !== undefined && !(Number.isInteger(opts.pathLen) && opts.pathLen >= 0 && opts.pathLen <= 255)) {
    throw new PkiError('bad-certificate', 'pathLen must be an integer from 0 to 255');
  }
  const subjectKey = loadRsaPublicKey(opts.subjectPublicKeyPem, 'subject public key');
  const issuer = loadIssuer(opts.issuerCertPem, opts.issuerKeyPem);

  const cert = newCertificate(subjectKey, opts.notBefore, opts.notAfter);
  cert.setSubject([nameAttribute('commonName', commonName)]);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true, ...(opts.pathLen === undefined ? {} : { pathLenConstraint: opts.pathLen }) },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: issuer.keyIdentifier },
  ]);
  return signCertificate(cert, issuer.key, issuer.publicKey, issuer.nameDer);
}

/**
 * A workload leaf certificate: empty subject, critical URI SAN = spiffeId (plus optional DNS SANs),
 * basicConstraints CA:false, keyUsage digitalSignature+keyEncipherment, extKeyUsage serverAuth+clientAuth,
 * authorityKeyIdentifier from the issuer, random positive serial, issuer Name copied byte for byte from
 * the issuer certificate's subject.
 */
export function signWorkloadCertificate(opts: {
  subjectPublicKeyPem: string;
  spiffeId: string;
  dnsNames?: readonly string[];
  notBefore: Date;
  notAfter: Date;
  issuerCertPem: string;
  issuerKeyPem: string;
}): string {
  if (parseSpiffeId(opts.spiffeId) === undefined) {
    throw new PkiError('bad-certificate', `${JSON.stringify(opts.spiffeId)} is not a SPIFFE ID of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`);
  }
  const dnsNames = opts.dnsNames ?? [];
  for (const dns of dnsNames) {
    if (typeof dns !== 'string' || dns.length > 253 || !DNS_NAME_RE.test(dns)) {
      throw new PkiError('bad-certificate', `${JSON.stringify(dns)} is not a valid DNS name for a subjectAltName`);
    }
  }
  checkValidity(opts.notBefore, opts.notAfter);
  const subjectKey = loadRsaPublicKey(opts.subjectPublicKeyPem, 'workload public key');
  const issuer = loadIssuer(opts.issuerCertPem, opts.issuerKeyPem);

  const cert = newCertificate(subjectKey, opts.notBefore, opts.notAfter);
  cert.setSubject([]);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'authorityKeyIdentifier', keyIdentifier: issuer.keyIdentifier },
    {
      name: 'subjectAltName',
      critical: true, // RFC 5280 4.2.1.6: critical when the subject is empty
      altNames: [{ type: 6, value: opts.spiffeId }, ...dnsNames.map((value) => ({ type: 2, value }))],
    },
  ]);
  return signCertificate(cert, issuer.key, issuer.publicKey, issuer.nameDer);
}
