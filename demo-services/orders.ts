/**
 * orders: places orders by calling catalog and inventory. Those calls go to the LOCAL SIDECAR
 * (--upstream) with :authority set to the callee's service name, which is how an app addresses a
 * service through the mesh; the sidecar routes on that authority.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../lib/log.js';
import { CatalogServiceClient, type GetProductResponse } from '../protos/gen/remora/demo/v1/catalog.js';
import { InventoryServiceClient, type ReserveResponse } from '../protos/gen/remora/demo/v1/inventory.js';
import { OrderStatus, type Order, type OrdersServiceServer, type TrackOrdersRequest } from '../protos/gen/remora/demo/v1/orders.js';
import { statusName } from './status.js';

export interface OrdersUpstream {
  /** host:port of the local sidecar's outbound listener. */
  readonly address: string;
  readonly catalogAuthority: string;
  readonly inventoryAuthority: string;
}

export interface OrdersDownstream {
  readonly catalog: CatalogServiceClient;
  readonly inventory: InventoryServiceClient;
  close(): void;
}

export function connectDownstream(up: OrdersUpstream): OrdersDownstream {
  const creds = grpc.credentials.createInsecure();
  // One channel per callee: the authority is a channel option, and the sidecar routes on it.
  const catalog = new CatalogServiceClient(up.address, creds, { 'grpc.default_authority': up.catalogAuthority });
  const inventory = new InventoryServiceClient(up.address, creds, { 'grpc.default_authority': up.inventoryAuthority });
  return {
    catalog,
    inventory,
    close() {
      catalog.close();
      inventory.close();
    },
  };
}

/** Tracing headers an app must copy from its inbound call to its outbound calls for traces to join up. */
const PROPAGATED_HEADERS = [
  'x-request-id',
  'traceparent',
  'tracestate',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
];

function propagatedMetadata(inbound: grpc.Metadata): grpc.Metadata {
  const out = new grpc.Metadata();
  for (const key of PROPAGATED_HEADERS) {
    for (const value of inbound.get(key)) out.add(key, value);
  }
  return out;
}

/** Orders kept per instance; the oldest go first so a long demo run stays bounded in memory. */
const MAX_ORDERS = 10_000;
/** Fake fulfilment timeline, so TrackOrders has changing answers to give. */
const SHIPPED_AFTER_MS = 5_000;
const DELIVERED_AFTER_MS = 15_000;

function currentStatus(order: Order, now: number): OrderStatus {
  const age = now - order.createdAtUnixMs;
  if (age >= DELIVERED_AFTER_MS) return OrderStatus.ORDER_STATUS_DELIVERED;
  if (age >= SHIPPED_AFTER_MS) return OrderStatus.ORDER_STATUS_SHIPPED;
  return OrderStatus.ORDER_STATUS_PLACED;
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number';
}

export function createOrders(instance: string, downstream: OrdersDownstream, log: Logger): OrdersServiceServer {
  const orders = new Map<string, Order>();
  let placed = 0;

  const remember = (order: Order): void => {
    orders.set(order.id, order);
    if (orders.size > MAX_ORDERS) orders.delete(orders.keys().next().value!);
  };

  return {
    placeOrder(call, callback) {
      const { productId, quantity } = call.request;
      if (quantity <= 0) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: `quantity must be > 0, got ${quantity}` });
        return;
      }
      const orderId = `${instance}/o-${++placed}`;
      const metadata = propagatedMetadata(call.metadata);
      // parent + flags: downstream calls inherit our caller's deadline and die with its cancellation.
      const options: Partial<grpc.CallOptions> = {
        parent: call,
        propagate_flags: grpc.propagate.DEADLINE | grpc.propagate.CANCELLATION,
      };
      const downstreamFailed = (callee: string) => (err: unknown): never => {
        if (!isServiceError(err)) throw err;
        log.warn({ callee, code: statusName(err.code), details: err.details, orderId }, 'downstream call failed');
        // Pass the callee's status through so the mesh sees the real cause (and may retry on it).
        throw Object.assign(new Error(`${callee}: ${err.details}`), {
          code: err.code,
          details: `${callee}: ${err.details}`,
        });
      };

      const getProduct = new Promise<GetProductResponse>((resolve, reject) => {
        downstream.catalog.getProduct({ id: productId }, metadata, options, (err, res) => (err ? reject(err) : resolve(res)));
      }).catch(downstreamFailed('catalog.GetProduct'));

      getProduct
        .then(async (productRes) => {
          const product = productRes.product!;
          const reservation = await new Promise<ReserveResponse>((resolve, reject) => {
            downstream.inventory.reserve({ productId, quantity, orderId }, metadata, options, (err, res) =>
              err ? reject(err) : resolve(res),
            );
          }).catch(downstreamFailed('inventory.Reserve'));
          const order: Order = {
            id: orderId,
            productId,
            productName: product.name,
            quantity,
            totalCents: product.priceCents * quantity,
            status: OrderStatus.ORDER_STATUS_PLACED,
            reservationId: reservation.reservationId,
            createdAtUnixMs: Date.now(),
          };
          remember(order);
          callback(null, {
            order,
            instance,
            catalogInstance: productRes.instance,
            inventoryInstance: reservation.instance,
          });
        })
        .catch((err: unknown) => {
          if (isServiceError(err)) callback({ code: err.code, details: err.details });
          else callback({ code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) });
        });
    },

    getOrder(call, callback) {
      const order = orders.get(call.request.id);
      if (!order) {
        callback({ code: grpc.status.NOT_FOUND, details: `no order ${JSON.stringify(call.request.id)} on ${instance}` });
        return;
      }
      callback(null, { order: { ...order, status: currentStatus(order, Date.now()) }, instance });
    },

    trackOrders(call) {
      call.on('data', (req: TrackOrdersRequest) => {
        const order = orders.get(req.orderId);
        const status = order ? currentStatus(order, Date.now()) : OrderStatus.ORDER_STATUS_UNSPECIFIED;
        call.write({ orderId: req.orderId, status, instance });
      });
      call.on('end', () => call.end());
      call.on('error', () => {
        /* the caller went away; nothing to answer */
      });
    },
  };
}
