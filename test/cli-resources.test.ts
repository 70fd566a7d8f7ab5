/**
 * `remora apply / get / delete / status` as users run them: real processes against a real etcd,
 * checking output, exit codes and that a failed apply writes nothing.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { remoraBin } from '../lib/processes.js';
import { createLogger } from '../lib/log.js';
import { EtcdStore } from '../control-plane/store/etcd-store.js';
import { startEtcd, type EtcdHandle } from '../lib/etcd-process.js';

let etcd: EtcdHandle;
let dir: string;

test.before(async () => {
  etcd = await startEtcd();
  dir = await mkdtemp(path.join(tmpdir(), 'remora-cli-'));
});
test.after.always(async () => {
  await etcd?.stop();
});

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

function remora(args: string[], opts: { prefix?: string; input?: string; env?: Record<string, string> } = {}): Promise<Run> {
  const start = Date.now();
  const child = spawn(process.execPath, [remoraBin, ...args], {
    env: { ...process.env, REMORA_ETCD_ENDPOINTS: etcd.endpoint, ...(opts.prefix ? { REMORA_PREFIX: opts.prefix } : {}), ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdin.end(opts.input ?? '');
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - start })));
}

async function file(name: string, text: string): Promise<string> {
  const f = path.join(dir, `${randomUUID().slice(0, 6)}-${name}`);
  await writeFile(f, text);
  return f;
}

const freshPrefix = () => `/cli-${randomUUID().slice(0, 8)}/`;

const MESH = `
kind: Cluster
metadata: { name: catalog-v2, namespace: shop }
spec:
  service: catalog
  subset: { version: v2 }
  loadBalancing: { policy: LEAST_REQUEST }
---
kind: Route
metadata: { name: catalog-canary, namespace: shop }
spec:
  match: { service: catalog }
  cluster: catalog-v2
  timeoutMs: 1500
---
kind: MeshConfig
metadata: { name: mesh }
`;

test('apply creates, re-apply is unchanged, an edit is configured; get shows tables and JSON', async (t) => {
  const prefix = freshPrefix();
  const f = await file('mesh.yaml', MESH);
  const first = await remora(['apply', '-f', f], { prefix });
  t.is(first.code, 0, first.stderr);
  t.is(first.stdout, 'cluster.remora/shop/catalog-v2 created\nroute.remora/shop/catalog-canary created\nmeshconfig.remora/default/mesh created\n');

  const again = await remora(['apply', '-f', f], { prefix });
  t.is(again.stdout, 'cluster.remora/shop/catalog-v2 unchanged\nroute.remora/shop/catalog-canary unchanged\nmeshconfig.remora/default/mesh unchanged\n');

  const edited = await remora(['apply', '-f', '-'], { prefix, input: MESH.replace('timeoutMs: 1500', 'timeoutMs: 900') });
  t.is(edited.code, 0, edited.stderr);
  t.regex(edited.stdout, /^route\.remora\/shop\/catalog-canary configured$/m);
  t.regex(edited.stdout, /^cluster\.remora\/shop\/catalog-v2 unchanged$/m);

  const table = await remora(['get', 'routes', '-n', 'shop'], { prefix });
  t.is(table.code, 0, table.stderr);
  const lines = table.stdout.trimEnd().split('\n');
  t.regex(lines[0]!, /^NAMESPACE\s+NAME\s+SERVICE\s+CLUSTER\s+TIMEOUT\s+RETRIES$/);
  t.regex(lines[1]!, /^shop\s+catalog-canary\s+catalog\s+catalog-v2\s+900ms\s+-$/);

  // KIND in any case, singular or plural.
  for (const kind of ['Route', 'route', 'ROUTES']) {
    const one = await remora(['get', kind, 'catalog-canary', '-n', 'shop', '-o', 'json'], { prefix });
    t.is(one.code, 0, one.stderr);
    t.deepEqual(JSON.parse(one.stdout), {
      kind: 'Route',
      metadata: { name: 'catalog-canary', namespace: 'shop', labels: {} },
      spec: { match: { service: 'catalog' }, cluster: 'catalog-v2', timeoutMs: 900 },
    });
  }

  const all = await remora(['get', 'clusters', '-A', '-o', 'json'], { prefix });
  t.deepEqual(JSON.parse(all.stdout).map((r: { metadata: { name: string } }) => r.metadata.name), ['catalog-v2']);
  const none = await remora(['get', 'clusters'], { prefix });
  t.is(none.code, 0);
  t.is(none.stdout, '');
  t.is(none.stderr, 'No clusters found in namespace default.\n');

  // -o yaml round-trips through apply.
  const yaml = await remora(['get', 'clusters', '-n', 'shop', '-o', 'yaml'], { prefix });
  const back = await remora(['apply', '-f', '-'], { prefix, input: yaml.stdout });
  t.is(back.stdout, 'cluster.remora/shop/catalog-v2 unchanged\n');
});

test('apply with one invalid document prints every error with its path, exits 1 and writes nothing', async (t) => {
  const prefix = freshPrefix();
  const bad = `${MESH}---
kind: Route
metadata: { name: broken, namespace: shop }
spec:
  match: { service: 42 }
  cluster: catalog
---
kind: Widget
metadata: { name: w }
`;
  const f = await file('mesh.yaml', bad);
  const run = await remora(['apply', '-f', f], { prefix });
  t.is(run.code, 1);
  t.is(run.stdout, '');
  t.true(run.stderr.includes(`${f} document 4 (Route shop/broken): spec.match.service: must be a non-empty string, got 42`), run.stderr);
  t.true(run.stderr.includes(`${f} document 5 (Widget default/w): kind: unknown kind "Widget" (known: Route, Cluster, AuthorizationPolicy, MeshConfig)`), run.stderr);
  t.regex(run.stderr, /remora: nothing applied: 2 errors in /);

  for (const kind of ['routes', 'clusters', 'meshconfigs']) {
    const get = await remora(['get', kind, '-A', '-o', 'json'], { prefix });
    t.deepEqual(JSON.parse(get.stdout), [], `${kind} must be empty`);
  }
});

test('delete removes a resource; deleting a missing one exits 1 naming it', async (t) => {
  const prefix = freshPrefix();
  await remora(['apply', '-f', '-'], { prefix, input: MESH });
  const del = await remora(['delete', 'route', 'catalog-canary', '-n', 'shop'], { prefix });
  t.is(del.code, 0, del.stderr);
  t.is(del.stdout, 'route.remora/shop/catalog-canary deleted\n');
  const again = await remora(['delete', 'Routes', 'catalog-canary', '-n', 'shop'], { prefix });
  t.is(again.code, 1);
  t.is(again.stderr, 'remora: route.remora/shop/catalog-canary not found\n');
  const get = await remora(['get', 'route', 'catalog-canary', '-n', 'shop'], { prefix });
  t.is(get.code, 1);
  t.is(get.stderr, 'remora: route.remora "catalog-canary" not found in namespace shop\n');
  const usage = await remora(['delete', 'gadget', 'x'], { prefix });
  t.is(usage.code, 2);
  t.regex(usage.stderr, /unknown kind "gadget" \(known: Route, Cluster, AuthorizationPolicy, MeshConfig\)/);
});

test('get lists invalid values found in etcd as warnings and shows the valid ones', async (t) => {
  const prefix = freshPrefix();
  await remora(['apply', '-f', '-'], { prefix, input: MESH });
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => client.close());
  await client.put(`${prefix}config/route/shop/hand-made`).value('{"kind":"Route","metadata":{"name":"hand-made","namespace":"shop"},"spec":{}}');
  const run = await remora(['get', 'routes', '-A'], { prefix });
  t.is(run.code, 0);
  t.regex(run.stdout, /catalog-canary/);
  t.notRegex(run.stdout, /hand-made/);
  t.is(run.stderr, `warning: skipped invalid value at ${prefix}config/route/shop/hand-made: spec.match: is required; spec.cluster: is required\n`);
});

test('get instances and status show what control-plane replicas registered', async (t) => {
  const prefix = freshPrefix();
  const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix, leaseTtlSeconds: 10, replicaId: 'cp-7' }, { log: createLogger('t', 'silent') });
  t.teardown(() => store.close());
  await store.registerInstance({ service: 'catalog', namespace: 'shop', instanceId: 'catalog-1', address: '10.0.0.5', port: 15006, zone: 'eu-1a', labels: {}, serviceAccount: 'catalog', health: 'SERVING', controlPlane: '' });
  const nack = { version: '41', at: new Date().toISOString(), errors: ['cluster catalog-v2: endpoints[0].port: must be an integer from 1 to 65535, got 70000 and then some more words', 'route x: no cluster'] };
  await store.putStatus({ service: 'catalog', namespace: 'shop', instanceId: 'catalog-1', controlPlane: 'cp-7', connectedAt: new Date().toISOString(), appliedVersion: '40', lastNack: nack });
  await store.putStatus({ service: 'orders', namespace: 'default', instanceId: 'orders-1', controlPlane: 'cp-7', connectedAt: new Date().toISOString(), appliedVersion: '41', lastNack: null });

  const inst = await remora(['get', 'instances', '-A'], { prefix });
  t.is(inst.code, 0, inst.stderr);
  const [head, row] = inst.stdout.trimEnd().split('\n');
  t.regex(head!, /^NAMESPACE\s+SERVICE\s+INSTANCE\s+ADDRESS\s+ZONE\s+HEALTH\s+CONTROL-PLANE$/);
  t.regex(row!, /^shop\s+catalog\s+catalog-1\s+10\.0\.0\.5:15006\s+eu-1a\s+SERVING\s+cp-7$/);
  const instJson = await remora(['get', 'instances', 'catalog', '-n', 'shop', '-o', 'json'], { prefix });
  t.like(JSON.parse(instJson.stdout)[0], { instanceId: 'catalog-1', controlPlane: 'cp-7' });

  const status = await remora(['status'], { prefix });
  t.is(status.code, 0, status.stderr);
  const lines = status.stdout.trimEnd().split('\n');
  t.regex(lines[0]!, /^NAMESPACE\s+SERVICE\s+INSTANCE\s+CONTROL-PLANE\s+APPLIED-VERSION\s+LAST-NACK$/);
  t.regex(lines[1]!, /^default\s+orders\s+orders-1\s+cp-7\s+41\s+-$/);
  t.regex(lines[2]!, /^shop\s+catalog\s+catalog-1\s+cp-7\s+40\s+41: cluster catalog-v2: endpoints\[0\]\.port: .*… \(\+1 more\)$/);
  t.true(lines[2]!.length < 160, 'the NACK reason is shortened in the table');

  const json = await remora(['status', '-o', 'json'], { prefix });
  const parsed = JSON.parse(json.stdout) as { lastNack: unknown }[];
  t.deepEqual(parsed[1]!.lastNack, nack, 'JSON has the whole NACK');
  const yaml = await remora(['status', '-o', 'yaml', '-n', 'default'], { prefix });
  t.regex(yaml.stdout, /^service: orders$/m);
});

test('an unreachable etcd fails in seconds with one clear line', async (t) => {
  const run = await remora(['get', 'routes'], { env: { REMORA_ETCD_ENDPOINTS: 'http://127.0.0.1:1,http://127.0.0.1:2' } });
  t.is(run.code, 1);
  t.is(run.stdout, '');
  t.regex(run.stderr, /^remora: cannot reach etcd at http:\/\/127\.0\.0\.1:1, http:\/\/127\.0\.0\.1:2 \(.*\)\. Start etcd .*REMORA_ETCD_ENDPOINTS/);
  t.is(run.stderr.trimEnd().split('\n').length, 1);
  // Refused connections fail at once; the bound is loose because the machine may be busy.
  t.true(run.ms < 8_000, `took ${run.ms} ms`);

  // An endpoint that accepts connections and never answers: the deadline ends it, not etcd3's retries.
  const silent = net.createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => silent.close());
  const port = (silent.address() as net.AddressInfo).port;
  const hung = await remora(['get', 'routes', '--timeout-ms', '1500'], { env: { REMORA_ETCD_ENDPOINTS: `127.0.0.1:${port}` } });
  t.is(hung.code, 1);
  t.regex(hung.stderr, /^remora: cannot reach etcd at 127\.0\.0\.1:\d+ \(no answer within 1500 ms\)/);
  t.true(hung.ms < 10_000, `took ${hung.ms} ms`);
  t.log(`refused: ${run.ms} ms, silent endpoint with --timeout-ms 1500: ${hung.ms} ms (process start included)`);

  const apply = await remora(['apply', '-f', '-', '--etcd-endpoints', 'http://127.0.0.1:1'], { input: MESH });
  t.is(apply.code, 1);
  t.regex(apply.stderr, /cannot reach etcd/);
  const usage = await remora(['apply']);
  t.is(usage.code, 2);
  t.regex(usage.stderr, /-f FILE is required/);
});
