/**
 * The one place an etcd3 client is configured. Two settings matter for a control plane that must
 * outlive etcd restarts: every unary call has a deadline (etcd3 has none by default, and its
 * `dialTimeout` option is not used by the library), watch streams reconnect after at most a
 * couple of seconds instead of etcd3's default 30 s backoff cap, and an endpoint that failed is
 * retried after 1 s instead of 5 s (host-breaker.ts).
 */
import { Etcd3, type IOptions } from 'etcd3';
import { hostBreaker } from './host-breaker.js';

export interface EtcdClientOptions {
  /** Deadline for each unary call (get, put, txn, lease grant); streams have none. */
  readonly callTimeoutMs: number;
}

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** Exponential with full jitter, 100 ms doubling to a 2 s cap. */
function watchBackoff(attempt = 0): WatchBackoff {
  const cap = Math.min(2_000, 100 * 2 ** attempt);
  return {
    duration: Math.round(cap / 2 + Math.random() * (cap / 2)),
    next: () => watchBackoff(attempt + 1),
  };
}

/** `127.0.0.1:2379` and `http://127.0.0.1:2379` both work; etcd3 wants the scheme. */
export function normalizeEndpoint(endpoint: string): string {
  return /^[a-z]+:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`;
}

export function createEtcdClient(endpoints: readonly string[], opts: EtcdClientOptions): Etcd3 {
  if (endpoints.length === 0) throw new Error('no etcd endpoints given');
  return new Etcd3({
    hosts: endpoints.map(normalizeEndpoint),
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + opts.callTimeoutMs }),
    faultHandling: { watchBackoff: watchBackoff(), host: (h) => hostBreaker(h) },
    grpcOptions: {
      // Notices a dead etcd behind a silent network (no RST) on the long-lived watch and keep-alive
      // streams. etcd refuses pings more often than every 5 s (--grpc-keepalive-min-time).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    },
  });
}
