/**
 * The sidecar injection webhook: AdmissionReview handling (fixtures in
 * test/fixtures/inject/admission/), the JSON Patch it returns applied with an independent RFC 6902
 * applier and compared with injectPod, and real HTTPS round trips against startWebhookServer
 * with certificates from lib/pki, including a certificate swap with refreshTls().
 */
import test from 'ava';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import { repoRoot } from '../lib/processes.js';
import { createLogger } from '../lib/log.js';
import { generateKeyPair } from '../lib/pki/keys.js';
import { createSelfSignedCa, signWorkloadCertificate } from '../lib/pki/x509.js';
import { BadAdmissionRequest, handleAdmissionReview } from '../control-plane/injection/admission.js';
import { injectPod } from '../control-plane/injection/inject.js';
import { jsonPatch, pointer } from '../control-plane/injection/json-patch.js';
import { injectOptions } from '../control-plane/injection/options.js';
import { MAX_BODY_BYTES, startWebhookServer, type WebhookTls } from '../control-plane/injection/webhook-server.js';

const FIXTURES = path.join(repoRoot, 'test/fixtures/inject/admission');
const OPTS = injectOptions({ version: 'test' });
const WEBHOOK_DNS = 'remora-webhook.remora-system.svc';

async function fixture(name: string): Promise<any> {
  return JSON.parse(await readFile(path.join(FIXTURES, `${name}.json`), 'utf8'));
}

// ---- an RFC 6902 applier, written here independently of the code under test ----

type Json = any;

function unescapeSegment(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

function applyPatch(doc: Json, patch: { op: string; path: string; value?: Json; from?: string }[]): Json {
  let root = structuredClone(doc);
  for (const op of patch) {
    if (op.path === '') {
      if (op.op === 'remove') throw new Error('cannot remove the root');
      root = structuredClone(op.value);
      continue;
    }
    if (!op.path.startsWith('/')) throw new Error(`bad pointer ${op.path}`);
    const segs = op.path.slice(1).split('/').map(unescapeSegment);
    const last = segs.pop()!;
    let parent = root;
    for (const s of segs) {
      if (Array.isArray(parent)) {
        if (!/^(0|[1-9]\d*)$/.test(s) || Number(s) >= parent.length) throw new Error(`no element ${s} in ${op.path}`);
        parent = parent[Number(s)];
      } else if (parent !== null && typeof parent === 'object') {
        if (!(s in parent)) throw new Error(`no member ${s} in ${op.path}`);
        parent = parent[s];
      } else {
        throw new Error(`cannot walk into a scalar at ${op.path}`);
      }
    }
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!/^(0|[1-9]\d*|-)$/.test(last)) throw new Error(`bad array index ${last}`);
      if (op.op === 'add') {
        if (i > parent.length) throw new Error(`index ${i} out of range in ${op.path}`);
        parent.splice(i, 0, structuredClone(op.value));
      } else if (op.op === 'remove' || op.op === 'replace') {
        if (i >= parent.length) throw new Error(`index ${i} out of range in ${op.path}`);
        if (op.op === 'remove') parent.splice(i, 1);
        else parent[i] = structuredClone(op.value);
      } else throw new Error(`unsupported op ${op.op}`);
    } else if (parent !== null && typeof parent === 'object') {
      if (op.op === 'add') parent[last] = structuredClone(op.value);
      else if (op.op === 'remove' || op.op === 'replace') {
        if (!(last in parent)) throw new Error(`no member ${last} to ${op.op} in ${op.path}`);
        if (op.op === 'remove') delete parent[last];
        else parent[last] = structuredClone(op.value);
      } else throw new Error(`unsupported op ${op.op}`);
    } else {
      throw new Error(`parent of ${op.path} is a scalar`);
    }
  }
  return root;
}

function decodePatch(review: any): any[] {
  return JSON.parse(Buffer.from(review.response.patch, 'base64').toString('utf8'));
}

// ---- AdmissionReview handling ----

for (const name of ['pod-create', 'pod-create-annotated']) {
  test(`${name}: allowed, patched; the patch applied to the pod gives injectPod's result`, async (t) => {
    const review = await fixture(name);
    const pod = review.request.object;
    const out = handleAdmissionReview(review, OPTS);
    t.true(out.injected);
    t.is(out.review.apiVersion, 'admission.k8s.io/v1');
    t.is(out.review.kind, 'AdmissionReview');
    t.is(out.review.response.uid, review.request.uid);
    t.true(out.review.response.allowed);
    t.is(out.review.response.patchType, 'JSONPatch');
    t.is(out.review.response.warnings, undefined);
    const patch = decodePatch(out.review);
    for (const op of patch) t.true(['add', 'remove', 'replace'].includes(op.op) && op.path.startsWith('/'), JSON.stringify(op));
    t.deepEqual(applyPatch(pod, patch), injectPod(pod, OPTS).template);
    t.deepEqual(review.request.object, (await fixture(name)).request.object, 'the request is not modified');
  });
}

test('the patch adds missing maps whole and escapes ~ and / in keys', async (t) => {
  const plain = decodePatch(handleAdmissionReview(await fixture('pod-create'), OPTS).review);
  const annotations = plain.find((op) => op.path === '/metadata/annotations');
  t.like(annotations, { op: 'add', value: { 'remora.io/injected': 'test' } });
  t.truthy(plain.find((op) => op.path === '/spec/initContainers' && op.op === 'add'));
  t.truthy(plain.find((op) => op.path === '/spec/volumes/1' && op.op === 'add'), 'volumes appended after the existing one');

  const annotated = decodePatch(handleAdmissionReview(await fixture('pod-create-annotated'), OPTS).review);
  t.truthy(annotated.find((op) => op.op === 'add' && op.path === '/metadata/annotations/remora.io~1injected' && op.value === 'test'));
  t.deepEqual(annotated.filter((op) => op.path.startsWith('/spec/initContainers')).map((op) => op.path), ['/spec/initContainers/0', '/spec/initContainers/1']);

  t.is(pointer(['metadata', 'annotations', 'a~b/c']), '/metadata/annotations/a~0b~1c');
  const a = { m: { 'x/y': 1, '~': [1, 2, 3] } };
  const b = { m: { 'x/y': 2, '~': [0, 1, 3], 'new/~key': true } };
  const p = jsonPatch(a, b);
  t.deepEqual(applyPatch(a, p), b);
  t.truthy(p.find((op) => op.path === '/m/new~1~0key'));
  t.deepEqual(applyPatch({ l: [1, 2, 3, 4] }, jsonPatch({ l: [1, 2, 3, 4] }, { l: [1, 4] })), { l: [1, 4] });
  t.deepEqual(jsonPatch({ a: 1 }, { a: 1 }), []);
});

test('opted-out pod: allowed, no patch, no warning', async (t) => {
  const review = await fixture('pod-opted-out');
  const out = handleAdmissionReview(review, OPTS);
  t.false(out.injected);
  t.is(out.status, 'opted-out');
  t.deepEqual(out.review.response, { uid: review.request.uid, allowed: true });
});

test('malformed pod: allowed, no patch, a warning saying why', async (t) => {
  const review = await fixture('pod-malformed');
  const out = handleAdmissionReview(review, OPTS);
  t.false(out.injected);
  t.is(out.review.response.uid, review.request.uid);
  t.true(out.review.response.allowed);
  t.is(out.review.response.patch, undefined);
  t.deepEqual(out.review.response.warnings, ['remora: sidecar not injected: spec.containers is not a list']);

  const noObject = handleAdmissionReview({ ...review, request: { ...review.request, object: null } }, OPTS);
  t.like(noObject.review.response, { allowed: true, warnings: ['remora: sidecar not injected: the request carries no pod object'] });
});

test('other kinds, operations and subresources are allowed untouched', async (t) => {
  const review = await fixture('pod-create');
  for (const request of [
    { ...review.request, operation: 'UPDATE' },
    { ...review.request, kind: { group: 'apps', version: 'v1', kind: 'Deployment' } },
    { ...review.request, subResource: 'ephemeralcontainers' },
  ]) {
    const out = handleAdmissionReview({ ...review, request }, OPTS);
    t.is(out.status, 'ignored');
    t.deepEqual(out.review.response, { uid: review.request.uid, allowed: true });
  }
});

test('not an AdmissionReview: BadAdmissionRequest (HTTP 400)', async (t) => {
  for (const body of [await fixture('not-admission-review'), null, 'x', [], { kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1beta1', request: { uid: 'u' } }, { kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request: {} }]) {
    const err = t.throws(() => handleAdmissionReview(body, OPTS), { instanceOf: BadAdmissionRequest });
    t.is(err.httpStatus, 400);
  }
});

// ---- the HTTPS server ----

const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) };

async function issue(cn: string): Promise<{ ca: string; tls: WebhookTls }> {
  const caKeys = await generateKeyPair();
  const ca = createSelfSignedCa({ keys: caKeys, commonName: cn, ...validity });
  const leaf = await generateKeyPair();
  const cert = signWorkloadCertificate({
    subjectPublicKeyPem: leaf.publicKeyPem,
    spiffeId: 'spiffe://cluster.local/ns/remora-system/sa/remora-control-plane',
    dnsNames: [WEBHOOK_DNS],
    issuerCertPem: ca,
    issuerKeyPem: caKeys.privateKeyPem,
    ...validity,
  });
  return { ca, tls: { key: leaf.privateKeyPem, cert } };
}

const certs = Promise.all([issue('webhook test CA one'), issue('webhook test CA two')]);

interface Reply { status: number; body: string; peerCert: string }

function call(port: number, ca: string, opts: { method?: string; path?: string; body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        servername: WEBHOOK_DNS,
        ca,
        agent: false,
        method: opts.method ?? 'POST',
        path: opts.path ?? '/inject',
        checkServerIdentity: (_host, cert) => tls.checkServerIdentity(WEBHOOK_DNS, cert),
        headers: opts.body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(opts.body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const sock = res.socket as tls.TLSSocket;
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), peerCert: sock.getPeerCertificate?.()?.fingerprint256 ?? '' });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const log = createLogger('webhook-test', 'silent');

test('HTTPS: POST /inject round trip, 400s, 404, 405, 413, /healthz', async (t) => {
  const [one] = await certs;
  const server = await startWebhookServer({ address: '127.0.0.1', port: 0, tls: () => one.tls, injectOptions: OPTS, log });
  t.teardown(() => server.close());

  const review = await fixture('pod-create');
  const ok = await call(server.port, one.ca, { body: JSON.stringify(review) });
  t.is(ok.status, 200);
  const answer = JSON.parse(ok.body);
  t.is(answer.response.uid, review.request.uid);
  t.deepEqual(applyPatch(review.request.object, decodePatch(answer)), injectPod(review.request.object, OPTS).template);

  const optedOut = JSON.parse((await call(server.port, one.ca, { body: JSON.stringify(await fixture('pod-opted-out')) })).body);
  t.is(optedOut.response.patch, undefined);
  t.true(optedOut.response.allowed);

  const notJson = await call(server.port, one.ca, { body: '{"kind": AdmissionReview' });
  t.is(notJson.status, 400);
  t.regex(notJson.body, /not JSON/);
  const notReview = await call(server.port, one.ca, { body: JSON.stringify(await fixture('not-admission-review')) });
  t.is(notReview.status, 400);
  t.regex(notReview.body, /expected an AdmissionReview/);

  t.is((await call(server.port, one.ca, { method: 'GET' })).status, 405);
  t.is((await call(server.port, one.ca, { path: '/mutate', body: '{}' })).status, 404);
  const health = await call(server.port, one.ca, { method: 'GET', path: '/healthz' });
  t.is(health.status, 200);
  t.is(health.body, 'ok\n');

  const huge = await call(server.port, one.ca, { body: Buffer.alloc(MAX_BODY_BYTES + 1, 0x20) }).catch((err: Error) => ({ status: -1, body: err.message }));
  t.true(huge.status === 413 || huge.status === -1, `${huge.status} ${huge.body}`);
});

test('HTTPS: no certificate yet → connections refused; refreshTls() loads one, then swaps it for new connections', async (t) => {
  const [one, two] = await certs;
  let current: WebhookTls | undefined;
  const server = await startWebhookServer({ address: '127.0.0.1', port: 0, tls: () => current, injectOptions: OPTS, log });
  t.teardown(() => server.close());

  await t.throwsAsync(call(server.port, one.ca, { method: 'GET', path: '/healthz' }));

  current = one.tls;
  server.refreshTls();
  t.is((await call(server.port, one.ca, { method: 'GET', path: '/healthz' })).status, 200);

  current = two.tls;
  // Not yet refreshed: the old certificate is still served.
  t.is((await call(server.port, one.ca, { method: 'GET', path: '/healthz' })).status, 200);
  server.refreshTls();
  t.is((await call(server.port, two.ca, { method: 'GET', path: '/healthz' })).status, 200);
  await t.throwsAsync(call(server.port, one.ca, { method: 'GET', path: '/healthz' }), { message: /self.signed|unable to verify|certificate/i });
});

test('the control plane serves the webhook over HTTPS with a certificate from the mesh CA, trusted through `remora ca bundle`', async (t) => {
  const { startEtcd } = await import('../lib/etcd-process.js');
  const { startControlPlane, eventually } = await import('./harness/sidecars.js');
  const { meshSecrets } = await import('./harness/mesh-ca.js');
  const { startRemora } = await import('../lib/processes.js');
  const etcd = await startEtcd();
  const secrets = await meshSecrets();
  const cp = await startControlPlane([etcd.endpoint], secrets.cpArgs);
  t.teardown(async () => {
    await cp.proc.stop();
    await etcd.stop();
  });
  // The control plane creates the mesh CA in etcd just after it starts listening.
  const bundle = await eventually('the mesh CA exists', async () => {
    const p = await startRemora(['ca', 'bundle', '--etcd-endpoints', etcd.endpoint]);
    return (await p.exited) === 0 && p;
  });
  t.is(await bundle.exited, 0);
  const review = await readFile(path.join(repoRoot, 'test/fixtures/inject/admission/pod-create.json'), 'utf8');
  const port = cp.proc.ports.webhook!;
  // The webhook listens at once but completes handshakes only once the CA has issued its certificate.
  const answer = await eventually('the webhook answers', () => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, path: '/inject', method: 'POST', ca: bundle.output(), servername: 'remora-webhook.remora-system.svc',
      headers: { 'content-type': 'application/json' },
    }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(review);
  }));
  t.is(answer.status, 200, answer.body);
  const out = JSON.parse(answer.body) as { response: { allowed: boolean; patchType?: string; patch?: string } };
  t.true(out.response.allowed);
  t.is(out.response.patchType, 'JSONPatch');
  t.regex(Buffer.from(out.response.patch!, 'base64').toString(), /remora-sidecar/);
});
