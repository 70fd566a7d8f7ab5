/**
 * The panic threshold's pick logic, in process: which endpoints the balancer gets as health checks
 * and outlier detection take endpoints out, and the field's validation in the static config and
 * the Cluster resource. Real Cluster and Endpoint objects; nothing connects (no pick is dialled).
 */
import test from 'ava';
import { servingSet, DEFAULT_PANIC_THRESHOLD_PERCENT } from '../sidecar/health/panic-threshold.js';
import { Cluster } from '../sidecar/upstream/cluster.js';
import type { Endpoint } from '../sidecar/upstream/endpoint.js';
import { TRANSPORT_FAILURE } from '../sidecar/proxy/forward.js';
import { ConfigError, validateMeshConfig } from '../sidecar/config/validate.js';
import { parseResources } from '../control-plane/resources/parse.js';
import type { ClusterConfig } from '../sidecar/config/model.js';

const healthyOf = (set: ReadonlySet<string>) => (e: string) => set.has(e);

test('servingSet: panics strictly below the threshold, never at 0, never without endpoints', (t) => {
  const three = ['a', 'b', 'c'];
  t.is(DEFAULT_PANIC_THRESHOLD_PERCENT, 50);
  t.deepEqual(servingSet(three, healthyOf(new Set(['a', 'b'])), 50), { endpoints: ['a', 'b'], healthy: ['a', 'b'], panic: false }, '2 of 3 healthy: 67%');
  t.deepEqual(servingSet(three, healthyOf(new Set(['a'])), 50), { endpoints: three, healthy: ['a'], panic: true }, '1 of 3: 33% < 50%');
  t.deepEqual(servingSet(three, healthyOf(new Set()), 50), { endpoints: three, healthy: [], panic: true }, 'none healthy');
  t.false(servingSet(['a', 'b'], healthyOf(new Set(['a'])), 50).panic, '1 of 2 is exactly 50%: not below');
  t.true(servingSet(['a', 'b'], healthyOf(new Set(['a'])), 51).panic);
  t.deepEqual(servingSet(three, healthyOf(new Set()), 0), { endpoints: [], healthy: [], panic: false }, '0 disables: nobody');
  t.true(servingSet(three, healthyOf(new Set(['a', 'b'])), 100).panic, '100: any unhealthy endpoint panics');
  t.false(servingSet(three, healthyOf(new Set(three)), 100).panic);
  t.deepEqual(servingSet([], () => true, 50), { endpoints: [], healthy: [], panic: false });
});

function clusterOf(panicThresholdPercent: number | undefined): Cluster {
  const cfg: ClusterConfig = {
    name: 'svc',
    // Ports nobody listens on: nothing here dials (pick() does not connect).
    endpoints: [1, 2, 3].map((i) => ({ address: '127.0.0.1', port: i, weight: 1, labels: {} })),
    connectTimeoutMs: 1000,
    maxSessionAgeMs: 60_000,
    loadBalancing: { policy: 'ROUND_ROBIN' },
    outlierDetection: { consecutiveFailures: 1, baseEjectionMs: 600_000, maxEjectionMs: 600_000, maxEjectionPercent: 100, statusCodes: [] },
    ...(panicThresholdPercent === undefined ? {} : { panicThresholdPercent }),
  };
  return new Cluster(cfg);
}

/** The endpoints 60 picks landed on, sorted (ROUND_ROBIN visits each within one cycle). */
function picks(c: Cluster, n = 60): string[] {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const e = c.pick({ now: Date.now(), headers: {} });
    if (e) seen.add(e.key);
  }
  return [...seen].sort();
}

function eject(c: Cluster, e: Endpoint): void {
  const now = Date.now();
  c.callEnded(e, TRANSPORT_FAILURE, now, now, 0);
}

type Described = { panic: boolean; panics: number; panicThresholdPercent: number; endpoints: { address: string; ejected: boolean | null }[] };

test('Cluster: ejections below the threshold take endpoints out; past it every endpoint is balanced over again', (t) => {
  const c = clusterOf(undefined);
  t.teardown(() => c.destroy());
  const [e1, e2, e3] = c.endpointList() as [Endpoint, Endpoint, Endpoint];
  t.is(picks(c).length, 3);

  eject(c, e1);
  t.deepEqual(picks(c), [e2.key, e3.key], 'one of three ejected: the others take the calls');
  t.false((c.describe(Date.now()) as Described).panic);

  eject(c, e2);
  const d = c.describe(Date.now()) as Described;
  t.true(d.panic, 'one healthy of three is below 50%');
  t.is(d.panics, 1);
  t.is(d.panicThresholdPercent, 50);
  t.deepEqual(d.endpoints.map((x) => x.ejected), [true, true, false], 'still reported as ejected');
  t.deepEqual(picks(c), [e1.key, e2.key, e3.key], 'in a panic all three are picked');

  eject(c, e3);
  t.deepEqual(picks(c), [e1.key, e2.key, e3.key], 'all ejected: still all three, never "no endpoint"');
  t.true(c.hasCandidates(Date.now()));
});

test('Cluster: panicThresholdPercent 0 keeps the old behaviour: no endpoint left, no call', (t) => {
  const c = clusterOf(0);
  t.teardown(() => c.destroy());
  const [e1, e2, e3] = c.endpointList() as [Endpoint, Endpoint, Endpoint];
  eject(c, e1);
  eject(c, e2);
  t.deepEqual(picks(c), [e3.key]);
  eject(c, e3);
  t.is(c.pick({ now: Date.now(), headers: {} }), undefined);
  t.regex(c.unavailableReason(Date.now()), /no endpoint of cluster svc can take the call: 3 endpoints, 3 ejected as outliers$/);
  t.false((c.describe(Date.now()) as Described).panic);
});

test('Cluster: a config push changing the threshold re-decides at once', (t) => {
  const c = clusterOf(0);
  t.teardown(() => c.destroy());
  const [e1, e2] = c.endpointList() as [Endpoint, Endpoint, Endpoint];
  eject(c, e1);
  eject(c, e2);
  t.is(picks(c).length, 1);
  c.update({ ...c.config, panicThresholdPercent: 50 });
  t.is(picks(c).length, 3, 'the same endpoints (ejections kept), now in a panic');
  t.true((c.describe(Date.now()) as Described).panic);
  c.update({ ...c.config, panicThresholdPercent: 30 });
  t.false((c.describe(Date.now()) as Described).panic, '33% healthy is not below 30%');
  t.is(picks(c).length, 1);
});

test('validation: panicThresholdPercent defaults to 50, 0-100 only, with the field path (static config and Cluster resource)', (t) => {
  const ok = validateMeshConfig({ clusters: [{ name: 'a', endpoints: [] }, { name: 'b', endpoints: [], panicThresholdPercent: 0 }] }, 'v1');
  t.is(ok.clusters[0]!.panicThresholdPercent, 50);
  t.is(ok.clusters[1]!.panicThresholdPercent, 0);

  const err = t.throws(() => validateMeshConfig({ clusters: [{ name: 'a', endpoints: [] }, { name: 'b', endpoints: [], panicThresholdPercent: 101 }, { name: 'c', endpoints: [], panicThresholdPercent: '50' }] }, 'v1'), { instanceOf: ConfigError }) as ConfigError;
  t.deepEqual(err.problems, [
    'clusters[1].panicThresholdPercent: must be an integer from 0 to 100, got 101',
    'clusters[2].panicThresholdPercent: must be an integer from 0 to 100, got "50"',
  ]);

  const parsed = parseResources('kind: Cluster\nmetadata: { name: catalog }\nspec: { panicThresholdPercent: 25 }\n---\nkind: Cluster\nmetadata: { name: bad }\nspec: { panicThresholdPercent: -1 }\n', 'c.yaml');
  t.deepEqual(parsed.errors, ['c.yaml document 2 (Cluster default/bad): spec.panicThresholdPercent: must be an integer from 0 to 100, got -1']);
  t.like(parsed.resources[0]!.spec, { service: 'catalog', panicThresholdPercent: 25 });
  const dflt = parseResources('kind: Cluster\nmetadata: { name: catalog }\nspec: {}\n', 'd.yaml');
  t.like(dflt.resources[0]!.spec, { panicThresholdPercent: 50 });
});

test('Cluster: a cluster a route fails over from does not panic; the failover cluster takes the calls', (t) => {
  const od = { consecutiveFailures: 1, baseEjectionMs: 600_000, maxEjectionMs: 600_000, maxEjectionPercent: 100 };
  const config = validateMeshConfig({
    clusters: [
      { name: 'primary', endpoints: [{ address: '127.0.0.1', port: 1 }, { address: '127.0.0.1', port: 2 }], outlierDetection: od },
      { name: 'backup', endpoints: [{ address: '127.0.0.1', port: 3 }, { address: '127.0.0.1', port: 4 }], outlierDetection: od },
    ],
    routes: [{ match: { service: 'svc' }, cluster: 'primary', failover: 'backup' }],
  }, 'v1');
  const [primary, backup] = config.clusters.map((cfg) => new Cluster(cfg)) as [Cluster, Cluster];
  t.teardown(() => { primary.destroy(); backup.destroy(); });
  for (const c of [primary, backup]) for (const e of c.endpointList()) eject(c, e);
  t.is(primary.pick({ now: Date.now(), headers: {} }), undefined, 'nobody: the route goes to its failover');
  t.is((primary.describe(Date.now()) as Described).panicThresholdPercent, 0);
  t.is(picks(backup).length, 2, 'the failover cluster itself still panics');
});
