/** MeshState and the sidecar config built from it: pure logic, no processes. */
import test from 'ava';
import { MeshState } from '../control-plane/discovery/mesh-state.js';
import { buildSidecarConfig } from '../control-plane/discovery/sidecar-config.js';
import { PushScheduler } from '../control-plane/discovery/push-scheduler.js';
import type { InstanceRecord, StoredResource } from '../control-plane/resources/types.js';

const inst = (id: string, labels: Record<string, string> = {}, health: 'SERVING' | 'NOT_SERVING' = 'SERVING'): InstanceRecord => ({
  service: 'catalog', namespace: 'default', instanceId: id, address: '10.0.0.1', port: 15006 + Number(id.slice(-1)),
  zone: '', labels, serviceAccount: 'default', health, controlPlane: 'cp',
});

const route = (name: string, cluster: string): StoredResource => ({
  kind: 'Route', metadata: { name, namespace: 'default', labels: {} }, spec: { match: { service: 'catalog' }, cluster }, modRevision: '5',
} as StoredResource);

test('instances become a cluster; NOT_SERVING ones are left out; subsets select by label', (t) => {
  const s = new MeshState();
  s.reset({ revision: '10', resources: [], instances: [inst('a1', { version: 'v1' }), inst('a2', { version: 'v2' }), inst('a3', {}, 'NOT_SERVING')], invalid: [] });
  let cfg = buildSidecarConfig(s);
  t.deepEqual(cfg.clusters.map((c) => [c.name, c.endpoints.length]), [['catalog', 2]]);
  s.apply([{ type: 'resource-put', revision: '11', resource: { kind: 'Cluster', metadata: { name: 'catalog-v2', namespace: 'default', labels: {} }, spec: { service: 'catalog', subset: { version: 'v2' }, endpoints: [], connectTimeoutMs: 1000, maxSessionAgeMs: 60000 }, modRevision: '11' } as StoredResource }]);
  cfg = buildSidecarConfig(s);
  t.deepEqual(cfg.clusters.find((c) => c.name === 'catalog-v2')?.endpoints.map((e) => e.labels.version), ['v2']);
  t.is(s.revision, '11');
});

test('a key that turns invalid drops its last valid version; a valid write clears the invalid entry', (t) => {
  const s = new MeshState();
  s.reset({ revision: '1', resources: [route('r', 'catalog')], instances: [], invalid: [] });
  t.is(buildSidecarConfig(s).routes.length, 1);
  t.true(s.apply([{ type: 'resource-invalid', revision: '2', invalid: { key: '/remora/config/route/default/r', problems: ['spec.cluster: required'] } }]));
  t.is(buildSidecarConfig(s).routes.length, 0);
  t.is(s.invalid.size, 1);
  s.apply([{ type: 'resource-put', revision: '3', resource: route('r', 'catalog') }]);
  t.is(s.invalid.size, 0);
  t.is(buildSidecarConfig(s).routes.length, 1);
});

test('push scheduler: a lone change goes out fast; a burst becomes one push within the max delay', async (t) => {
  const pushes: number[] = [];
  const start = Date.now();
  const p = new PushScheduler(() => pushes.push(Date.now() - start), 2, 50);
  p.changed();
  await new Promise((r) => setTimeout(r, 20));
  t.is(pushes.length, 1);
  t.true(pushes[0]! < 15);
  const burstStart = Date.now() - start;
  for (let i = 0; i < 40; i++) {
    p.changed();
    await new Promise((r) => setTimeout(r, 1));
  }
  await new Promise((r) => setTimeout(r, 60));
  p.stop();
  const burst = pushes.slice(1);
  t.true(burst.length >= 1 && burst.length <= 3, `burst pushed ${burst.length} times`);
  t.true(burst[0]! - burstStart <= 80, 'the first push of a burst is not held back past the max delay (plus timer slack)');
});
