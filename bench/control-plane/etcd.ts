/**
 * The control-plane bench's etcd: the shared starter (lib/etcd-process.ts), with data on disk by
 * default like a real deployment (etcd fsyncs every write, and that latency belongs in the
 * numbers), and a client whose every unary call has a deadline.
 */
import os from 'node:os';
import { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdHandle } from '../../lib/etcd-process.js';

export type BenchEtcd = EtcdHandle;

/** etcd3 calls have no deadline by default; the bench's must end, so each gets this many ms. */
const CALL_TIMEOUT_MS = 5000;

/** An etcd3 client whose every unary call has a deadline (a hung etcd fails the bench, never stalls it). */
export function benchEtcdClient(endpoint: string): Etcd3 {
  return new Etcd3({
    hosts: [endpoint],
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
  });
}

export function startBenchEtcd(dataRoot = os.tmpdir()): Promise<BenchEtcd> {
  return startEtcd({ dataRoot });
}
