/** inventory: in-memory stock per product (a read, a non-idempotent write, a client stream). */
import { status } from '@grpc/grpc-js';
import type { InventoryServiceServer, RestockBatchRequest } from '../protos/gen/remora/demo/v1/inventory.js';
import { PRODUCTS } from './products.js';

/** Bounds one message's quantity so sums stay well inside int32. */
const MAX_QUANTITY = 1_000_000;

interface Stock {
  available: number;
  reserved: number;
}

export function createInventory(
  instance: string,
  initialStock: number,
  productIds: readonly string[] = PRODUCTS.map((p) => p.id),
): InventoryServiceServer {
  const stock = new Map<string, Stock>(productIds.map((id) => [id, { available: initialStock, reserved: 0 }]));
  let reservations = 0;

  const badQuantity = (q: number): string | undefined =>
    q <= 0 || q > MAX_QUANTITY ? `quantity must be between 1 and ${MAX_QUANTITY}, got ${q}` : undefined;

  return {
    getStock(call, callback) {
      const s = stock.get(call.request.productId);
      if (!s) {
        callback({ code: status.NOT_FOUND, details: `no stock record for ${JSON.stringify(call.request.productId)}` });
        return;
      }
      callback(null, { productId: call.request.productId, available: s.available, reserved: s.reserved, instance });
    },

    reserve(call, callback) {
      const { productId, quantity } = call.request;
      const invalid = badQuantity(quantity);
      if (invalid) return callback({ code: status.INVALID_ARGUMENT, details: invalid });
      const s = stock.get(productId);
      if (!s) return callback({ code: status.NOT_FOUND, details: `no stock record for ${JSON.stringify(productId)}` });
      if (s.available < quantity) {
        return callback({
          code: status.FAILED_PRECONDITION,
          details: `only ${s.available} of ${productId} available, ${quantity} requested`,
        });
      }
      s.available -= quantity;
      s.reserved = Math.min(s.reserved + quantity, 2 ** 31 - 1);
      reservations++;
      callback(null, { reservationId: `${instance}/r-${reservations}`, remaining: s.available, instance });
    },

    restockBatch(call, callback) {
      let done = false;
      let items = 0;
      let units = 0;
      const touched = new Set<string>();
      const finish = (err: { code: status; details: string } | null): void => {
        if (done) return;
        done = true;
        if (err) callback(err);
        else callback(null, { itemsReceived: items, unitsAdded: units, productsTouched: touched.size, instance });
      };
      call.on('data', (item: RestockBatchRequest) => {
        if (done) return;
        const invalid = badQuantity(item.quantity) ?? (item.productId ? undefined : 'product_id must be set');
        if (invalid) return finish({ code: status.INVALID_ARGUMENT, details: `item ${items + 1}: ${invalid}` });
        // Restocking may introduce a product; stock is capped so int32 fields cannot overflow.
        const s = stock.get(item.productId) ?? { available: 0, reserved: 0 };
        s.available = Math.min(s.available + item.quantity, 2 ** 31 - 1);
        stock.set(item.productId, s);
        items++;
        units = Math.min(units + item.quantity, 2 ** 31 - 1);
        touched.add(item.productId);
      });
      call.on('end', () => finish(null));
      // A cancelled or broken stream has no one to answer; just stop.
      call.on('error', () => {
        done = true;
      });
    },
  };
}
