/**
 * Bootstrap tokens: a file of shared secrets, each allowed to claim some identities. For the docker compose demo and
 * local runs, where there is no Kubernetes API server to vouch for a workload.
 *
 * The file has lines `<token> <scope>`; `#` starts a comment (at the start of a line or after whitespace) and blank
 * lines are ignored. The scope is `*` (any identity), `<ns>/*` (any service account in namespace ns) or `<ns>/<sa>`;
 * a line with only a token means `*`. Tokens are at least 16 characters. A token on several lines may claim the
 * union of their scopes.
 *
 * Only SHA-256 digests of the tokens are kept, and a presented token is compared with every one of them in constant
 * time, so neither a token's position in the file nor its length shows in the timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DNS_LABEL } from '../../lib/validate.js';
import { formatClaim, invalidClaimReason, type AuthResult, type Authenticator, type WorkloadClaim } from './authenticator.js';

export const MIN_BOOTSTRAP_TOKEN_LENGTH = 16;

/** A parse or load error. Names the line (and file) but never echoes a token, nor any other text of the line. */
export class BootstrapTokenError extends Error {
  /** The 1-based line number, when the error is about one line. */
  readonly line: number | undefined;

  constructor(message: string, line?: number) {
    super(message);
    this.name = 'BootstrapTokenError';
    this.line = line;
  }
}

/** `*`, `<ns>/*` or `<ns>/<sa>`: namespace undefined means any, serviceAccount undefined means any in the namespace. */
interface Scope {
  readonly namespace?: string;
  readonly serviceAccount?: string;
}

interface Entry {
  readonly digest: Buffer;
  readonly scopes: Scope[];
  readonly line: number;
}

const SERVICE_ACCOUNT = /^[A-Za-z0-9._-]{1,253}$/;
const SCOPE_SYNTAX = "the scope must be '*', '<namespace>/*' or '<namespace>/<serviceAccount>'";

const digestOf = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

function parseScope(text: string): Scope | undefined {
  if (text === '*') return {};
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const namespace = text.slice(0, slash);
  const serviceAccount = text.slice(slash + 1);
  if (namespace.length > 63 || !DNS_LABEL.test(namespace)) return undefined;
  if (serviceAccount === '*') return { namespace };
  if (!SERVICE_ACCOUNT.test(serviceAccount) || serviceAccount === '.' || serviceAccount === '..') return undefined;
  return { namespace, serviceAccount };
}

const showScope = (s: Scope): string => (s.namespace === undefined ? '*' : `${s.namespace}/${s.serviceAccount ?? '*'}`);

const sameScope = (a: Scope, b: Scope): boolean => a.namespace === b.namespace && a.serviceAccount === b.serviceAccount;

const covers = (s: Scope, claim: WorkloadClaim): boolean =>
  (s.namespace === undefined || s.namespace === claim.namespace) && (s.serviceAccount === undefined || s.serviceAccount === claim.serviceAccount);

/** Removes a `#` comment that starts the line or follows whitespace. */
function stripComment(line: string): string {
  const m = /(^|\s)#/.exec(line);
  return m ? line.slice(0, m.index) : line;
}

/** Parses the text of a bootstrap token file; throws BootstrapTokenError naming the first bad line. */
export function parseBootstrapTokens(text: string): BootstrapTokens {
  const entries: Entry[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const fields = stripComment(raw).trim().split(/\s+/).filter((f) => f.length > 0);
    if (fields.length === 0) return;
    if (fields.length > 2) {
      throw new BootstrapTokenError(`line ${line}: expected '<token> [scope]' but found ${fields.length} fields`, line);
    }
    const token = fields[0]!;
    if (token.length < MIN_BOOTSTRAP_TOKEN_LENGTH) {
      throw new BootstrapTokenError(`line ${line}: the token is shorter than ${MIN_BOOTSTRAP_TOKEN_LENGTH} characters`, line);
    }
    const scope = parseScope(fields[1] ?? '*');
    if (!scope) throw new BootstrapTokenError(`line ${line}: ${SCOPE_SYNTAX}`, line);
    const digest = digestOf(token);
    const existing = entries.find((e) => e.digest.equals(digest));
    if (!existing) entries.push({ digest, scopes: [scope], line });
    else if (!existing.scopes.some((s) => sameScope(s, scope))) existing.scopes.push(scope);
  });
  return new BootstrapTokens(entries);
}

/** Reads and parses a bootstrap token file; errors name the file. */
export async function loadBootstrapTokens(file: string): Promise<BootstrapTokens> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BootstrapTokenError(`cannot read bootstrap token file ${file}: ${code ?? (err as Error).message}`);
  }
  try {
    return parseBootstrapTokens(text);
  } catch (err) {
    if (err instanceof BootstrapTokenError) throw new BootstrapTokenError(`bootstrap token file ${file}: ${err.message}`, err.line);
    throw err;
  }
}

/** The tokens of a bootstrap token file, as an Authenticator. */
export class BootstrapTokens implements Authenticator {
  readonly name = 'bootstrap-token';
  /** How many distinct tokens. */
  readonly size: number;
  readonly #entries: readonly Entry[];

  /** Use parseBootstrapTokens or loadBootstrapTokens. */
  constructor(entries: readonly Entry[]) {
    this.#entries = entries.map((e) => ({ digest: Buffer.from(e.digest), scopes: [...e.scopes], line: e.line }));
    this.size = this.#entries.length;
  }

  async authenticate(token: string, claim: WorkloadClaim): Promise<AuthResult> {
    const presented = digestOf(typeof token === 'string' ? token : '');
    // Compare with every entry, without stopping at a match, so the timing doesn't tell where a token is.
    let match: Entry | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest, presented) && !match) match = entry;
    }
    if (!match || typeof token !== 'string' || token.length === 0) return { ok: false, reason: 'unknown bootstrap token' };
    const invalid = invalidClaimReason(claim);
    if (invalid) return { ok: false, reason: invalid };
    if (!match.scopes.some((s) => covers(s, claim))) {
      return {
        ok: false,
        reason: `bootstrap token may not claim ${formatClaim(claim)} (its scope is ${match.scopes.map(showScope).join(', ')})`,
      };
    }
    return { ok: true, namespace: claim.namespace, serviceAccount: claim.serviceAccount, via: this.name };
  }
}
