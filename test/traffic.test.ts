/**
 * Traffic management through real sidecars and real gRPC servers: per-request balancing when a
 * service scales out, active health checks, outlier ejection and re-admission, circuit breakers,
 * failover, and a replica killed under load.
 */
import test from 'ava';
import { startEtcd } from '../lib/etcd-process.js';
import { startEchoServer, echoClient, unary, grpc, type EchoServer } from './fixtures/echo-service.js';
import { startSidecar, startControlPlane, getJson, eventually, type SidecarHandle } from './harness/sidecars.js';
import { freePort } from '../lib/processes.js';
import type { MeshConfig } from '../sidecar/config/model.js';

const configOf = (sc: SidecarHandle) => getJson<MeshConfig>(sc.admin, '/config_dump');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Served { at: number; by: string; code: number; details?: string }

/** Calls in a loop from `workers` concurrent callers until stop() resolves; records who answered. */
function load(client: grpc.Client, workers: number, deadlineMs = 2000): { results: Served[]; stop: () => Promise<void> } {
  const results: Served[] = [];
  let running = true;
  const loop = async () => {
    while (running) {
      try {
        const { headers } = await unary(client, Buffer.from('x'), undefined, { deadline: Date.now() + deadlineMs });
        results.push({ at: Date.now(), by: String(headers.get('x-served-by')[0] ?? ''), code: 0 });
      } catch (err) {
        results.push({ at: Date.now(), by: '', code: (err as grpc.ServiceError).code, details: (err as grpc.ServiceError).details });
      }
      await sleep(2);
    }
  };
  const all = Array.from({ length: workers }, loop);
  return { results, stop: async () => { running = false; await Promise.all(all); } };
}

function shares(results: Served[]): Record<string, number> {
  const ok = results.filter((r) => r.code === 0);
  const out: Record<string, number> = {};
  for (const r of ok) out[r.by] = (out[r.by] ?? 0) + 1;
  for (const k of Object.keys(out)) out[k] = out[k]! / ok.length;
  return out;
}

test('scaling from 1 to 3 instances under load: the new ones take a fair share within a second', async (t) => {
  const etcd = await startEtcd();
  const cp = await startControlPlane([etcd.endpoint]);
  const apps: EchoServer[] = [];
  const sidecars: SidecarHandle[] = [];
  const client = await startSidecar({ controlPlanes: [cp.address], service: 'client', extraArgs: ['--register=false'] });
  const grpcClient = echoClient(`127.0.0.1:${client.outbound}`, 'echo');
  t.teardown(async () => {
    grpcClient.close();
    await Promise.all([client, ...sidecars].map((s) => s.proc.stop()));
    await cp.proc.stop();
    for (const a of apps) a.server.forceShutdown();
    await etcd.stop();
  });
  const addInstance = async (name: string) => {
    const app = await startEchoServer(0, name);
    apps.push(app);
    sidecars.push(await startSidecar({ controlPlanes: [cp.address], service: 'echo', appPort: app.port, extraArgs: ['--instance-id', name] }));
  };
  await addInstance('a');
  await eventually('one echo endpoint', async () => (await configOf(client)).clusters.find((c) => c.name === 'echo')?.endpoints.length === 1);
  const traffic = load(grpcClient, 8);
  await sleep(1000);
  await Promise.all([addInstance('b'), addInstance('c')]);
  await eventually('three echo endpoints pushed', async () => (await configOf(client)).clusters.find((c) => c.name === 'echo')?.endpoints.length === 3);
  const scaledAt = Date.now();
  await sleep(3000);
  await traffic.stop();
  const after = traffic.results.filter((r) => r.at >= scaledAt + 1000);
  const s = shares(after);
  t.log(`${after.length} calls from 1 s to 3 s after the scale-out; shares ${JSON.stringify(s)} (PEAK_EWMA, the default)`);
  t.is(traffic.results.filter((r) => r.code !== 0).length, 0, 'no call failed while scaling');
  t.true(after.length > 300);
  // Peak EWMA weighs by latency, so equal servers get roughly, not exactly, equal shares.
  for (const name of ['a', 'b', 'c']) t.true((s[name] ?? 0) > 0.2, `${name} got ${((s[name] ?? 0) * 100).toFixed(1)}%`);
});

test('active health checks take an instance out while NOT_SERVING and back when SERVING', async (t) => {
  const a = await startEchoServer(0, 'a');
  const b = await startEchoServer(0, 'b');
  const sc = await startSidecar({
    config: {
      clusters: [{
        name: 'echo',
        endpoints: [{ address: '127.0.0.1', port: a.port }, { address: '127.0.0.1', port: b.port }],
        loadBalancing: { policy: 'ROUND_ROBIN' },
        // A generous timeout and two failures in a row: a probe slowed by a busy CI machine must
        // not take the healthy instance out too (NOT_SERVING answers come at once, so the
        // timeout does not slow what the test measures). 200 ms was seen to fail on a loaded CI.
        healthCheck: { intervalMs: 400, timeoutMs: 400, healthyThreshold: 1, unhealthyThreshold: 2, jitterMs: 20 },
      }],
    },
  });
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
  t.teardown(async () => { client.close(); await sc.proc.stop(); a.server.forceShutdown(); b.server.forceShutdown(); });
  const served = async (n: number) => { const seen = new Set<string>(); for (let i = 0; i < n; i++) seen.add(String((await unary(client, Buffer.from('x'))).headers.get('x-served-by')[0])); return [...seen].sort(); };
  t.deepEqual(await served(10), ['a', 'b']);
  b.setServing(false);
  const cut = Date.now();
  await eventually('b marked unhealthy', async () => {
    const clusters = await getJson<{ name: string; endpoints: { address: string; healthy: boolean }[] }[]>(sc.admin, '/clusters');
    return clusters.find((c) => c.name === 'echo')?.endpoints.some((e) => e.address.endsWith(`:${b.port}`) && e.healthy === false);
  }, 3000);
  t.log(`NOT_SERVING noticed after ${Date.now() - cut} ms (interval 400 ms, 2 failures)`);
  t.deepEqual(await served(20), ['a'], 'no call reaches an unhealthy instance');
  b.setServing(true);
  await eventually('b back', async () => (await served(10)).includes('b'), 3000);
  t.pass();
});

test('outlier detection ejects an instance after consecutive failures and re-admits it after the ejection time', async (t) => {
  const good = await startEchoServer(0, 'good');
  const bad = await startEchoServer(0, 'bad');
  bad.failUnary = grpc.status.UNAVAILABLE;
  const sc = await startSidecar({
    config: {
      clusters: [{
        name: 'echo',
        endpoints: [{ address: '127.0.0.1', port: good.port }, { address: '127.0.0.1', port: bad.port }],
        loadBalancing: { policy: 'ROUND_ROBIN' },
        outlierDetection: { consecutiveFailures: 3, baseEjectionMs: 1500, maxEjectionMs: 10_000, maxEjectionPercent: 50 },
      }],
    },
  });
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
  t.teardown(async () => { client.close(); await sc.proc.stop(); good.server.forceShutdown(); bad.server.forceShutdown(); });
  const call = () => unary(client, Buffer.from('x')).then(() => 0, (e: grpc.ServiceError) => e.code);
  let failures = 0;
  for (let i = 0; i < 6; i++) if ((await call()) !== 0) failures++;
  t.is(failures, 3, 'round robin sends every other call to the bad instance until its third failure');
  const ejectedAt = Date.now();
  for (let i = 0; i < 20; i++) t.is(await call(), 0, 'ejected: nothing reaches the bad instance');
  bad.failUnary = undefined;
  await eventually('re-admitted', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(String((await unary(client, Buffer.from('x'))).headers.get('x-served-by')[0]));
    return seen.has('bad');
  }, 5000);
  const readmittedAfter = Date.now() - ejectedAt;
  t.log(`re-admitted ${readmittedAfter} ms after ejection (baseEjectionMs 1500)`);
  t.true(readmittedAfter >= 1300 && readmittedAfter < 4000, `re-admitted after ${readmittedAfter} ms`);
});

test('circuit breakers: max-requests and max-pending-requests fail fast with UNAVAILABLE naming the breaker', async (t) => {
  const app = await startEchoServer(0, 'a');
  const sc = await startSidecar({
    config: {
      clusters: [
        { name: 'echo', endpoints: [{ address: '127.0.0.1', port: app.port }], circuitBreakers: { maxRequests: 2 } },
        { name: 'cold', endpoints: [{ address: '127.0.0.1', port: app.port }], circuitBreakers: { maxPendingRequests: 0 } },
      ],
    },
  });
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
  const cold = echoClient(`127.0.0.1:${sc.outbound}`, 'cold');
  t.teardown(async () => { client.close(); cold.close(); await sc.proc.stop(); app.server.forceShutdown(); });
  const slow = new grpc.Metadata();
  slow.set('x-sleep-ms', '500');
  const outcomes = await Promise.all(Array.from({ length: 5 }, () =>
    new Promise<{ code: number; details: string; overflow: string }>((resolve) => {
      const c = client.makeUnaryRequest('/remora.test.Echo/Unary', (b: Buffer) => b, (b: Buffer) => b, Buffer.from('x'), slow, () => {});
      // A trailers-only answer's headers arrive as the status metadata.
      c.on('status', (s) => resolve({ code: s.code, details: s.details, overflow: String(s.metadata.get('x-remora-overflow')[0] ?? '') }));
    })));
  t.is(outcomes.filter((o) => o.code === 0).length, 2);
  const tripped = outcomes.filter((o) => o.code !== 0);
  t.is(tripped.length, 3);
  for (const o of tripped) {
    t.is(o.code, grpc.status.UNAVAILABLE);
    t.regex(o.details, /circuit breaker max-requests tripped for cluster echo \(limit 2\)/);
    t.is(o.overflow, 'max-requests');
  }
  t.is((await unary(client, Buffer.from('x'))).status.code, 0, 'the breaker closes once calls finish');
  const err = await unary(cold, Buffer.from('x')).then(() => undefined, (e: grpc.ServiceError) => e);
  t.regex(err?.details ?? '', /max-pending-requests/, 'a call that would wait for a new connection overflows max-pending-requests 0');
});

test('a per-endpoint breaker opens after consecutive failures, fails fast, and a half-open probe closes it', async (t) => {
  const app = await startEchoServer(0, 'a');
  app.failUnary = grpc.status.UNAVAILABLE;
  const sc = await startSidecar({
    config: { clusters: [{ name: 'echo', endpoints: [{ address: '127.0.0.1', port: app.port }], circuitBreakers: {} }] },
  });
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
  t.teardown(async () => { client.close(); await sc.proc.stop(); app.server.forceShutdown(); });
  const call = () => unary(client, Buffer.from('x')).then(() => ({ code: 0, details: '' }), (e: grpc.ServiceError) => ({ code: e.code, details: e.details }));
  for (let i = 0; i < 5; i++) t.regex((await call()).details, /failing on purpose/);
  const before = app.record.calls;
  const fast = await call();
  t.is(fast.code, grpc.status.UNAVAILABLE);
  t.regex(fast.details, /open breaker/);
  t.is(app.record.calls, before, 'an open breaker keeps calls away from the endpoint');
  app.failUnary = undefined;
  await sleep(1100);
  t.is((await call()).code, 0, 'half-open: the probe succeeds and closes the breaker');
  t.is((await call()).code, 0);
});

test('failover: a route sends calls to its failover cluster while the primary has no healthy endpoint', async (t) => {
  const dead = await freePort();
  const backup = await startEchoServer(0, 'backup');
  const sc = await startSidecar({
    config: {
      clusters: [
        { name: 'primary', endpoints: [{ address: '127.0.0.1', port: dead }], healthCheck: { intervalMs: 200, timeoutMs: 100, unhealthyThreshold: 1 } },
        { name: 'backup', endpoints: [{ address: '127.0.0.1', port: backup.port }] },
      ],
      routes: [{ match: { service: 'echo' }, cluster: 'primary', failover: 'backup' }],
    },
  });
  const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
  t.teardown(async () => { client.close(); await sc.proc.stop(); backup.server.forceShutdown(); });
  await eventually('primary marked unhealthy', async () => {
    const clusters = await getJson<{ name: string; endpoints: { healthy: boolean }[] }[]>(sc.admin, '/clusters');
    return clusters.find((c) => c.name === 'primary')?.endpoints[0]?.healthy === false;
  }, 3000);
  for (let i = 0; i < 5; i++) t.is(String((await unary(client, Buffer.from('x'))).headers.get('x-served-by')[0]), 'backup');
});

for (const retries of [false, true]) {
  test(`kill -9 of one of three replicas under load ${retries ? 'with retries: no call fails unless its answer had already begun' : 'without retries: only calls in flight on it fail'}`, async (t) => {
    const apps = await Promise.all(['a', 'b', 'c'].map((n) => startEchoServer(0, n)));
    const sidecars = await Promise.all(apps.map((a) => startSidecar({ appPort: a.port, service: 'echo' })));
    const sc = await startSidecar({
      config: {
        clusters: [{
          name: 'echo',
          endpoints: sidecars.map((s) => ({ address: '127.0.0.1', port: s.inbound })),
          outlierDetection: { consecutiveFailures: 1, baseEjectionMs: 30_000, maxEjectionPercent: 34 },
        }],
        routes: retries
          ? [{ match: { service: 'echo' }, cluster: 'echo', retries: { maxAttempts: 3, retryOn: ['UNAVAILABLE'], backoffBaseMs: 5, backoffMaxMs: 50, retryNonIdempotent: true } }]
          : [],
      },
    });
    const client = echoClient(`127.0.0.1:${sc.outbound}`, 'echo');
    t.teardown(async () => {
      client.close();
      await Promise.all([sc, ...sidecars].map((s) => s.proc.stop()));
      for (const a of apps) a.server.forceShutdown();
    });
    const workers = 16;
    const traffic = load(client, workers);
    await sleep(1500);
    await sidecars[1]!.proc.stop('SIGKILL');
    await sleep(2000);
    await traffic.stop();
    const failed = traffic.results.filter((r) => r.code !== 0);
    const seconds = (traffic.results[traffic.results.length - 1]!.at - traffic.results[0]!.at) / 1000;
    t.log(`${retries ? 'with' : 'without'} retries: ${traffic.results.length} calls (${(traffic.results.length / seconds).toFixed(0)}/s), ${failed.length} failed (${failed.map((f) => `${grpc.status[f.code]}: ${f.details}`).join('; ') || 'none'}); at most ${workers} were in flight`);
    if (retries) {
      // A call whose response was already passing to the caller (held 20 ms for its status, then
      // committed) cannot be retried, as in Envoy; on a quiet machine that is none of them
      // (0 of ~2,300), on a loaded CI a handful. Every other failure is a bug.
      const committed = failed.filter((f) => /lost during the response/.test(f.details ?? ""));
      t.deepEqual(failed.filter((f) => !committed.includes(f)), [], 'only calls whose answer had begun may fail');
      t.true(committed.length <= workers, `at most the calls in flight (${committed.length})`);
    }
    else {
      t.true(failed.length <= workers, 'no more failures than calls in flight when the replica died');
      t.true(failed.every((f) => f.code === grpc.status.UNAVAILABLE));
    }
  });
}
