/**
 * The control plane end to end, all real: etcd, control-plane replicas, sidecars, gRPC servers and
 * clients. Sidecars register through the control plane, get config pushed, ACK and NACK, and keep
 * serving while the control plane or etcd is down.
 */
import test from 'ava';
import { startEtcd } from '../lib/etcd-process.js';
import { startEchoServer, echoClient, unary, grpc } from './fixtures/echo-service.js';
import { startSidecar, startControlPlane, getJson, eventually, type SidecarHandle } from './harness/sidecars.js';
import { startRemora } from '../lib/processes.js';
import type { MeshConfig } from '../sidecar/config/model.js';

interface InstanceRow { service: string; instanceId: string; address: string; port: number; controlPlane: string }

async function remora(args: string[], stdin?: string): Promise<{ code: number | string; out: string }> {
  const proc = await startRemora(args, stdin === undefined ? {} : { stdin });
  const code = await proc.exited;
  return { code, out: proc.output() };
}

async function instances(etcd: string): Promise<InstanceRow[]> {
  const { code, out } = await remora(['get', 'instances', '-A', '-o', 'json', '--etcd-endpoints', etcd]);
  if (code !== 0) throw new Error(`remora get instances failed: ${out}`);
  const parsed = JSON.parse(out) as InstanceRow[] | { items: InstanceRow[] };
  return Array.isArray(parsed) ? parsed : parsed.items;
}

const configOf = (sc: SidecarHandle) => getJson<MeshConfig>(sc.admin, '/config_dump');

async function servedBy(client: grpc.Client): Promise<string> {
  const { headers } = await unary(client, Buffer.from('x'));
  return String(headers.get('x-served-by')[0] ?? '');
}

test('register, push, call through the mesh, deregister on SIGTERM and after kill -9', async (t) => {
  const etcd = await startEtcd();
  const cp = await startControlPlane([etcd.endpoint], ['--deregister-grace-ms', '5000']);
  const app = await startEchoServer(0, 'a');
  const app2 = await startEchoServer(0, 'b');
  const server = await startSidecar({ controlPlanes: [cp.address], service: 'echo', appPort: app.port, extraArgs: ['--instance-id', 'echo-a', '--deregister-delay-ms', '200'] });
  const server2 = await startSidecar({ controlPlanes: [cp.address], service: 'echo', appPort: app2.port, extraArgs: ['--instance-id', 'echo-b'] });
  const client = await startSidecar({ controlPlanes: [cp.address], service: 'client', extraArgs: ['--register=false'] });
  const grpcClient = echoClient(`127.0.0.1:${client.outbound}`, 'echo');
  t.teardown(async () => {
    grpcClient.close();
    await Promise.all([client, server, server2].map((s) => s.proc.stop()));
    await cp.proc.stop();
    app.server.forceShutdown();
    app2.server.forceShutdown();
    await etcd.stop();
  });

  const rows = await eventually('both echo instances registered', async () => {
    const r = await instances(etcd.endpoint);
    return r.filter((i) => i.service === 'echo').length === 2 && r;
  });
  t.deepEqual(rows.filter((i) => i.service === 'echo').map((i) => i.instanceId).sort(), ['echo-a', 'echo-b']);
  t.false(rows.some((i) => i.service === 'client'), '--register=false keeps a sidecar out of discovery');

  await eventually('client sidecar has both echo endpoints', async () => (await configOf(client)).clusters.find((c) => c.name === 'echo')?.endpoints.length === 2);
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) seen.add(await servedBy(grpcClient));
  t.deepEqual([...seen].sort(), ['a', 'b'], 'calls reach both instances through the pair of sidecars');
  t.is((await getJson<{ ready: boolean }>(client.stats, '/healthz/ready')).ready, true);

  // Clean stop: deregistered at once, well before the 5 s grace period a broken stream gets.
  const stopped = Date.now();
  const exited = server.proc.stop('SIGTERM');
  await eventually('echo-a deregistered', async () => !(await instances(etcd.endpoint)).some((i) => i.instanceId === 'echo-a'), 4000);
  t.true(Date.now() - stopped < 4000, `deregistered ${Date.now() - stopped} ms after SIGTERM`);
  t.is(await exited, 0);
  for (let i = 0; i < 10; i++) t.is(await servedBy(grpcClient), 'b');

  // kill -9: the stream breaks without a goodbye; the control plane drops it after the grace period.
  await server2.proc.stop('SIGKILL');
  await eventually('echo-b removed after kill -9', async () => !(await instances(etcd.endpoint)).some((i) => i.instanceId === 'echo-b'), 15_000);
});

test('apply → push → traffic follows the route; a config the sidecar cannot apply is NACKed and the last good one kept', async (t) => {
  const etcd = await startEtcd();
  const cp = await startControlPlane([etcd.endpoint]);
  const v1 = await startEchoServer(0, 'v1');
  const v2 = await startEchoServer(0, 'v2');
  const s1 = await startSidecar({ controlPlanes: [cp.address], service: 'echo', appPort: v1.port, extraArgs: ['--labels', 'version=v1'] });
  const s2 = await startSidecar({ controlPlanes: [cp.address], service: 'echo', appPort: v2.port, extraArgs: ['--labels', 'version=v2'] });
  const client = await startSidecar({ controlPlanes: [cp.address], service: 'client', extraArgs: ['--register=false', '--instance-id', 'client-1'] });
  const grpcClient = echoClient(`127.0.0.1:${client.outbound}`, 'echo');
  t.teardown(async () => {
    grpcClient.close();
    await Promise.all([client, s1, s2].map((s) => s.proc.stop()));
    await cp.proc.stop();
    v1.server.forceShutdown();
    v2.server.forceShutdown();
    await etcd.stop();
  });
  await eventually('two echo endpoints pushed', async () => (await configOf(client)).clusters.find((c) => c.name === 'echo')?.endpoints.length === 2);

  const canary = `
kind: Cluster
metadata: { name: echo-v2 }
spec: { service: echo, subset: { version: v2 } }
---
kind: Route
metadata: { name: echo-to-v2 }
spec: { match: { service: echo }, cluster: echo-v2 }
`;
  const applied = await remora(['apply', '-f', '-', '--etcd-endpoints', etcd.endpoint], canary);
  t.is(applied.code, 0, applied.out);
  const started = Date.now();
  await eventually('route applied by the client sidecar', async () => (await configOf(client)).routes.some((r) => r.cluster === 'echo-v2'), 5000);
  t.log(`apply → applied by the sidecar in ${Date.now() - started} ms (including the CLI process exit)`);
  for (let i = 0; i < 10; i++) t.is(await servedBy(grpcClient), 'v2');
  const good = (await configOf(client)).version;

  // The control plane accepts a route to a cluster that does not exist (yet); the sidecar cannot apply it.
  const dangling = `
kind: Route
metadata: { name: echo-to-nowhere }
spec: { match: { service: other }, cluster: nowhere }
`;
  t.is((await remora(['apply', '-f', '-', '--etcd-endpoints', etcd.endpoint], dangling)).code, 0);
  const status = await eventually('the NACK shows in remora status', async () => {
    const { out } = await remora(['status', '-o', 'json', '--etcd-endpoints', etcd.endpoint]);
    const rows = JSON.parse(out) as { instanceId: string; lastNack: { errors: string[] } | null }[] | { items: never[] };
    const list = Array.isArray(rows) ? rows : rows.items;
    return list.find((r) => r.instanceId === 'client-1' && r.lastNack);
  }, 8000);
  t.regex(status.lastNack!.errors.join('\n'), /no cluster named "nowhere"/);
  t.is((await configOf(client)).version, good, 'the sidecar kept its last good config');
  for (let i = 0; i < 5; i++) t.is(await servedBy(grpcClient), 'v2', 'and keeps routing with it');

  t.is((await remora(['delete', 'route', 'echo-to-nowhere', '--etcd-endpoints', etcd.endpoint])).code, 0);
  t.is((await remora(['delete', 'route', 'echo-to-v2', '--etcd-endpoints', etcd.endpoint])).code, 0);
  await eventually('route removed', async () => (await configOf(client)).routes.length === 0, 5000);
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) seen.add(await servedBy(grpcClient));
  t.deepEqual([...seen].sort(), ['v1', 'v2']);
});

async function loadWhile(client: grpc.Client, during: () => Promise<void>): Promise<{ ok: number; failed: Map<string, number> }> {
  let running = true;
  let ok = 0;
  const failed = new Map<string, number>();
  const worker = async () => {
    while (running) {
      try {
        await unary(client, Buffer.from('x'), undefined, { deadline: Date.now() + 2000 });
        ok++;
      } catch (err) {
        const e = err as grpc.ServiceError;
        const k = `${grpc.status[e.code]}: ${e.details}`;
        failed.set(k, (failed.get(k) ?? 0) + 1);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  try {
    await during();
  } finally {
    running = false;
    await Promise.all(workers);
  }
  return { ok, failed };
}

test('static stability: killing a control-plane replica and stopping etcd fail no calls; sidecars move to the other replica', async (t) => {
  const etcd = await startEtcd();
  const cpA = await startControlPlane([etcd.endpoint], ['--lease-ttl-s', '3'], 'cp-a');
  const cpB = await startControlPlane([etcd.endpoint], ['--lease-ttl-s', '3'], 'cp-b');
  const app = await startEchoServer(0, 'a');
  const cps = [cpA.address, cpB.address];
  const server = await startSidecar({ controlPlanes: cps, service: 'echo', appPort: app.port, extraArgs: ['--instance-id', 'echo-a'] });
  const client = await startSidecar({ controlPlanes: cps, service: 'client', extraArgs: ['--register=false'] });
  const grpcClient = echoClient(`127.0.0.1:${client.outbound}`, 'echo');
  t.teardown(async () => {
    grpcClient.close();
    await Promise.all([client, server].map((s) => s.proc.stop()));
    await Promise.all([cpA, cpB].map((c) => c.proc.stop()));
    app.server.forceShutdown();
    await etcd.stop();
  });
  await eventually('echo endpoint pushed', async () => (await configOf(client)).clusters.find((c) => c.name === 'echo')?.endpoints.length === 1);
  const connected = async () => {
    const a = await getJson<{ sidecars: unknown[] }>(cpA.http, '/debug/sidecars').catch(() => ({ sidecars: [] }));
    const b = await getJson<{ sidecars: unknown[] }>(cpB.http, '/debug/sidecars').catch(() => ({ sidecars: [] }));
    return { a: a.sidecars.length, b: b.sidecars.length };
  };
  await eventually('both sidecars connected', async () => { const c = await connected(); return c.a + c.b === 2; });
  const before = await connected();
  t.log('sidecars per replica before:', before);
  // Kill the replica holding the server sidecar's registration (sidecars pick a replica at random).
  const holder = (await instances(etcd.endpoint)).find((i) => i.instanceId === 'echo-a')!.controlPlane;
  const [victim, survivor] = holder === 'cp-a' ? [cpA, cpB] : [cpB, cpA];
  const survivorId = holder === 'cp-a' ? 'cp-b' : 'cp-a';

  const cpKill = await loadWhile(grpcClient, async () => {
    await victim.proc.stop('SIGKILL');
    await eventually(`both sidecars on ${survivorId}`, async () => (await getJson<{ sidecars: unknown[] }>(survivor.http, '/debug/sidecars')).sidecars.length === 2, 15_000);
    // The dead replica's lease (3 s) expires; the registration must survive because the survivor re-registered it.
    await new Promise((r) => setTimeout(r, 4000));
  });
  t.log(`control-plane kill: ${cpKill.ok} ok, failures: ${JSON.stringify([...cpKill.failed])}`);
  t.true(cpKill.ok > 100);
  t.is(cpKill.failed.size, 0);
  t.true((await instances(etcd.endpoint)).some((i) => i.instanceId === 'echo-a' && i.controlPlane === survivorId), `${survivorId} holds the registration now`);

  const etcdDown = await loadWhile(grpcClient, async () => {
    await etcd.restart({ downMs: 4000 });
    await new Promise((r) => setTimeout(r, 2000));
  });
  t.log(`etcd down 4 s: ${etcdDown.ok} ok, failures: ${JSON.stringify([...etcdDown.failed])}`);
  t.true(etcdDown.ok > 100);
  t.is(etcdDown.failed.size, 0);
  await eventually('registration back in etcd after the outage', async () => (await instances(etcd.endpoint)).some((i) => i.instanceId === 'echo-a'), 10_000);
});

test('a malformed discovery stream gets INVALID_ARGUMENT and does not disturb other sidecars', async (t) => {
  const etcd = await startEtcd();
  const cp = await startControlPlane([etcd.endpoint]);
  const client = await startSidecar({ controlPlanes: [cp.address], service: 'client', extraArgs: ['--register=false'] });
  t.teardown(async () => {
    await client.proc.stop();
    await cp.proc.stop();
    await etcd.stop();
  });
  await eventually('client configured', async () => (await getJson<{ ready: boolean }>(client.stats, '/healthz/ready')).ready);
  const { DiscoveryServiceClient } = await import('../protos/gen/remora/mesh/v1/discovery.js');
  const raw = new DiscoveryServiceClient(cp.address, grpc.credentials.createInsecure());
  const err = await new Promise<grpc.ServiceError>((resolve) => {
    const call = raw.streamConfig();
    call.on('error', resolve);
    call.on('data', () => {});
    call.write({ ack: { version: '1', nonce: 'x' } }); // no Hello first
  });
  raw.close();
  t.is(err.code, grpc.status.INVALID_ARGUMENT);
  t.regex(err.details, /first message .* must be a Hello/);
  const bad = new DiscoveryServiceClient(cp.address, grpc.credentials.createInsecure());
  const err2 = await new Promise<grpc.ServiceError>((resolve) => {
    const call = bad.streamConfig();
    call.on('error', resolve);
    call.on('data', () => {});
    call.write({ hello: { instance: { service: 'Bad Name!', namespace: '', instanceId: '', address: '', port: 0, zone: '', labels: {}, serviceAccount: '', health: 0 }, appliedVersion: '', sidecarVersion: '', register: true } });
  });
  bad.close();
  t.is(err2.code, grpc.status.INVALID_ARGUMENT);
  t.regex(err2.details, /hello\.instance\.service/);
  t.is((await getJson<{ ready: boolean }>(client.stats, '/healthz/ready')).ready, true);
  t.is((await getJson<{ sidecars: unknown[] }>(cp.http, '/debug/sidecars')).sidecars.length, 1);
});

test('the sidecar checks its own app: NOT_SERVING makes it unready and takes the instance out of every cluster', async (t) => {
  const etcd = await startEtcd();
  const cp = await startControlPlane([etcd.endpoint]);
  const app = await startEchoServer(0, 'a');
  const server = await startSidecar({ controlPlanes: [cp.address], service: 'echo', appPort: app.port, extraArgs: ['--instance-id', 'echo-a', '--app-health-interval-ms', '500'] });
  const client = await startSidecar({ controlPlanes: [cp.address], service: 'client', extraArgs: ['--register=false'] });
  t.teardown(async () => {
    await Promise.all([client, server].map((s) => s.proc.stop()));
    await cp.proc.stop();
    app.server.forceShutdown();
    await etcd.stop();
  });
  const endpoints = async () => (await configOf(client)).clusters.find((c) => c.name === 'echo')?.endpoints.length ?? 0;
  await eventually('the instance is pushed while its app serves', async () => (await endpoints()) === 1);
  t.true((await getJson<{ ready: boolean }>(server.stats, '/healthz/ready')).ready);
  app.setServing(false);
  const ready = await eventually('unready', async () => {
    const r = await fetch(`http://127.0.0.1:${server.stats}/healthz/ready`);
    return r.status === 503 && ((await r.json()) as { app: { serving: boolean; lastCheck: string } });
  }, 5000);
  t.false(ready.app.serving);
  t.regex(ready.app.lastCheck, /NOT_SERVING/);
  await eventually('the instance is out of the client\'s cluster', async () => (await endpoints()) === 0, 5000);
  t.true((await instances(etcd.endpoint)).some((i) => i.instanceId === 'echo-a' && (i as unknown as { health: string }).health === 'NOT_SERVING'));
  app.setServing(true);
  await eventually('back in', async () => (await endpoints()) === 1, 5000);
  t.true((await getJson<{ ready: boolean }>(server.stats, '/healthz/ready')).ready);
});
