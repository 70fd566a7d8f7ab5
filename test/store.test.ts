/**
 * EtcdStore against a real etcd (Debian's etcd-server, started here): round trips, all-or-nothing
 * applies, invalid hand-written values, watch batching and resume, leases and their expiry.
 */
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { createLogger } from '../lib/log.js';
import { EtcdStore } from '../control-plane/store/etcd-store.js';
import type { StoreEvent } from '../control-plane/store/store.js';
import { parseResourcesStrict, ResourceValidationError } from '../control-plane/resources/parse.js';
import type { InstanceRecord, Resource, RouteSpec, SidecarStatus } from '../control-plane/resources/types.js';
import { startEtcd, type EtcdHandle } from '../lib/etcd-process.js';

const quiet = createLogger('store-test', process.env.REMORA_LOG_LEVEL ?? 'silent');
let etcd: EtcdHandle;
let raw: Etcd3;

test.before(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.endpoint });
});
test.after.always(async () => {
  raw?.close();
  await etcd?.stop();
});

interface StoreOpts {
  endpoints?: string[];
  prefix?: string;
  ttl?: number;
  replica?: string;
}

function openStore(t: { teardown(fn: () => Promise<void>): void }, on: EtcdHandle, opts: StoreOpts = {}): EtcdStore {
  const store = new EtcdStore(
    { endpoints: opts.endpoints ?? [on.endpoint], prefix: opts.prefix ?? freshPrefix(), leaseTtlSeconds: opts.ttl ?? 10, replicaId: opts.replica ?? 'cp-1' },
    { callTimeoutMs: 2_000, log: quiet },
  );
  t.teardown(() => store.close());
  return store;
}

const freshPrefix = () => `/t-${randomUUID().slice(0, 8)}/`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

const MESH = parseResourcesStrict(
  `
kind: Cluster
metadata: { name: catalog-v2, namespace: shop }
spec: { service: catalog, subset: { version: v2 } }
---
kind: Route
metadata: { name: catalog-canary, namespace: shop }
spec: { match: { service: catalog }, cluster: catalog-v2 }
---
kind: MeshConfig
metadata: { name: mesh }
`,
  'mesh.yaml',
);

function instance(id: string, extra: Partial<InstanceRecord> = {}): InstanceRecord {
  return { service: 'catalog', namespace: 'shop', instanceId: id, address: '127.0.0.1', port: 15006, zone: 'z1', labels: { version: 'v1' }, serviceAccount: 'catalog', health: 'SERVING', controlPlane: '', ...extra };
}

/** Collects watch callbacks; each callback is one batch. */
function collector() {
  const batches: (readonly StoreEvent[])[] = [];
  return {
    batches,
    onEvent: (events: readonly StoreEvent[]) => void batches.push(events),
    async next(pred: (b: readonly StoreEvent[]) => boolean, timeoutMs = 5_000): Promise<readonly StoreEvent[]> {
      let found: readonly StoreEvent[] | undefined;
      await waitFor(() => (found = batches.find(pred)) !== undefined, timeoutMs, 'a watch batch');
      return found!;
    },
  };
}

test('resources round-trip: apply, load, get, delete; outcomes are created / configured / unchanged', async (t) => {
  const store = openStore(t, etcd);
  const first = await store.applyResourcesDetailed(MESH);
  t.deepEqual(first.results.map((r) => r.outcome), ['created', 'created', 'created']);

  const snap = await store.load();
  // Other tests write to this etcd too, so the snapshot is at or after the apply.
  t.true(BigInt(snap.revision) >= BigInt(first.revision));
  t.is(snap.resources.length, 3);
  t.deepEqual(snap.invalid, []);
  const route = snap.resources.find((r) => r.kind === 'Route')!;
  t.deepEqual({ kind: route.kind, metadata: route.metadata, spec: route.spec }, MESH[1]);
  t.is(route.modRevision, first.revision);

  const changed = parseResourcesStrict('kind: Route\nmetadata: { name: catalog-canary, namespace: shop }\nspec: { match: { service: catalog }, cluster: catalog }\n', 'x');
  const second = await store.applyResourcesDetailed([...MESH.filter((r) => r.kind !== 'Route'), ...changed]);
  t.deepEqual(second.results.map((r) => r.outcome), ['unchanged', 'unchanged', 'configured']);
  const clusterRev = (await store.getResources('Cluster')).resources[0]!.modRevision;
  const third = await store.applyResourcesDetailed(MESH.slice(0, 1));
  t.deepEqual(third.results.map((r) => r.outcome), ['unchanged']);
  t.is((await store.getResources('Cluster')).resources[0]!.modRevision, clusterRev, 'nothing written when nothing changed');

  t.is(((await store.getResources('Route')).resources[0]?.spec as RouteSpec | undefined)?.cluster, 'catalog');
  t.is((await store.getResources('Cluster', 'catalog-v2', 'shop')).resources.length, 1);
  t.is((await store.getResources('Cluster', 'catalog-v2', 'default')).resources.length, 0);
  t.is((await store.getResources()).resources.length, 3);
  t.true(await store.deleteResource('Route', 'catalog-canary', 'shop'));
  t.false(await store.deleteResource('Route', 'catalog-canary', 'shop'));
  t.is((await store.getResources('Route')).resources.length, 0);
});

test('an apply with one invalid resource writes nothing', async (t) => {
  const store = openStore(t, etcd);
  const bad = { kind: 'Route', metadata: { name: 'broken', namespace: 'shop', labels: {} }, spec: { match: { service: 'x' }, cluster: 'Not_A_Label' } } as unknown as Resource;
  const err = await t.throwsAsync(store.applyResources([...MESH, bad]), { instanceOf: ResourceValidationError });
  t.regex(err!.message, /resources\[3\] \(Route shop\/broken\): spec\.cluster: "Not_A_Label" is not valid/);
  t.is((await store.load()).resources.length, 0);
});

test('a hand-written invalid value is reported and skipped; the valid ones load', async (t) => {
  const store = openStore(t, etcd);
  await store.applyResources(MESH);
  await raw.put(`${store.prefix}config/route/shop/hand-made`).value('{"kind":"Route","metadata":{"name":"hand-made","namespace":"shop"},"spec":{"match":{"service":"catalog"}}}');
  await raw.put(`${store.prefix}config/cluster/shop/junk`).value('{{{ not json');
  await raw.put(`${store.prefix}endpoints/shop/catalog/bad-1`).value('{"service":"catalog"}');
  await raw.put(`${store.prefix}ca/bundle`).value('not ours to judge');
  await store.registerInstance(instance('good-1'));

  const snap = await store.load();
  t.is(snap.resources.length, 3);
  t.deepEqual(snap.instances.map((i) => i.instanceId), ['good-1']);
  t.deepEqual(snap.invalid.map((i) => i.key).sort(), [
    `${store.prefix}config/cluster/shop/junk`,
    `${store.prefix}config/route/shop/hand-made`,
    `${store.prefix}endpoints/shop/catalog/bad-1`,
  ]);
  t.deepEqual(snap.invalid.find((i) => i.key.endsWith('hand-made'))!.problems, ['spec.cluster: is required']);
  const routes = await store.getResources('Route');
  t.is(routes.resources.length, 1);
  t.is(routes.invalid.length, 1);
});

test('watch delivers a multi-document apply as one batch, in revision order, and skips status and foreign keys', async (t) => {
  const store = openStore(t, etcd);
  const snap = await store.load();
  const c = collector();
  await store.watch(snap.revision, c.onEvent);

  const rev = await store.applyResources(MESH);
  const batch = await c.next((b) => b.some((e) => e.type === 'resource-put'));
  t.is(batch.length, 3);
  t.true(batch.every((e) => e.type === 'resource-put' && e.revision === rev));
  t.deepEqual(batch.map((e) => (e.type === 'resource-put' ? e.resource.metadata.name : '')).sort(), ['catalog-canary', 'catalog-v2', 'mesh']);

  await store.putStatus({ service: 'catalog', namespace: 'shop', instanceId: 'i-1', controlPlane: 'cp-1', connectedAt: new Date().toISOString(), appliedVersion: rev, lastNack: null });
  await raw.put(`${store.prefix}ca/bundle`).value('x');
  await store.registerInstance(instance('i-1'));
  const reg = await c.next((b) => b.some((e) => e.type === 'instance-put'));
  t.like(reg[0], { type: 'instance-put', instance: { instanceId: 'i-1', controlPlane: 'cp-1' } });

  await raw.put(`${store.prefix}config/route/shop/catalog-canary`).value('{"broken": true}');
  const bad = await c.next((b) => b.some((e) => e.type === 'resource-invalid'));
  t.like(bad[0], { type: 'resource-invalid', invalid: { key: `${store.prefix}config/route/shop/catalog-canary` } });

  await store.deleteResource('Cluster', 'catalog-v2', 'shop');
  await store.deregisterInstance('shop', 'catalog', 'i-1');
  const del = await c.next((b) => b.some((e) => e.type === 'resource-delete'));
  t.like(del[0], { type: 'resource-delete', kind: 'Cluster', namespace: 'shop', name: 'catalog-v2' });
  await c.next((b) => b.some((e) => e.type === 'instance-delete'));

  // One batch per revision, revisions strictly increasing, and nothing for the status or ca/ writes.
  const revs = c.batches.map((b) => BigInt(b[0]!.type === 'resync-needed' ? 0 : b[0]!.revision));
  t.deepEqual(revs, [...revs].sort((a, b) => (a < b ? -1 : 1)));
  t.is(new Set(revs).size, revs.length);
  t.is(c.batches.length, 5);
});

test('watch from an old revision replays history; close() stops delivery', async (t) => {
  const store = openStore(t, etcd);
  const start = (await store.load()).revision;
  await store.applyResources(MESH.slice(0, 1));
  await store.applyResources(MESH.slice(1));
  const c = collector();
  const w = await store.watch(start, c.onEvent);
  await waitFor(() => c.batches.length === 2, 5_000, 'two replayed batches');
  t.deepEqual(c.batches.map((b) => b.length), [1, 2]);
  await w.close();
  await store.deleteResource('Route', 'catalog-canary', 'shop');
  await sleep(300);
  t.is(c.batches.length, 2);
});

test('several endpoints given as a list: a dead one does not matter', async (t) => {
  const store = openStore(t, etcd, { endpoints: ['http://127.0.0.1:1', etcd.endpoint] });
  for (let i = 0; i < 5; i++) {
    await store.applyResources(MESH);
    t.is((await store.load()).resources.length, 3);
  }
});

test('registrations sit on the replica lease; deregister is guarded by who holds the registration', async (t) => {
  const prefix = freshPrefix();
  const a = openStore(t, etcd, { prefix, replica: 'cp-a' });
  const b = openStore(t, etcd, { prefix, replica: 'cp-b' });
  const key = `${prefix}endpoints/shop/catalog/i-1`;

  await a.registerInstance(instance('i-1'));
  const kv = await raw.get(key).exec();
  t.is(kv.kvs[0]?.lease, await a.leaseId());
  t.is(JSON.parse(kv.kvs[0]!.value.toString()).controlPlane, 'cp-a');

  // b never held it: its deregister is a no-op.
  await b.deregisterInstance('shop', 'catalog', 'i-1');
  t.truthy(await raw.get(key));

  // The sidecar moves to b; a's late cleanup (its stream to the sidecar broke) must not remove b's registration.
  await b.registerInstance(instance('i-1'));
  t.is((await raw.get(key).exec()).kvs[0]?.lease, await b.leaseId());
  await a.deregisterInstance('shop', 'catalog', 'i-1');
  t.is(JSON.parse((await raw.get(key))!).controlPlane, 'cp-b');

  await b.deregisterInstance('shop', 'catalog', 'i-1');
  t.is(await raw.get(key), null);

  // Status follows the same rule.
  const status: SidecarStatus = { service: 'catalog', namespace: 'shop', instanceId: 'i-1', controlPlane: 'cp-a', connectedAt: 'now', appliedVersion: '7', lastNack: null };
  await a.putStatus(status);
  await b.deleteStatus('shop', 'catalog', 'i-1');
  t.is((await a.listStatus()).length, 1);
  await a.deleteStatus('shop', 'catalog', 'i-1');
  t.is((await a.listStatus()).length, 0);

  await t.throwsAsync(a.registerInstance(instance('bad/id')), { instanceOf: ResourceValidationError, message: /instanceId/ });
});

test('a replica that dies without revoking loses its registrations within the TTL; a clean close removes them at once', async (t) => {
  const prefix = freshPrefix();
  const dying = new EtcdStore({ endpoints: [etcd.endpoint], prefix, leaseTtlSeconds: 2, replicaId: 'cp-dying' }, { log: quiet });
  await dying.registerInstance(instance('i-1'));
  await dying.putStatus({ service: 'catalog', namespace: 'shop', instanceId: 'i-1', controlPlane: 'cp-dying', connectedAt: 'now', appliedVersion: '1', lastNack: null });
  // Keep-alives work: the keys outlive several TTLs while the replica lives.
  await sleep(3_000);
  t.is((await raw.getAll().prefix(prefix).keys()).length, 2);
  // Like kill -9: keep-alives stop, nothing is revoked.
  await dying.close({ revokeLease: false });
  const goneAfter = await waitFor(async () => (await raw.getAll().prefix(prefix).keys()).length === 0, 2_000 + 3_000, 'the keys to expire');
  t.log(`keys expired ${goneAfter} ms after the replica stopped (TTL 2 s)`);

  const clean = new EtcdStore({ endpoints: [etcd.endpoint], prefix, leaseTtlSeconds: 10, replicaId: 'cp-clean' }, { log: quiet });
  await clean.registerInstance(instance('i-2'));
  await clean.close();
  t.deepEqual(await raw.getAll().prefix(prefix).keys(), []);
});

test('compacted history makes the watch ask for a resync', async (t) => {
  const own = await startEtcd();
  t.teardown(() => own.stop());
  const store = openStore(t, own);
  const before = (await store.load()).revision;
  await store.applyResources(MESH);
  const rev = await store.applyResources(MESH.map((r) => ({ ...r, metadata: { ...r.metadata, labels: { v: '2' } } })));
  const client = new Etcd3({ hosts: own.endpoint });
  t.teardown(() => client.close());
  await client.kv.compact({ revision: rev, physical: true });

  const c = collector();
  await store.watch(before, c.onEvent);
  const batch = await c.next((b) => b.some((e) => e.type === 'resync-needed'));
  t.is(batch.length, 1);
  t.regex(batch[0]!.type === 'resync-needed' ? batch[0]!.reason : '', /compacted/);

  // The documented recovery: load again, watch from there.
  const snap = await store.load();
  const c2 = collector();
  await store.watch(snap.revision, c2.onEvent);
  await store.deleteResource('MeshConfig', 'mesh', 'default');
  await c2.next((b) => b[0]?.type === 'resource-delete');
});

test('etcd down and back: the watch resumes without losing events, and registrations survive a lost lease', async (t) => {
  const own = await startEtcd();
  t.teardown(() => own.stop());
  const store = openStore(t, own, { ttl: 2, replica: 'cp-1' });
  const writer = openStore(t, own, { prefix: store.prefix });
  await store.registerInstance(instance('i-1'));
  const oldLease = await store.leaseId();
  const c = collector();
  await store.watch((await store.load()).revision, c.onEvent);

  // Down for longer than twice the TTL: the client gives the lease up, etcd expires it after restarting.
  const t0 = Date.now();
  await own.restart({ downMs: 5_000 });
  const tBack = Date.now();
  t.log(`etcd back after ${tBack - t0} ms`);
  // Written the moment etcd is back, before the watch has reconnected: must still arrive.
  await writer.applyResources(MESH.slice(0, 1));
  await writer.applyResources(MESH.slice(1));
  await c.next((b) => b.some((e) => e.type === 'resource-put' && e.resource.kind === 'Route'), 10_000);
  t.log(`watch caught up ${Date.now() - t0} ms after etcd went down`);
  const puts = c.batches.flat().filter((e) => e.type === 'resource-put');
  t.is(puts.length, 3, 'every event written while the watch was away arrives, once');

  const key = `${store.prefix}endpoints/shop/catalog/i-1`;
  await waitFor(async () => {
    const kv = (await raw_(own).get(key).exec()).kvs[0];
    return kv !== undefined && kv.lease !== oldLease;
  }, 15_000, 'the registration on a new lease');
  t.log(`registration on a new lease ${Date.now() - tBack} ms after etcd returned`);
  // And it is kept alive on that new lease.
  await sleep(4_500);
  t.truthy(await raw_(own).get(key));
});

const clients = new Map<string, Etcd3>();
function raw_(on: EtcdHandle): Etcd3 {
  let c = clients.get(on.endpoint);
  if (!c) clients.set(on.endpoint, (c = new Etcd3({ hosts: on.endpoint })));
  return c;
}
test.after.always(() => {
  for (const c of clients.values()) c.close();
});
