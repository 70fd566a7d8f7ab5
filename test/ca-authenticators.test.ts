/**
 * The mesh CA's authenticators: bootstrap token files (parsing, scopes, constant-time lookup), anyOf, and Kubernetes
 * TokenReview against a real stub API server (https on 127.0.0.1 with a self-signed certificate made here).
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { anyOf, type AuthResult, type Authenticator, type WorkloadClaim } from '../control-plane/ca/authenticator.js';
import { BootstrapTokenError, loadBootstrapTokens, parseBootstrapTokens } from '../control-plane/ca/bootstrap-tokens.js';
import { KubernetesTokenReviewer, inClusterTokenReviewOptions, TOKEN_REVIEW_PATH, type TokenReviewOptions } from '../control-plane/ca/token-review.js';
import { selfSigned, type Pem } from './fixtures/self-signed.js';

const claim = (namespace: string, serviceAccount: string): WorkloadClaim => ({ namespace, serviceAccount });
const reasonOf = (r: AuthResult): string => (r.ok ? '' : r.reason);

// ---------------------------------------------------------------------------------------------
// Bootstrap tokens

const ANY = 'any-identity-token-0001';
const SHOP = 'shop-namespace-token-02';
const CATALOG = 'shop-catalog-token-0003';
const TWO = 'two-scopes-token-000004';

const FILE = `
# demo bootstrap tokens
${ANY}
${SHOP} shop/*
   ${CATALOG}   shop/catalog    # the catalog service only

${TWO} shop/web\r
${TWO} payments/*
${TWO} shop/web
`;

test('bootstrap tokens: scopes, comments, blank lines, CRLF; a token on several lines has the union of scopes', (t) => {
  const tokens = parseBootstrapTokens(FILE);
  t.is(tokens.name, 'bootstrap-token');
  t.is(tokens.size, 4);
  t.is(parseBootstrapTokens('').size, 0);
  t.is(parseBootstrapTokens('# nothing\n\n   \n').size, 0);
  t.is(parseBootstrapTokens('\uFEFFabcdefghijklmnop').size, 1);
  // A '#' inside a token is part of it; only one that starts a field begins a comment.
  t.is(parseBootstrapTokens('abcdefgh#ijklmnop shop/*').size, 1);
});

test('bootstrap tokens: authenticate by scope', async (t) => {
  const tokens = parseBootstrapTokens(FILE);
  t.deepEqual(await tokens.authenticate(ANY, claim('payments', 'ledger')), { ok: true, namespace: 'payments', serviceAccount: 'ledger', via: 'bootstrap-token' });
  t.deepEqual(await tokens.authenticate(SHOP, claim('shop', 'orders')), { ok: true, namespace: 'shop', serviceAccount: 'orders', via: 'bootstrap-token' });
  t.true((await tokens.authenticate(CATALOG, claim('shop', 'catalog'))).ok);
  t.true((await tokens.authenticate(TWO, claim('shop', 'web'))).ok);
  t.true((await tokens.authenticate(TWO, claim('payments', 'ledger'))).ok);

  t.deepEqual(await tokens.authenticate(CATALOG, claim('shop', 'orders')), {
    ok: false,
    reason: 'bootstrap token may not claim shop/orders (its scope is shop/catalog)',
  });
  t.deepEqual(await tokens.authenticate(SHOP, claim('payments', 'ledger')), {
    ok: false,
    reason: 'bootstrap token may not claim payments/ledger (its scope is shop/*)',
  });
  t.is(reasonOf(await tokens.authenticate(TWO, claim('shop', 'orders'))), 'bootstrap token may not claim shop/orders (its scope is shop/web, payments/*)');
});

test('bootstrap tokens: unknown tokens, near misses and malformed claims are refused', async (t) => {
  const tokens = parseBootstrapTokens(FILE);
  for (const wrong of ['', 'nope', ANY.slice(0, -1), `${ANY}x`, ANY.toUpperCase(), ` ${ANY}`]) {
    t.deepEqual(await tokens.authenticate(wrong, claim('shop', 'orders')), { ok: false, reason: 'unknown bootstrap token' }, JSON.stringify(wrong));
  }
  t.deepEqual(await parseBootstrapTokens('').authenticate(ANY, claim('shop', 'orders')), { ok: false, reason: 'unknown bootstrap token' });
  // Even a '*' token can't claim an identity that isn't one.
  for (const bad of [claim('', 'orders'), claim('Shop', 'orders'), claim('shop', ''), claim('shop', 'a/b'), claim('shop', '..')]) {
    const r = await tokens.authenticate(ANY, bad);
    t.false(r.ok);
    t.regex(reasonOf(r), /^invalid claim/);
  }
});

test('bootstrap tokens: bad lines name the line number and never echo the line', (t) => {
  const secret = 'this-is-a-secret-token-value';
  const cases: Array<[string, number, RegExp]> = [
    [`# ok\n${ANY}\n${secret} shop/orders extra`, 3, /expected '<token> \[scope\]' but found 3 fields/],
    [`${ANY}\n\nshort shop/*`, 3, /shorter than 16 characters/],
    [`${secret} shop`, 1, /the scope must be/],
    [`${secret} shop/`, 1, /the scope must be/],
    [`${secret} Shop/orders`, 1, /the scope must be/],
    [`${secret} shop/a/b`, 1, /the scope must be/],
    [`${secret} */orders`, 1, /the scope must be/],
    // Token and scope swapped: the "scope" is the secret, and it must not show either.
    [`\n\n\n\nshop/orders ${secret}`, 5, /shorter than 16 characters/],
    [`shop-orders-long-name ${secret}`, 1, /the scope must be/],
  ];
  for (const [text, line, pattern] of cases) {
    const err = t.throws(() => parseBootstrapTokens(text), { instanceOf: BootstrapTokenError });
    t.truthy(err);
    t.is(err!.line, line, text);
    t.true(err!.message.startsWith(`line ${line}: `), err!.message);
    t.regex(err!.message, pattern);
    t.false(err!.message.includes(secret), err!.message);
    t.false(err!.message.includes('short shop'), err!.message);
    t.false(err!.message.includes('shop-orders-long-name'), err!.message);
  }
});

test('bootstrap tokens: loadBootstrapTokens reads a file; errors name the file', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-bootstrap-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const good = path.join(dir, 'tokens');
  await writeFile(good, FILE);
  const tokens = await loadBootstrapTokens(good);
  t.is(tokens.size, 4);
  t.true((await tokens.authenticate(SHOP, claim('shop', 'cart'))).ok);

  const bad = path.join(dir, 'bad-tokens');
  await writeFile(bad, `${ANY}\nsecret-but-short-ish\ttoo many fields\n`);
  const err = await t.throwsAsync(loadBootstrapTokens(bad), { instanceOf: BootstrapTokenError });
  t.is(err!.line, 2);
  t.true(err!.message.includes(bad), err!.message);
  t.true(err!.message.includes('line 2'), err!.message);
  t.false(err!.message.includes('secret-but-short-ish'), err!.message);

  const missing = path.join(dir, 'missing');
  const err2 = await t.throwsAsync(loadBootstrapTokens(missing), { instanceOf: BootstrapTokenError });
  t.true(err2!.message.includes(missing), err2!.message);
  t.regex(err2!.message, /ENOENT/);
});

// ---------------------------------------------------------------------------------------------
// anyOf

function fake(name: string, answer: (token: string) => AuthResult | 'throw'): Authenticator & { calls: number } {
  const a = {
    name,
    calls: 0,
    async authenticate(token: string): Promise<AuthResult> {
      a.calls++;
      const r = answer(token);
      if (r === 'throw') throw new Error(`exploded on ${token}`);
      return r;
    },
  };
  return a;
}

test('anyOf: first ok wins, in order; all refusals are joined with "; "', async (t) => {
  const first = fake('first', (tok) => (tok === 'a' ? { ok: true, namespace: 'ns', serviceAccount: 'a', via: 'first' } : { ok: false, reason: 'first says no' }));
  const second = fake('second', (tok) => (tok !== 'z' ? { ok: true, namespace: 'ns', serviceAccount: 'b', via: 'second' } : { ok: false, reason: 'second says no' }));
  const both = anyOf([first, second]);
  t.is(both.name, 'any-of(first, second)');

  t.deepEqual(await both.authenticate('a', claim('ns', 'a')), { ok: true, namespace: 'ns', serviceAccount: 'a', via: 'first' });
  t.is(second.calls, 0);
  t.deepEqual(await both.authenticate('b', claim('ns', 'b')), { ok: true, namespace: 'ns', serviceAccount: 'b', via: 'second' });
  t.deepEqual(await both.authenticate('z', claim('ns', 'z')), { ok: false, reason: 'first says no; second says no' });
  t.is(first.calls, 3);
  t.is(second.calls, 2);

  t.deepEqual(await anyOf([]).authenticate('a', claim('ns', 'a')), { ok: false, reason: 'no authenticators configured' });
});

test('anyOf: a member that throws only refuses, without the token in the reason', async (t) => {
  const token = 'secret-token-value-xyz';
  const boom = fake('boom', () => 'throw');
  const tokens = parseBootstrapTokens(`${ANY} shop/*`);
  const r = await anyOf([boom, tokens]).authenticate(token, claim('shop', 'orders'));
  t.false(r.ok);
  t.is(reasonOf(r), 'boom failed: exploded on [redacted]; unknown bootstrap token');
  t.true((await anyOf([boom, tokens]).authenticate(ANY, claim('shop', 'orders'))).ok);
});

// ---------------------------------------------------------------------------------------------
// A stub Kubernetes API server, with a self-signed certificate (test/fixtures/self-signed.ts).

/** What the stub does with a token: a TokenReview status, or misbehave. */
type Behaviour =
  | { readonly authenticated: true; readonly username: string; readonly audiences: readonly string[]; readonly lax?: boolean }
  | { readonly authenticated: false; readonly error?: string }
  | 'hang'
  | 'html'
  | 'http-500'
  | 'no-status'
  | 'huge';

const CP_TOKEN = 'control-plane-own-token-abc';
const CP_UNPRIVILEGED = 'control-plane-unprivileged-token';
const ECHO = 'sa-token-echoed-by-server';

const API_AUDIENCES = ['https://kubernetes.default.svc', 'remora-ca'];
const TABLE: Record<string, Behaviour> = {
  'sa-token-shop-orders': { authenticated: true, username: 'system:serviceaccount:shop:orders', audiences: API_AUDIENCES },
  'sa-token-shop-catalog': { authenticated: true, username: 'system:serviceaccount:shop:catalog', audiences: API_AUDIENCES },
  'sa-token-api-only': { authenticated: true, username: 'system:serviceaccount:shop:orders', audiences: ['https://kubernetes.default.svc'] },
  // A server that authenticates without honouring spec.audiences: the reviewer must check status.audiences itself.
  'sa-token-lax': { authenticated: true, username: 'system:serviceaccount:shop:orders', audiences: ['something-else'], lax: true },
  'sa-token-person': { authenticated: true, username: 'alice@example.com', audiences: API_AUDIENCES },
  'sa-token-expired': { authenticated: false, error: 'token has expired' },
  'sa-token-unknown-reason': { authenticated: false },
  [ECHO]: { authenticated: false, error: `invalid bearer token ${ECHO}` },
  'sa-token-hang': 'hang',
  'sa-token-html': 'html',
  'sa-token-500': 'http-500',
  'sa-token-no-status': 'no-status',
  'sa-token-huge': 'huge',
};

interface Stub {
  readonly server: https.Server;
  readonly url: string;
  readonly problems: string[];
  readonly specs: unknown[];
  readonly hung: ServerResponse[];
}

let pem: Pem;
let otherPem: Pem;
let stub: Stub;

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const k8sStatus = (code: number, reason: string, message: string) => ({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });

function handle(s: Stub, req: IncomingMessage, body: string, res: ServerResponse): void {
  const problem = (what: string): void => {
    s.problems.push(what);
    sendJson(res, 400, k8sStatus(400, 'BadRequest', what));
  };
  if (req.method !== 'POST') return problem(`method ${req.method}`);
  if (req.url !== '/apis/authentication.k8s.io/v1/tokenreviews') return problem(`path ${req.url}`);
  const auth = req.headers.authorization;
  if (auth === `Bearer ${CP_UNPRIVILEGED}`) {
    return sendJson(
      res,
      403,
      k8sStatus(
        403,
        'Forbidden',
        'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:remora:control-plane" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope',
      ),
    );
  }
  if (auth !== `Bearer ${CP_TOKEN}`) return sendJson(res, 401, k8sStatus(401, 'Unauthorized', 'Unauthorized'));
  if (!String(req.headers['content-type']).startsWith('application/json')) return problem(`content-type ${req.headers['content-type']}`);

  let review: { apiVersion?: unknown; kind?: unknown; spec?: { token?: unknown; audiences?: unknown } };
  try {
    review = JSON.parse(body);
  } catch {
    return problem('body is not JSON');
  }
  if (review.apiVersion !== 'authentication.k8s.io/v1' || review.kind !== 'TokenReview') return problem(`apiVersion/kind ${review.apiVersion}/${review.kind}`);
  const spec = review.spec;
  if (typeof spec !== 'object' || spec === null) return problem('no spec');
  const keys = Object.keys(spec).sort().join(',');
  if (keys !== 'token' && keys !== 'audiences,token') return problem(`spec keys ${keys}`);
  if (typeof spec.token !== 'string') return problem('spec.token is not a string');
  const wanted = spec.audiences;
  if (wanted !== undefined && (!Array.isArray(wanted) || wanted.length === 0 || !wanted.every((a) => typeof a === 'string'))) {
    return problem('spec.audiences is not a non-empty list of strings');
  }
  s.specs.push({ ...spec, token: '(token)' });

  const b = TABLE[spec.token];
  const reviewed = (status: object) =>
    sendJson(res, 201, { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec, status });
  if (b === undefined) return reviewed({ user: {}, error: 'invalid bearer token' });
  if (b === 'hang') return void s.hung.push(res);
  if (b === 'html') {
    res.writeHead(200, { 'content-type': 'text/html' });
    return void res.end('<html><body>a proxy login page</body></html>');
  }
  if (b === 'http-500') return sendJson(res, 500, k8sStatus(500, 'InternalError', 'etcdserver: request timed out'));
  if (b === 'huge') {
    res.writeHead(201, { 'content-type': 'application/json' });
    return void res.end(`{"padding":"${'x'.repeat(2 << 20)}"}`);
  }
  if (b === 'no-status') return sendJson(res, 201, { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', spec });
  if (!b.authenticated) return reviewed({ user: {}, ...(b.error !== undefined ? { error: b.error } : {}) });
  // Like the API server: with spec.audiences, the token must have one of them and status.audiences is the overlap.
  let audiences = [...b.audiences];
  if (wanted !== undefined && !b.lax) {
    audiences = audiences.filter((a) => (wanted as string[]).includes(a));
    if (audiences.length === 0) {
      return reviewed({ user: {}, error: `[invalid bearer token, token audiences ${JSON.stringify(b.audiences)} is invalid for the target audiences ${JSON.stringify(wanted)}]` });
    }
  }
  const [, , ns] = b.username.split(':');
  reviewed({ authenticated: true, user: { username: b.username, uid: randomBytes(8).toString('hex'), groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'] }, audiences });
}

async function startStub(keyPair: Pem): Promise<Stub> {
  const server = https.createServer({ key: keyPair.key, cert: keyPair.cert });
  const s: Stub = { server, url: '', problems: [], specs: [], hung: [] };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(s, req, Buffer.concat(chunks).toString('utf8'), res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return { ...s, url: `https://127.0.0.1:${port}` };
}

test.before(async () => {
  pem = selfSigned('stub-kube-apiserver');
  otherPem = selfSigned('some-other-ca');
  stub = await startStub(pem);
});

test.after.always(async () => {
  if (!stub) return;
  for (const res of stub.hung) res.destroy();
  stub.server.closeAllConnections();
  await new Promise<void>((resolve) => stub.server.close(() => resolve()));
});

function reviewer(opts: Partial<TokenReviewOptions> = {}): KubernetesTokenReviewer {
  return new KubernetesTokenReviewer({ apiServer: stub.url, caPem: pem.cert, bearerToken: async () => CP_TOKEN, ...opts });
}

/** Authenticates and checks that the reason never carries the token nor the control plane's own token. */
async function review(t: { false: (v: boolean, m?: string) => void }, r: Authenticator, token: string, c: WorkloadClaim): Promise<AuthResult> {
  const result = await r.authenticate(token, c);
  if (!result.ok) {
    t.false(result.reason.includes(token), `reason carries the token: ${result.reason}`);
    t.false(result.reason.includes(CP_TOKEN) || result.reason.includes(CP_UNPRIVILEGED), `reason carries the control plane's token: ${result.reason}`);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// TokenReview

test('token review: an authenticated token for the claimed identity is ok', async (t) => {
  let reads = 0;
  const r = reviewer({ bearerToken: async () => (reads++, `${CP_TOKEN}\n`) });
  t.is(r.name, 'kubernetes');
  t.deepEqual(await review(t, r, 'sa-token-shop-orders', claim('shop', 'orders')), { ok: true, namespace: 'shop', serviceAccount: 'orders', via: 'kubernetes' });
  t.deepEqual(await review(t, r, 'sa-token-shop-catalog', claim('shop', 'catalog')), { ok: true, namespace: 'shop', serviceAccount: 'catalog', via: 'kubernetes' });
  t.is(reads, 2, 'the own token is read for every review');
  t.deepEqual(stub.problems, []);
});

test('token review: an authenticated token for another identity is refused', async (t) => {
  t.deepEqual(await review(t, reviewer(), 'sa-token-shop-catalog', claim('shop', 'orders')), { ok: false, reason: 'token is for shop/catalog, not shop/orders' });
  t.deepEqual(await review(t, reviewer(), 'sa-token-shop-orders', claim('payments', 'orders')), { ok: false, reason: 'token is for shop/orders, not payments/orders' });
  const person = await review(t, reviewer(), 'sa-token-person', claim('shop', 'orders'));
  t.is(reasonOf(person), 'token is not a service account token (its user is alice@example.com)');
});

test('token review: a token the API server does not authenticate is refused with its status.error', async (t) => {
  t.deepEqual(await review(t, reviewer(), 'sa-token-expired', claim('shop', 'orders')), { ok: false, reason: 'token not authenticated by the API server: token has expired' });
  t.deepEqual(await review(t, reviewer(), 'sa-token-unknown-reason', claim('shop', 'orders')), { ok: false, reason: 'token not authenticated by the API server' });
  t.deepEqual(await review(t, reviewer(), 'never-heard-of-it', claim('shop', 'orders')), { ok: false, reason: 'token not authenticated by the API server: invalid bearer token' });
  // If the server quotes the token back, it is blanked out.
  t.deepEqual(await review(t, reviewer(), ECHO, claim('shop', 'orders')), { ok: false, reason: 'token not authenticated by the API server: invalid bearer token [redacted]' });
  t.deepEqual(stub.problems, []);
});

test('token review: audiences are sent only when configured, and must be granted', async (t) => {
  const withAud = reviewer({ audiences: ['remora-ca'] });
  const before = stub.specs.length;
  t.true((await review(t, withAud, 'sa-token-shop-orders', claim('shop', 'orders'))).ok);
  t.true((await review(t, reviewer(), 'sa-token-api-only', claim('shop', 'orders'))).ok);
  // Other tests run concurrently: find this test's bodies by their audiences.
  const mine = stub.specs.slice(before) as Array<{ audiences?: unknown }>;
  t.true(mine.some((s) => JSON.stringify(s) === JSON.stringify({ token: '(token)', audiences: ['remora-ca'] })));
  t.true(mine.some((s) => JSON.stringify(s) === JSON.stringify({ token: '(token)' })), 'no audiences key when none are configured');

  // A real API server refuses a token without the audience...
  const refused = await review(t, withAud, 'sa-token-api-only', claim('shop', 'orders'));
  t.false(refused.ok);
  t.regex(reasonOf(refused), /^token not authenticated by the API server: .*invalid for the target audiences/);
  // ...and when a server says authenticated without granting one, the reviewer refuses anyway.
  t.deepEqual(await review(t, withAud, 'sa-token-lax', claim('shop', 'orders')), {
    ok: false,
    reason: 'token audiences (something-else) include none of remora-ca',
  });
  t.deepEqual(stub.problems, []);
});

test("token review: 401/403 for the control plane's own credentials says so, with the RBAC hint", async (t) => {
  const forbidden = await review(t, reviewer({ bearerToken: async () => CP_UNPRIVILEGED }), 'sa-token-shop-orders', claim('shop', 'orders'));
  t.false(forbidden.ok);
  t.regex(reasonOf(forbidden), /^token review failed: the API server refused the control plane's own credentials \(HTTP 403: tokenreviews.authentication.k8s.io is forbidden/);
  t.regex(reasonOf(forbidden), /needs RBAC permission to create tokenreviews/);

  const unauthorized = await review(t, reviewer({ bearerToken: async () => 'stale-token' }), 'sa-token-shop-orders', claim('shop', 'orders'));
  t.regex(reasonOf(unauthorized), /^token review failed: the API server refused the control plane's own credentials \(HTTP 401: Unauthorized\)/);

  const unreadable = await review(t, reviewer({ bearerToken: async () => Promise.reject(new Error('ENOENT: no such file')) }), 'sa-token-shop-orders', claim('shop', 'orders'));
  t.is(reasonOf(unreadable), "token review failed: cannot read the control plane's own service account token (ENOENT: no such file)");
  const empty = await review(t, reviewer({ bearerToken: async () => '  \n' }), 'sa-token-shop-orders', claim('shop', 'orders'));
  t.is(reasonOf(empty), "token review failed: the control plane's own service account token is empty");
});

test('token review: a server that never answers times out', async (t) => {
  const started = Date.now();
  const r = await review(t, reviewer({ timeoutMs: 300 }), 'sa-token-hang', claim('shop', 'orders'));
  const took = Date.now() - started;
  t.is(reasonOf(r), `token review failed: no answer from the API server at ${stub.url} within 300 ms`);
  t.true(took >= 250 && took < 3000, `took ${took} ms`);
});

test('token review: the wrong CA fails TLS, and system trust does not know the stub', async (t) => {
  const wrong = await review(t, reviewer({ caPem: otherPem.cert }), 'sa-token-shop-orders', claim('shop', 'orders'));
  t.false(wrong.ok);
  t.regex(reasonOf(wrong), new RegExp(`^token review failed: TLS with the API server at ${stub.url.replace(/\./g, '\\.')} failed \\(`));
  const system = await review(t, new KubernetesTokenReviewer({ apiServer: stub.url, bearerToken: async () => CP_TOKEN }), 'sa-token-shop-orders', claim('shop', 'orders'));
  t.regex(reasonOf(system), /^token review failed: TLS with the API server/);
});

test('token review: non-JSON, error and status-less answers, and a closed port', async (t) => {
  t.is(reasonOf(await review(t, reviewer(), 'sa-token-html', claim('shop', 'orders'))), "token review failed: the API server's answer is not JSON (content-type text/html)");
  t.is(reasonOf(await review(t, reviewer(), 'sa-token-500', claim('shop', 'orders'))), 'token review failed: the API server answered HTTP 500: etcdserver: request timed out');
  t.is(reasonOf(await review(t, reviewer(), 'sa-token-no-status', claim('shop', 'orders'))), "token review failed: the API server's answer has no TokenReview status");
  t.is(reasonOf(await review(t, reviewer(), 'sa-token-huge', claim('shop', 'orders'))), "token review failed: the API server's answer is larger than 1048576 bytes");

  const closed = net.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const r = await review(t, reviewer({ apiServer: `https://127.0.0.1:${port}` }), 'sa-token-shop-orders', claim('shop', 'orders'));
  t.is(reasonOf(r), `token review failed: cannot reach the API server at https://127.0.0.1:${port} (ECONNREFUSED)`);
  // Only outside text is scrubbed, so a token that is a short, common string doesn't garble the reason.
  const short = await reviewer({ apiServer: `https://127.0.0.1:${port}`, bearerToken: async () => 'e' }).authenticate('t', claim('shop', 'orders'));
  t.is(reasonOf(short), `token review failed: cannot reach the API server at https://127.0.0.1:${port} (ECONNREFUSED)`);
  // An own token that can't go in a header: no throw, and no echo.
  const crooked = await review(t, reviewer({ bearerToken: async () => `${CP_TOKEN}\nX-Evil: 1` }), 'sa-token-shop-orders', claim('shop', 'orders'));
  t.regex(reasonOf(crooked), /^token review failed: cannot send the review \(/);
});

test('token review: empty tokens and malformed claims are refused without asking the API server', async (t) => {
  let reads = 0;
  const r = reviewer({ bearerToken: async () => (reads++, CP_TOKEN) });
  t.deepEqual(await r.authenticate('', claim('shop', 'orders')), { ok: false, reason: 'no token presented' });
  t.regex(reasonOf(await r.authenticate('sa-token-shop-orders', claim('shop', 'a:b'))), /^invalid claim/);
  t.regex(reasonOf(await r.authenticate('sa-token-shop-orders', claim('SHOP', 'orders'))), /^invalid claim/);
  t.is(reads, 0);
});

test('token review: options that can never work are refused at construction', (t) => {
  t.throws(() => new KubernetesTokenReviewer({ apiServer: 'http://127.0.0.1:8080', bearerToken: async () => CP_TOKEN }), { message: /must be https/ });
  t.throws(() => new KubernetesTokenReviewer({ apiServer: 'not a url', bearerToken: async () => CP_TOKEN }), { message: /not a URL/ });
  t.throws(() => new KubernetesTokenReviewer({ apiServer: 'https://x', bearerToken: async () => CP_TOKEN, timeoutMs: 0 }), { message: /timeoutMs/ });
  t.is(TOKEN_REVIEW_PATH, '/apis/authentication.k8s.io/v1/tokenreviews');
});

test('token review behind anyOf: bootstrap tokens first, then Kubernetes', async (t) => {
  const chain = anyOf([parseBootstrapTokens(`${SHOP} shop/*`), reviewer()]);
  t.deepEqual(await chain.authenticate(SHOP, claim('shop', 'orders')), { ok: true, namespace: 'shop', serviceAccount: 'orders', via: 'bootstrap-token' });
  t.deepEqual(await chain.authenticate('sa-token-shop-orders', claim('shop', 'orders')), { ok: true, namespace: 'shop', serviceAccount: 'orders', via: 'kubernetes' });
  t.deepEqual(await review(t, chain, 'sa-token-shop-catalog', claim('shop', 'orders')), {
    ok: false,
    reason: 'unknown bootstrap token; token is for shop/catalog, not shop/orders',
  });
});

// ---------------------------------------------------------------------------------------------
// In-cluster defaults

test('inClusterTokenReviewOptions: reads the service account directory and env; undefined outside a pod', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-sa-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '6443' };

  t.is(inClusterTokenReviewOptions({}, dir), undefined, 'no API server address');
  t.is(inClusterTokenReviewOptions(env, dir), undefined, 'no token mounted');

  await writeFile(path.join(dir, 'token'), 'first-token\n');
  const noCa = inClusterTokenReviewOptions(env, dir);
  t.is(noCa?.apiServer, 'https://10.96.0.1:6443');
  t.is(noCa?.caPem, undefined);

  await writeFile(path.join(dir, 'ca.crt'), pem.cert);
  const opts = inClusterTokenReviewOptions(env, dir)!;
  t.is(opts.caPem, pem.cert);
  t.is(await opts.bearerToken(), 'first-token');
  await writeFile(path.join(dir, 'token'), 'rotated-token');
  t.is(await opts.bearerToken(), 'rotated-token', 'the token is re-read');

  t.is(inClusterTokenReviewOptions({ KUBERNETES_SERVICE_HOST: 'fd00::1' }, dir)?.apiServer, 'https://[fd00::1]:443');
});
