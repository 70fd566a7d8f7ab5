/**
 * SPIFFE IDs as Remora uses them: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
 *
 * The parser is deliberately strict — it accepts exactly that shape and nothing else (no port, user
 * info, query, fragment, percent-encoding, trailing slash, empty or dot segments), so that an identity
 * read from a certificate can be compared as a plain string.
 *
 * - trust domain: a lower-case DNS name (labels of [a-z0-9-], not starting or ending with '-',
 *   at most 63 characters each, at most 253 in all);
 * - namespace: a lower-case DNS label (RFC 1123, at most 63 characters), as Kubernetes namespaces are;
 * - service account: [A-Za-z0-9._-]+, but not "." or ".." (the SPIFFE spec forbids dot segments).
 *
 * The whole ID is at most 2048 bytes (the SPIFFE spec's limit).
 */

export interface SpiffeIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

const MAX_SPIFFE_ID_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 253;

const DNS_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const TRUST_DOMAIN_RE = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);
const NAMESPACE_RE = new RegExp(`^${DNS_LABEL}$`);
const SERVICE_ACCOUNT_RE = /^[A-Za-z0-9._-]+$/;

/** Why a trust domain / namespace / service account is unacceptable, or undefined if it is fine. */
function problemWith(id: SpiffeIdentity): string | undefined {
  const { trustDomain, namespace, serviceAccount } = id;
  if (typeof trustDomain !== 'string' || trustDomain.length > MAX_TRUST_DOMAIN_LENGTH || !TRUST_DOMAIN_RE.test(trustDomain)) {
    return `trust domain ${JSON.stringify(trustDomain)} must be a lower-case DNS name (e.g. "cluster.local")`;
  }
  if (typeof namespace !== 'string' || !NAMESPACE_RE.test(namespace)) {
    return `namespace ${JSON.stringify(namespace)} must be a lower-case DNS label (a-z, 0-9, '-', at most 63 characters)`;
  }
  if (
    typeof serviceAccount !== 'string' ||
    !SERVICE_ACCOUNT_RE.test(serviceAccount) ||
    serviceAccount === '.' ||
    serviceAccount === '..'
  ) {
    return `service account ${JSON.stringify(serviceAccount)} must match [A-Za-z0-9._-]+ and not be "." or ".."`;
  }
  return undefined;
}

function format(id: SpiffeIdentity): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/**
 * Formats an identity as `spiffe://td/ns/<ns>/sa/<sa>`.
 * Throws a RangeError naming the offending part if the identity could not be parsed back.
 */
export function spiffeId(id: SpiffeIdentity): string {
  const problem = problemWith(id);
  if (problem !== undefined) throw new RangeError(`invalid SPIFFE identity: ${problem}`);
  const uri = format(id);
  if (uri.length > MAX_SPIFFE_ID_LENGTH) {
    throw new RangeError(`invalid SPIFFE identity: the ID would be ${uri.length} characters, more than ${MAX_SPIFFE_ID_LENGTH}`);
  }
  return uri;
}

const SPIFFE_ID_RE = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

/** Parses exactly `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`; undefined for anything else. */
export function parseSpiffeId(uri: string): SpiffeIdentity | undefined {
  if (typeof uri !== 'string' || uri.length > MAX_SPIFFE_ID_LENGTH) return undefined;
  const m = SPIFFE_ID_RE.exec(uri);
  if (m === null) return undefined;
  const id: SpiffeIdentity = { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! };
  return problemWith(id) === undefined ? id : undefined;
}
