/** The demo services by short name: what `--name` accepts and what each one needs to start. */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../lib/log.js';
import { CatalogServiceService } from '../protos/gen/remora/demo/v1/catalog.js';
import { InventoryServiceService } from '../protos/gen/remora/demo/v1/inventory.js';
import { OrdersServiceService } from '../protos/gen/remora/demo/v1/orders.js';
import { createCatalog } from './catalog.js';
import { createInventory } from './inventory.js';
import { connectDownstream, createOrders, type OrdersUpstream } from './orders.js';

export const SERVICE_NAMES = ['catalog', 'inventory', 'orders'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export function isServiceName(s: string): s is ServiceName {
  return (SERVICE_NAMES as readonly string[]).includes(s);
}

/** Fully-qualified names: what health checks and reflection use. */
export const FULL_NAMES: Readonly<Record<ServiceName, string>> = {
  catalog: 'remora.demo.v1.CatalogService',
  inventory: 'remora.demo.v1.InventoryService',
  orders: 'remora.demo.v1.OrdersService',
};

export interface ServiceContext {
  readonly instance: string;
  readonly log: Logger;
  readonly initialStock: number;
  readonly upstream: OrdersUpstream;
}

export interface DemoService {
  readonly name: ServiceName;
  readonly fullName: string;
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
  /** Releases client channels and the like once the server is down. */
  close(): void;
}

export function createService(name: ServiceName, ctx: ServiceContext): DemoService {
  const base = { name, fullName: FULL_NAMES[name] };
  switch (name) {
    case 'catalog':
      return { ...base, definition: CatalogServiceService, implementation: createCatalog(ctx.instance), close() {} };
    case 'inventory':
      return {
        ...base,
        definition: InventoryServiceService,
        implementation: createInventory(ctx.instance, ctx.initialStock),
        close() {},
      };
    case 'orders': {
      const downstream = connectDownstream(ctx.upstream);
      return {
        ...base,
        definition: OrdersServiceService,
        implementation: createOrders(ctx.instance, downstream, ctx.log),
        close: () => downstream.close(),
      };
    }
  }
}
