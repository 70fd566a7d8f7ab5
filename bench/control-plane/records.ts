/**
 * The instance records the bench writes to etcd itself (with the etcd3 package, not through the
 * control plane): a base mesh seeded before the control plane starts, and one new instance per
 * measured change. The JSON has the shape of control-plane/resources/types.ts InstanceRecord.
 */
import type { Etcd3 } from 'etcd3';
import type { InstanceRecord } from '../../control-plane/resources/types.js';

/** The service whose cluster each measured change adds an endpoint to. */
export const CHANGE_SERVICE = 'bench-svc';
const BASE_PORT = 20_000;
const CHANGE_PORT = 40_000;

export function instanceRecord(service: string, instanceId: string, port: number): InstanceRecord {
  return {
    service,
    namespace: 'default',
    instanceId,
    address: '127.0.0.1',
    port,
    zone: 'bench',
    labels: { app: service },
    serviceAccount: 'bench',
    health: 'SERVING',
    controlPlane: 'bench',
  };
}

const endpointKey = (prefix: string, r: InstanceRecord): string => `${prefix}endpoints/${r.namespace}/${r.service}/${r.instanceId}`;

/** `count` instances spread round-robin over `services` services (base-0, base-1, ...). */
export async function seedBaseMesh(etcd: Etcd3, prefix: string, count: number, services: number): Promise<void> {
  const records = Array.from({ length: count }, (_, i) => instanceRecord(`base-${i % Math.max(1, services)}`, `base-inst-${i}`, BASE_PORT + i));
  // Bounded concurrency: fast enough for thousands, never thousands of requests in flight at once.
  for (let i = 0; i < records.length; i += 64) {
    await Promise.all(records.slice(i, i + 64).map((r) => etcd.put(endpointKey(prefix, r)).value(JSON.stringify(r)).exec()));
  }
}

/** Change k: one new SERVING instance of bench-svc. Returns the etcd revision of the write. */
export async function writeChange(etcd: Etcd3, prefix: string, k: number): Promise<number> {
  const r = instanceRecord(CHANGE_SERVICE, `inst-${k}`, CHANGE_PORT + k);
  const res = await etcd.put(endpointKey(prefix, r)).value(JSON.stringify(r)).exec();
  return Number(res.header.revision);
}

export async function deletePrefix(etcd: Etcd3, prefix: string): Promise<void> {
  await etcd.delete().prefix(prefix).exec();
}
