/**
 * Kubernetes service account tokens, checked with the TokenReview API.
 *
 * The control plane POSTs the presented token to the API server, which says whether it is valid and whose it is
 * (`system:serviceaccount:<ns>:<sa>`); the identity must be the one claimed. The control plane's own service account
 * needs RBAC permission to `create` `tokenreviews` (authentication.k8s.io), as in the system:auth-delegator role.
 *
 * Never throws and never logs or returns a token: every failure, network ones included, is { ok: false, reason }.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { formatClaim, invalidClaimReason, withoutSecret, type AuthResult, type Authenticator, type WorkloadClaim } from './authenticator.js';

export interface TokenReviewOptions {
  /** e.g. https://kubernetes.default.svc */
  readonly apiServer: string;
  /** The control plane's own service account token; called for every review (projected tokens rotate). */
  readonly bearerToken: () => Promise<string>;
  /** The API server's CA (ca.crt); undefined = system trust. */
  readonly caPem?: string;
  /** When given, the token must be valid for at least one of these audiences. */
  readonly audiences?: readonly string[];
  /** For the whole review: connect, TLS, request and answer. Default 5000. */
  readonly timeoutMs?: number;
}

export const TOKEN_REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';
export const IN_CLUSTER_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

const DEFAULT_TIMEOUT_MS = 5000;
/** A TokenReview answer is a few hundred bytes; anything far bigger is not one. */
const MAX_ANSWER_BYTES = 1 << 20;
const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;
const RBAC_HINT = 'it needs RBAC permission to create tokenreviews (authentication.k8s.io)';

interface Answer {
  readonly statusCode: number;
  readonly contentType: string;
  readonly body: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** At most `max` characters of server-provided text, on one line. */
function clip(text: string, max = 300): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max)}...` : one;
}

/** OpenSSL's certificate verification codes and Node's TLS ones. */
const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'HOSTNAME_MISMATCH',
]);

/** Text that came from outside (the API server, the network, a callback): clipped, with the secrets blanked out. */
type Scrub = (outside: string) => string;

function describeNetworkError(err: unknown, server: string, scrub: Scrub): string {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (code && (TLS_CODES.has(code) || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.startsWith('ERR_OSSL'))) {
    return `TLS with the API server at ${server} failed (${code}: ${scrub(message)})`;
  }
  return `cannot reach the API server at ${server} (${code ?? scrub(message)})`;
}

export class KubernetesTokenReviewer implements Authenticator {
  readonly name = 'kubernetes';
  readonly #url: URL;
  readonly #server: string;
  readonly #agent: https.Agent;
  readonly #bearerToken: () => Promise<string>;
  readonly #audiences: readonly string[];
  readonly #timeoutMs: number;

  /** Throws only for options that can never work (an API server URL that isn't https, a bad timeout). */
  constructor(opts: TokenReviewOptions) {
    let base: URL;
    try {
      base = new URL(opts.apiServer);
    } catch {
      throw new TypeError(`token review: the API server address is not a URL: ${opts.apiServer}`);
    }
    if (base.protocol !== 'https:') throw new TypeError(`token review: the API server address must be https: ${opts.apiServer}`);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new TypeError(`token review: timeoutMs must be a positive number, not ${timeoutMs}`);
    this.#url = new URL(base.pathname.replace(/\/+$/, '') + TOKEN_REVIEW_PATH, base.origin);
    this.#server = base.origin;
    this.#agent = new https.Agent({ keepAlive: true, maxSockets: 16, ...(opts.caPem !== undefined ? { ca: opts.caPem } : {}) });
    this.#bearerToken = opts.bearerToken;
    this.#audiences = [...(opts.audiences ?? [])];
    this.#timeoutMs = timeoutMs;
  }

  async authenticate(token: string, claim: WorkloadClaim): Promise<AuthResult> {
    try {
      return await this.#review(token, claim);
    } catch (err) {
      // #review handles its failures; this is a last resort so that authenticate never throws.
      const message = err instanceof Error ? err.message : String(err);
      return { ok: false, reason: `token review failed: ${withoutSecret(clip(message), token)}` };
    }
  }

  async #review(token: string, claim: WorkloadClaim): Promise<AuthResult> {
    if (typeof token !== 'string' || token.trim().length === 0) return { ok: false, reason: 'no token presented' };
    const invalid = invalidClaimReason(claim);
    if (invalid) return { ok: false, reason: invalid };

    let own: string;
    try {
      own = (await this.#bearerToken()).trim();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return { ok: false, reason: `token review failed: cannot read the control plane's own service account token (${withoutSecret(clip(message), token)})` };
    }
    if (own.length === 0) return { ok: false, reason: "token review failed: the control plane's own service account token is empty" };
    // Reasons are our words plus outside text; only the outside text could ever carry a token, so only it is scrubbed
    // (scrubbing whole reasons would garble them when a token happens to be a short, common string).
    const scrub: Scrub = (outside) => withoutSecret(withoutSecret(clip(outside), token), own);
    const refuse = (reason: string): AuthResult => ({ ok: false, reason });

    const spec: Obj = { token };
    if (this.#audiences.length > 0) spec.audiences = this.#audiences;
    const body = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec });

    let answer: Answer;
    try {
      answer = await this.#post(body, own, scrub);
    } catch (err) {
      return refuse(`token review failed: ${err instanceof Error ? err.message : scrub(String(err))}`);
    }

    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.body);
    } catch {
      parsed = undefined;
    }
    const statusMessage = isObj(parsed) && typeof parsed.message === 'string' ? `: ${scrub(parsed.message)}` : '';

    if (answer.statusCode === 401 || answer.statusCode === 403) {
      return refuse(
        `token review failed: the API server refused the control plane's own credentials (HTTP ${answer.statusCode}${statusMessage}); ${RBAC_HINT}`,
      );
    }
    if (answer.statusCode < 200 || answer.statusCode >= 300) {
      return refuse(`token review failed: the API server answered HTTP ${answer.statusCode}${statusMessage}`);
    }
    if (parsed === undefined) {
      return refuse(`token review failed: the API server's answer is not JSON (content-type ${answer.contentType || 'none'})`);
    }
    if (!isObj(parsed) || !isObj(parsed.status)) return refuse("token review failed: the API server's answer has no TokenReview status");

    const status = parsed.status;
    if (status.authenticated !== true) {
      const why = typeof status.error === 'string' && status.error.trim() ? `: ${scrub(status.error)}` : '';
      return refuse(`token not authenticated by the API server${why}`);
    }
    const username = isObj(status.user) && typeof status.user.username === 'string' ? status.user.username : undefined;
    if (username === undefined) return refuse('token review failed: the API server authenticated the token but named no user');
    const m = SERVICE_ACCOUNT_USER.exec(username);
    if (!m) return refuse(`token is not a service account token (its user is ${scrub(username)})`);
    if (this.#audiences.length > 0) {
      const granted = Array.isArray(status.audiences) ? status.audiences.filter((a): a is string => typeof a === 'string') : [];
      if (!granted.some((a) => this.#audiences.includes(a))) {
        const shown = granted.length > 0 ? granted.map(scrub).join(', ') : 'none';
        return refuse(`token audiences (${shown}) include none of ${this.#audiences.join(', ')}`);
      }
    }
    const identity = { namespace: m[1]!, serviceAccount: m[2]! };
    if (identity.namespace !== claim.namespace || identity.serviceAccount !== claim.serviceAccount) {
      return refuse(`token is for ${scrub(formatClaim(identity))}, not ${formatClaim(claim)}`);
    }
    return { ok: true, namespace: identity.namespace, serviceAccount: identity.serviceAccount, via: this.name };
  }

  /** POSTs a TokenReview; rejects with a reason (without secrets) when there is no HTTP answer in time. */
  #post(body: string, own: string, scrub: Scrub): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      let req: ReturnType<typeof https.request>;
      try {
        req = https.request(this.#url, {
          method: 'POST',
          agent: this.#agent,
          headers: {
            Authorization: `Bearer ${own}`,
            'Content-Type': 'application/json',
            Accept: 'application/json',
            'Content-Length': Buffer.byteLength(body),
          },
        });
      } catch (err) {
        // e.g. a character the Authorization header can't carry in the control plane's own token
        reject(new Error(`cannot send the review (${scrub(err instanceof Error ? err.message : String(err))})`));
        return;
      }
      const timer = setTimeout(() => {
        finish(() => reject(new Error(`no answer from the API server at ${this.#server} within ${this.#timeoutMs} ms`)));
        req.destroy();
      }, this.#timeoutMs);
      req.on('error', (err) => finish(() => reject(new Error(describeNetworkError(err, this.#server, scrub)))));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) {
            finish(() => reject(new Error(`the API server's answer is larger than ${MAX_ANSWER_BYTES} bytes`)));
            req.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () =>
          finish(() =>
            resolve({
              statusCode: res.statusCode ?? 0,
              contentType: String(res.headers['content-type'] ?? ''),
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          ),
        );
        res.on('error', (err) => finish(() => reject(new Error(describeNetworkError(err, this.#server, scrub)))));
        res.on('aborted', () => finish(() => reject(new Error(`the API server at ${this.#server} broke off its answer`))));
      });
      req.end(body);
    });
  }
}

/**
 * Reads the in-pod defaults: /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt} and the
 * KUBERNETES_SERVICE_HOST/PORT env. Undefined when not in a pod (no API server address, or no mounted token).
 * The token is re-read for every review; ca.crt is read now (and left to system trust when absent).
 */
export function inClusterTokenReviewOptions(env: NodeJS.ProcessEnv = process.env, dir: string = IN_CLUSTER_SERVICE_ACCOUNT_DIR): TokenReviewOptions | undefined {
  const host = env.KUBERNETES_SERVICE_HOST?.trim();
  if (!host) return undefined;
  const port = env.KUBERNETES_SERVICE_PORT?.trim() || '443';
  const tokenFile = path.join(dir, 'token');
  if (!existsSync(tokenFile)) return undefined;
  const caFile = path.join(dir, 'ca.crt');
  let caPem: string | undefined;
  try {
    caPem = readFileSync(caFile, 'utf8');
  } catch {
    caPem = undefined;
  }
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return {
    apiServer: `https://${hostPart}:${port}`,
    bearerToken: async () => (await readFile(tokenFile, 'utf8')).trim(),
    ...(caPem !== undefined ? { caPem } : {}),
  };
}
