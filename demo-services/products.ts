/** The shop's fixed product list, shared by catalog (names, prices) and inventory (stock keys). */
import type { Product } from '../protos/gen/remora/demo/v1/catalog.js';

export const PRODUCTS: readonly Product[] = Object.freeze([
  { id: 'p-001', name: 'Claw hammer', category: 'tools', priceCents: 1899 },
  { id: 'p-002', name: 'Cordless drill', category: 'tools', priceCents: 8999 },
  { id: 'p-003', name: 'Socket wrench set', category: 'tools', priceCents: 4550 },
  { id: 'p-004', name: 'Tape measure', category: 'tools', priceCents: 999 },
  { id: 'p-005', name: 'Cast iron skillet', category: 'kitchen', priceCents: 3499 },
  { id: 'p-006', name: 'Chef knife', category: 'kitchen', priceCents: 5999 },
  { id: 'p-007', name: 'Pepper mill', category: 'kitchen', priceCents: 2450 },
  { id: 'p-008', name: 'Garden hose', category: 'garden', priceCents: 2999 },
  { id: 'p-009', name: 'Pruning shears', category: 'garden', priceCents: 1750 },
  { id: 'p-010', name: 'Watering can', category: 'garden', priceCents: 1299 },
  { id: 'p-011', name: 'Distributed Systems (book)', category: 'books', priceCents: 4200 },
  { id: 'p-012', name: 'HTTP/2 in Action (book)', category: 'books', priceCents: 3900 },
]);
