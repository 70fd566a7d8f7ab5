/** catalog: read-only product lookups (a unary call and a server stream). */
import { status } from '@grpc/grpc-js';
import type { CatalogServiceServer, Product } from '../protos/gen/remora/demo/v1/catalog.js';
import { PRODUCTS } from './products.js';

export function createCatalog(instance: string, products: readonly Product[] = PRODUCTS): CatalogServiceServer {
  const byId = new Map(products.map((p) => [p.id, p]));
  return {
    getProduct(call, callback) {
      const product = byId.get(call.request.id);
      if (!product) {
        callback({ code: status.NOT_FOUND, details: `no product with id ${JSON.stringify(call.request.id)}` });
        return;
      }
      callback(null, { product, instance });
    },

    listProducts(call) {
      const { category, nameContains, pageSize } = call.request;
      if (pageSize < 0) {
        call.emit('error', { code: status.INVALID_ARGUMENT, details: 'page_size must be >= 0' });
        return;
      }
      const needle = nameContains.toLowerCase();
      let sent = 0;
      for (const product of products) {
        if (pageSize > 0 && sent >= pageSize) break;
        if (category && product.category !== category) continue;
        if (needle && !product.name.toLowerCase().includes(needle)) continue;
        // The list is small and fixed, so writing without waiting for 'drain' stays bounded.
        call.write({ product, instance });
        sent++;
      }
      call.end();
    },
  };
}
