/**
 * Method kinds (unary or streaming) next to idempotency levels: what decides whether a retrying
 * call may hold a response until its status. Read from a real `remora demo-service`'s reflection,
 * and merged across sources the same cautious way as levels.
 */
import test from 'ava';
import { startRemora } from '../lib/processes.js';
import { IdempotencyCatalog } from '../sidecar/idempotency/catalog.js';
import { fetchDescriptorsByReflection } from '../sidecar/idempotency/reflection-client.js';
import { connect as h2connect } from '../sidecar/h2/connect.js';
import { UPSTREAM_SESSION_OPTIONS } from '../sidecar/upstream/endpoint.js';

const PKG = 'remora.demo.v1';

test('reflection gives each method its kind from the descriptor', async (t) => {
  const proc = await startRemora(['demo-service', '--name', 'catalog,inventory,orders', '--port', '0'], { portsFile: true });
  t.teardown(() => proc.stop('SIGKILL'));
  const session = h2connect('127.0.0.1', Number(proc.ports.grpc), UPSTREAM_SESSION_OPTIONS);
  session.on('error', () => {});
  t.teardown(() => { session.destroy(); });
  const result = await fetchDescriptorsByReflection(session, 'catalog', 5000);
  t.is(result.reason, undefined);
  t.is(result.kinds.get(`/${PKG}.CatalogService/GetProduct`), 'UNARY');
  t.is(result.kinds.get(`/${PKG}.CatalogService/ListProducts`), 'SERVER_STREAMING');
  t.is(result.kinds.get(`/${PKG}.InventoryService/RestockBatch`), 'CLIENT_STREAMING');
  t.is(result.kinds.get(`/${PKG}.OrdersService/TrackOrders`), 'BIDI_STREAMING');
  t.deepEqual([...result.kinds.keys()].sort(), [...result.levels.keys()].sort(), 'a kind for every method with a level');

  const catalog = new IdempotencyCatalog();
  catalog.add(result.levels, 'a', result.kinds);
  t.is(catalog.kindOf(`/${PKG}.CatalogService/GetProduct`), 'UNARY');
  t.is(catalog.kindOf(`/${PKG}.CatalogService/Nope`), undefined);
});

test('catalog: a kind holds only while every source that knows the method agrees', (t) => {
  const get = '/pkg.S/Get';
  const catalog = new IdempotencyCatalog();
  catalog.add(new Map([[get, 'NO_SIDE_EFFECTS']]), 'old', new Map([[get, 'UNARY']]));
  t.is(catalog.kindOf(get), 'UNARY');
  // A rolling deploy turns Get into a stream: holding its answer until the status would stall it.
  catalog.add(new Map([[get, 'NO_SIDE_EFFECTS']]), 'new', new Map([[get, 'SERVER_STREAMING']]));
  t.is(catalog.kindOf(get), undefined);
  t.is(catalog.levelOf(get), 'NO_SIDE_EFFECTS', 'levels are merged on their own');
  t.deepEqual(catalog.sources().sort(), ['new', 'old']);
  t.true(catalog.forget('old'));
  t.is(catalog.kindOf(get), 'SERVER_STREAMING');
  catalog.add(new Map([[get, 'UNKNOWN']]), 'levels-only');
  t.is(catalog.kindOf(get), 'SERVER_STREAMING', 'a source without kinds says nothing about them');
  t.true(catalog.forget('new'));
  t.is(catalog.kindOf(get), undefined);
});
