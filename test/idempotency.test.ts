/**
 * Method idempotency levels, learnt through server reflection from real `remora demo-service`
 * processes over a plain node:http2 session (as the sidecar holds one to each endpoint), from
 * servers without reflection or that never answer, and from a descriptor set built with buf.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { ReflectionV1AlphaImplementation } from '@grpc/reflection/build/src/implementations/reflection-v1alpha.js';
import { loadDemoPackage } from '../demo-services/protos.js';
import { repoRoot, startRemora, type Proc } from '../lib/processes.js';
import { IdempotencyCatalog, type IdempotencyLevel } from '../sidecar/idempotency/catalog.js';
import { levelsFromDescriptorSet, loadDescriptorSet } from '../sidecar/idempotency/descriptor-set.js';
import { fetchDescriptorsByReflection } from '../sidecar/idempotency/reflection-client.js';
import { startEchoServer } from './fixtures/echo-service.js';
import { startRawUpstream } from './fixtures/raw-h2.js';
import { connect as h2connect } from '../sidecar/h2/connect.js';
import type { H2Session } from '../sidecar/h2/session.js';
import { UPSTREAM_SESSION_OPTIONS } from '../sidecar/upstream/endpoint.js';

const run = promisify(execFile);
const PKG = 'remora.demo.v1';

/** What the demo protos say, method by method. */
const DEMO_LEVELS: ReadonlyMap<string, IdempotencyLevel> = new Map([
  [`/${PKG}.CatalogService/GetProduct`, 'NO_SIDE_EFFECTS'],
  [`/${PKG}.CatalogService/ListProducts`, 'NO_SIDE_EFFECTS'],
  [`/${PKG}.InventoryService/GetStock`, 'NO_SIDE_EFFECTS'],
  [`/${PKG}.InventoryService/Reserve`, 'UNKNOWN'],
  [`/${PKG}.InventoryService/RestockBatch`, 'UNKNOWN'],
  [`/${PKG}.OrdersService/PlaceOrder`, 'UNKNOWN'],
  [`/${PKG}.OrdersService/GetOrder`, 'NO_SIDE_EFFECTS'],
  [`/${PKG}.OrdersService/TrackOrders`, 'UNKNOWN'],
]);

function demoSubset(levels: ReadonlyMap<string, IdempotencyLevel>): Map<string, IdempotencyLevel> {
  return new Map([...levels].filter(([p]) => p.startsWith(`/${PKG}.`)).sort(([a], [b]) => a.localeCompare(b)));
}

const sortedDemo = demoSubset(DEMO_LEVELS);

function connect(t: ExecutionContext, port: number): H2Session {
  const session = h2connect('127.0.0.1', Number(port), UPSTREAM_SESSION_OPTIONS);
  session.on('error', () => {});
  t.teardown(() => { session.destroy(); });
  return session;
}

async function startDemo(t: ExecutionContext, names: string): Promise<Proc> {
  const proc = await startRemora(['demo-service', '--name', names, '--port', '0'], { portsFile: true });
  t.teardown(() => proc.stop('SIGKILL'));
  return proc;
}

async function startGrpcServer(t: ExecutionContext, setup: (server: grpc.Server) => void): Promise<number> {
  const server = new grpc.Server();
  setup(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  t.teardown(() => server.forceShutdown());
  return port;
}

test('reflection v1 from the demo services: read methods NO_SIDE_EFFECTS, the rest UNKNOWN', async (t) => {
  const proc = await startDemo(t, 'catalog,inventory,orders');
  const session = connect(t, proc.ports.grpc!);
  const result = await fetchDescriptorsByReflection(session, 'catalog', 5000);

  t.is(result.reason, undefined);
  t.is(result.api, 'v1');
  t.deepEqual([...result.services].sort(), [
    'grpc.health.v1.Health',
    `${PKG}.CatalogService`,
    `${PKG}.InventoryService`,
    `${PKG}.OrdersService`,
  ]);
  t.deepEqual(demoSubset(result.levels), sortedDemo);
  t.is(result.levels.get('/grpc.health.v1.Health/Check'), 'UNKNOWN', 'health methods are listed, without a level');
  t.true(result.files.some((f) => f.service.some((s) => s.name === 'CatalogService')));

  const catalog = new IdempotencyCatalog();
  catalog.add(result.levels, `127.0.0.1:${proc.ports.grpc}`);
  t.is(catalog.levelOf(`/${PKG}.CatalogService/GetProduct`), 'NO_SIDE_EFFECTS');
  t.is(catalog.levelOf(`/${PKG}.CatalogService/ListProducts`), 'NO_SIDE_EFFECTS');
  t.is(catalog.levelOf(`/${PKG}.InventoryService/Reserve`), 'UNKNOWN');
  t.is(catalog.levelOf(`/${PKG}.CatalogService/Nope`), 'UNKNOWN');

  // The session is the sidecar's: it must still work, and a second round gives the same answer.
  t.false(session.closed || session.destroyed);
  const again = await fetchDescriptorsByReflection(session, 'catalog', 5000);
  t.deepEqual(demoSubset(again.levels), sortedDemo);
});

test('one service per process: only its methods', async (t) => {
  const proc = await startDemo(t, 'inventory');
  const result = await fetchDescriptorsByReflection(connect(t, proc.ports.grpc!), 'inventory', 5000);
  t.is(result.reason, undefined);
  t.deepEqual([...result.services].sort(), ['grpc.health.v1.Health', `${PKG}.InventoryService`]);
  t.is(result.levels.get(`/${PKG}.InventoryService/GetStock`), 'NO_SIDE_EFFECTS');
  t.is(result.levels.get(`/${PKG}.InventoryService/Reserve`), 'UNKNOWN');
  // proto-loader's reflection hands back the whole package as one file; the levels still cover
  // only what this endpoint lists.
  t.false(result.services.includes(`${PKG}.CatalogService`));
  t.false([...result.levels.keys()].some((p) => p.startsWith(`/${PKG}.CatalogService/`)));
});

test('falls back to v1alpha when v1 is UNIMPLEMENTED', async (t) => {
  const port = await startGrpcServer(t, (server) => {
    new ReflectionV1AlphaImplementation(loadDemoPackage(), { services: [`${PKG}.CatalogService`] }).addToServer(server);
  });
  const result = await fetchDescriptorsByReflection(connect(t, port), 'catalog', 5000);
  t.is(result.reason, undefined);
  t.is(result.api, 'v1alpha');
  t.deepEqual(result.services, [`${PKG}.CatalogService`]);
  t.is(result.levels.get(`/${PKG}.CatalogService/GetProduct`), 'NO_SIDE_EFFECTS');
});

test('a server without reflection: empty result and a reason, quickly', async (t) => {
  const echo = await startEchoServer();
  t.teardown(() => echo.server.forceShutdown());
  const session = connect(t, echo.port);
  const started = Date.now();
  const result = await fetchDescriptorsByReflection(session, 'echo', 5000);
  const took = Date.now() - started;
  t.is(result.levels.size, 0);
  t.deepEqual(result.services, []);
  t.is(result.api, undefined);
  t.regex(result.reason ?? '', /does not serve reflection.*UNIMPLEMENTED/);
  t.true(took < 1000, `took ${took} ms`);
  t.false(session.closed || session.destroyed, 'the session is left as it was');
});

test('a server that never answers: empty result after the timeout, stream cancelled', async (t) => {
  let serverStreamClosed = false;
  const { server, port } = await startRawUpstream((stream) => {
    stream.on('close', () => { serverStreamClosed = true; });
  });
  t.teardown(() => { server.close(); });
  const started = Date.now();
  const result = await fetchDescriptorsByReflection(connect(t, port), 'silent', 300);
  const took = Date.now() - started;
  t.is(result.levels.size, 0);
  t.regex(result.reason ?? '', /no answer within 300 ms/);
  t.true(took >= 250 && took < 2000, `took ${took} ms`);
  // The RST_STREAM crosses a socket and the server's event loop: wait for it, bounded.
  for (let waited = 0; !serverStreamClosed && waited < 5_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  t.true(serverStreamClosed, 'our side reset the stream');
});

test('a server that answers garbage: a reason, no throw', async (t) => {
  const { server, port } = await startRawUpstream((stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(Buffer.from([0, 0, 0, 0, 3, 0xff, 0xff, 0xff]));
  });
  t.teardown(() => { server.close(); });
  const result = await fetchDescriptorsByReflection(connect(t, port), 'junk', 2000);
  t.is(result.levels.size, 0);
  t.regex(result.reason ?? '', /reflection v1: /);
});

test('a closed session: a reason, no throw', async (t) => {
  const proc = await startDemo(t, 'catalog');
  const session = connect(t, proc.ports.grpc!);
  session.destroy();
  const result = await fetchDescriptorsByReflection(session, 'catalog', 1000);
  t.is(result.levels.size, 0);
  t.regex(result.reason ?? '', /cannot open a stream/);
});

test('a descriptor set from `buf build` gives the same levels, without a server', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'remora-idem-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'protos.binpb');
  await run(path.join(repoRoot, 'node_modules/.bin/buf'), ['build', 'protos', '-o', out], { cwd: repoRoot });

  const result = await loadDescriptorSet(out);
  t.is(result.reason, undefined);
  t.deepEqual(demoSubset(result.levels), sortedDemo);
  t.true(result.services.includes('remora.mesh.v1.DiscoveryService'));

  const catalog = new IdempotencyCatalog();
  catalog.add(result.levels, out);
  t.is(catalog.levelOf(`/${PKG}.OrdersService/GetOrder`), 'NO_SIDE_EFFECTS');
  t.is(catalog.levelOf(`/${PKG}.OrdersService/PlaceOrder`), 'UNKNOWN');
});

test('descriptor sets that cannot be used: a reason, no throw', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'remora-idem-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const missing = await loadDescriptorSet(path.join(dir, 'missing.binpb'));
  t.is(missing.levels.size, 0);
  t.regex(missing.reason ?? '', /cannot read .*missing\.binpb/);

  const junk = path.join(dir, 'junk.binpb');
  await writeFile(junk, Buffer.from([0x0a, 0xff, 0xff]));
  const bad = await loadDescriptorSet(junk);
  t.is(bad.levels.size, 0);
  t.regex(bad.reason ?? '', /junk\.binpb: not a FileDescriptorSet/);

  t.regex(levelsFromDescriptorSet(new Uint8Array()).reason ?? '', /no services/);
});

test('catalog: within a source the newest wins; across sources the least safe wins', (t) => {
  const get = '/pkg.S/Get';
  const put = '/pkg.S/Put';
  const catalog = new IdempotencyCatalog();
  t.is(catalog.levelOf(get), 'UNKNOWN');
  catalog.add(new Map([[get, 'NO_SIDE_EFFECTS'], [put, 'IDEMPOTENT']]), 'v1-pod');
  t.is(catalog.levelOf(get), 'NO_SIDE_EFFECTS');
  t.is(catalog.levelOf(put), 'IDEMPOTENT');
  t.is(catalog.size, 2);

  // A rolling deploy: the new version no longer promises Put is idempotent.
  catalog.add(new Map([[get, 'NO_SIDE_EFFECTS'], [put, 'UNKNOWN']]), 'v2-pod');
  t.is(catalog.levelOf(put), 'UNKNOWN');
  t.is(catalog.levelOf(get), 'NO_SIDE_EFFECTS');

  // The old pod goes away: the new one's word stands. Then the new one is fixed and re-learnt.
  t.true(catalog.forget('v1-pod'));
  t.is(catalog.levelOf(put), 'UNKNOWN');
  catalog.add(new Map([[put, 'IDEMPOTENT']]), 'v2-pod');
  t.is(catalog.levelOf(put), 'IDEMPOTENT');
  t.is(catalog.levelOf(get), 'NO_SIDE_EFFECTS', 'a partial report keeps the rest of the source');

  // A source that does not know a method does not lower it.
  catalog.add(new Map([['/other.S/X', 'UNKNOWN']]));
  t.is(catalog.levelOf(get), 'NO_SIDE_EFFECTS');
  t.true(catalog.forget('v2-pod'));
  t.is(catalog.levelOf(get), 'UNKNOWN');
  t.false(catalog.forget('v2-pod'));
  t.deepEqual([...catalog.entries()], [['/other.S/X', 'UNKNOWN']]);
});
