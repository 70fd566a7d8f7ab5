/**
 * What the demo client sends. Each scenario issues one call per tick, chosen among the service's
 * methods (every gRPC call kind appears), and reports the final status code; it never throws.
 */
import * as grpc from '@grpc/grpc-js';
import { CatalogServiceClient } from '../protos/gen/remora/demo/v1/catalog.js';
import { InventoryServiceClient } from '../protos/gen/remora/demo/v1/inventory.js';
import { OrdersServiceClient } from '../protos/gen/remora/demo/v1/orders.js';
import { PRODUCTS } from './products.js';
import type { ServiceName } from './services.js';

export const SCENARIOS = ['orders', 'catalog', 'inventory', 'mixed'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface CallOutcome {
  readonly method: string;
  readonly code: grpc.status;
}

export interface Scenario {
  /** Starts one call; resolves with its status once it is over. */
  call(deadlineMs: number): Promise<CallOutcome>;
  close(): void;
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}
const randomProduct = (): string => pick(PRODUCTS).id;

function unaryOutcome(method: string, start: (done: (err: grpc.ServiceError | null) => void) => void): Promise<CallOutcome> {
  return new Promise((resolve) => start((err) => resolve({ method, code: err ? err.code : grpc.status.OK })));
}

/** Streams report through 'status'; an 'error' listener is still required or EventEmitter throws. */
function streamOutcome(method: string, call: grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>): Promise<CallOutcome> {
  return new Promise((resolve) => {
    call.on('error', () => {});
    call.on('data', () => {});
    call.on('status', (s: grpc.StatusObject) => resolve({ method, code: s.code }));
  });
}

function weighted<T>(choices: ReadonlyArray<readonly [number, T]>): T {
  const total = choices.reduce((sum, [w]) => sum + w, 0);
  let r = Math.random() * total;
  for (const [w, v] of choices) {
    r -= w;
    if (r < 0) return v;
  }
  return choices[choices.length - 1]![1];
}

function deadline(ms: number): Date {
  return new Date(Date.now() + ms);
}

function clientOptions(authority: string): grpc.ChannelOptions {
  return authority ? { 'grpc.default_authority': authority } : {};
}

const creds = () => grpc.credentials.createInsecure();

function catalogScenario(target: string, authority: string): Scenario {
  const client = new CatalogServiceClient(target, creds(), clientOptions(authority));
  return {
    call(ms) {
      const md = new grpc.Metadata();
      return weighted<() => Promise<CallOutcome>>([
        [8, () => unaryOutcome('GetProduct', (done) => client.getProduct({ id: randomProduct() }, md, { deadline: deadline(ms) }, done))],
        [2, () => streamOutcome('ListProducts', client.listProducts({ category: '', nameContains: '', pageSize: 5 }, md, { deadline: deadline(ms) }))],
      ])();
    },
    close: () => client.close(),
  };
}

function inventoryScenario(target: string, authority: string): Scenario {
  const client = new InventoryServiceClient(target, creds(), clientOptions(authority));
  return {
    call(ms) {
      const md = new grpc.Metadata();
      return weighted<() => Promise<CallOutcome>>([
        [6, () => unaryOutcome('GetStock', (done) => client.getStock({ productId: randomProduct() }, md, { deadline: deadline(ms) }, done))],
        [
          3,
          () =>
            unaryOutcome('Reserve', (done) =>
              client.reserve({ productId: randomProduct(), quantity: 1, orderId: '' }, md, { deadline: deadline(ms) }, done),
            ),
        ],
        [
          1,
          () =>
            unaryOutcome('RestockBatch', (done) => {
              const stream = client.restockBatch(md, { deadline: deadline(ms) }, done);
              for (let i = 0; i < 3; i++) stream.write({ productId: randomProduct(), quantity: 5 });
              stream.end();
            }),
        ],
      ])();
    },
    close: () => client.close(),
  };
}

/** Order ids this client placed recently, for GetOrder and TrackOrders to ask about. */
const KNOWN_ORDERS = 100;

function ordersScenario(target: string, authority: string): Scenario {
  const client = new OrdersServiceClient(target, creds(), clientOptions(authority));
  const known: string[] = [];
  const placeOrder = (ms: number) =>
    new Promise<CallOutcome>((resolve) => {
      const req = { productId: randomProduct(), quantity: 1 + Math.floor(Math.random() * 3), customerId: 'demo-client' };
      client.placeOrder(req, new grpc.Metadata(), { deadline: deadline(ms) }, (err, res) => {
        if (!err && res.order) {
          known.push(res.order.id);
          if (known.length > KNOWN_ORDERS) known.shift();
        }
        resolve({ method: 'PlaceOrder', code: err ? err.code : grpc.status.OK });
      });
    });
  return {
    call(ms) {
      // Until an order exists there is nothing to look up, so place one.
      if (known.length === 0) return placeOrder(ms);
      return weighted<() => Promise<CallOutcome>>([
        [7, () => placeOrder(ms)],
        [2, () => unaryOutcome('GetOrder', (done) => client.getOrder({ id: pick(known) }, new grpc.Metadata(), { deadline: deadline(ms) }, done))],
        [
          1,
          () => {
            const stream = client.trackOrders(new grpc.Metadata(), { deadline: deadline(ms) });
            const outcome = streamOutcome('TrackOrders', stream);
            for (let i = 0; i < 3; i++) stream.write({ orderId: pick(known) });
            stream.end();
            return outcome;
          },
        ],
      ])();
    },
    close: () => client.close(),
  };
}

const SINGLE: Readonly<Record<ServiceName, (target: string, authority: string) => Scenario>> = {
  catalog: catalogScenario,
  inventory: inventoryScenario,
  orders: ordersScenario,
};

/**
 * authority "" means the scenario's service name, which is what a sidecar routes on; `mixed` sends
 * each service's calls with that service's own name.
 */
export function createScenario(name: ScenarioName, target: string, authority: string): Scenario {
  if (name !== 'mixed') return SINGLE[name](target, authority || name);
  const parts = (['orders', 'catalog', 'inventory'] as const).map((n) => SINGLE[n](target, n));
  let turn = 0;
  return {
    call: (ms) => parts[turn++ % parts.length]!.call(ms),
    close: () => parts.forEach((p) => p.close()),
  };
}
