/**
 * The keys one control-plane replica keeps alive (instance registrations and sidecar status), all
 * on ONE etcd lease. One lease per replica, not per sidecar: a thousand sidecars would otherwise
 * mean a thousand keep-alives; the replica instead deletes a sidecar's keys itself when that
 * sidecar's stream is gone, and etcd deletes them all if the replica dies.
 *
 * The replica remembers what it holds, so when the lease is lost (etcd unreachable for longer
 * than the TTL) it grants a new one and writes every key again: registrations outlive an etcd
 * outage. Writes and deletes that fail while etcd is away are retried until they land.
 */
import { EtcdLeaseInvalidError, type Etcd3, type Lease } from 'etcd3';
import type { Logger } from '../../lib/log.js';
import { keyBuf } from './kv.js';

const REPAIR_CONCURRENCY = 32;
const REPAIR_MIN_MS = 200;
const REPAIR_MAX_MS = 5_000;

export class ReplicaLeaseClosedError extends Error {
  readonly code = 'REMORA_STORE_CLOSED';
  constructor() {
    super('the store is closed');
    this.name = 'ReplicaLeaseClosedError';
  }
}

export class ReplicaLease {
  private lease: Lease | undefined;
  private leaseId: string | undefined;
  private granting: Promise<string> | undefined;
  /** key → value this replica keeps alive; the truth that repairs write back. */
  private readonly held = new Map<string, string>();
  private readonly unwritten = new Set<string>();
  /** Keys let go of while etcd was unreachable: their guarded delete still has to happen. */
  private readonly undeleted = new Map<string, string>();
  /** Per-key chains, so a repair never lands an older value after a newer one. */
  private readonly queues = new Map<string, Promise<void>>();
  private repairTimer: NodeJS.Timeout | undefined;
  private repairing = false;
  private repairDelayMs = REPAIR_MIN_MS;
  private closed = false;

  constructor(
    private readonly client: Etcd3,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {}

  /** The current lease id, granting a lease if there is none; concurrent callers share one grant. */
  id(): Promise<string> {
    if (this.closed) return Promise.reject(new ReplicaLeaseClosedError());
    if (this.leaseId) return Promise.resolve(this.leaseId);
    this.granting ??= this.grant().finally(() => (this.granting = undefined));
    return this.granting;
  }

  /** Writes `key` on the lease and keeps it there (and rewrites it after a lease loss) until release(). */
  async hold(key: string, value: string): Promise<void> {
    if (this.closed) throw new ReplicaLeaseClosedError();
    this.held.set(key, value);
    this.undeleted.delete(key);
    await this.serial(key, () => this.write(key, value));
  }

  /** Stops holding `key` and deletes it, but only if it is still on this replica's lease. */
  async release(key: string): Promise<boolean> {
    if (this.closed) throw new ReplicaLeaseClosedError();
    this.held.delete(key);
    this.unwritten.delete(key);
    return this.serial(key, () => this.guardedDelete(key));
  }

  heldCount(): number {
    return this.held.size;
  }

  /** Revoke: every held key vanishes now. Otherwise keep-alives stop and etcd expires them after the TTL. */
  async close(revoke: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.repairTimer);
    const lease = this.lease;
    this.lease = undefined;
    this.leaseId = undefined;
    if (!lease) {
      // A grant may be in flight: let it finish so its lease is released too.
      await this.granting?.catch(() => undefined);
      return;
    }
    if (revoke) {
      try {
        await lease.revoke();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'could not revoke the lease; its keys expire after the TTL');
      }
    } else {
      lease.release();
    }
  }

  private async grant(): Promise<string> {
    const lease = this.client.lease(this.ttlSeconds);
    lease.on('lost', (err) => this.onLost(lease, err));
    lease.on('keepaliveSucceeded', () => {
      if (this.unwritten.size > 0 || this.undeleted.size > 0) this.scheduleRepair(0);
    });
    const id = await lease.grant();
    if (this.closed) {
      await lease.revoke().catch(() => undefined);
      throw new ReplicaLeaseClosedError();
    }
    this.lease = lease;
    this.leaseId = id;
    this.log.info({ lease: id, ttlSeconds: this.ttlSeconds }, 'lease granted');
    return id;
  }

  private onLost(lease: Lease, err: Error): void {
    if (lease !== this.lease || this.closed) return;
    // Stops its keep-alive loop, if etcd3 has not already.
    lease.release();
    this.lease = undefined;
    this.leaseId = undefined;
    for (const key of this.held.keys()) this.unwritten.add(key);
    this.log.warn({ err: err.message, keys: this.held.size }, 'lease lost; granting a new one and writing every held key again');
    this.scheduleRepair(0);
  }

  private async write(key: string, value: string): Promise<void> {
    // Superseded while queued: the newer hold() or release() has its own turn.
    if (this.held.get(key) !== value) return;
    let id: string;
    try {
      id = await this.id();
      await this.client.kv.put({ key: keyBuf(key), value: keyBuf(value), lease: id });
    } catch (err) {
      if (this.closed) throw err;
      if (err instanceof EtcdLeaseInvalidError) this.dropLease();
      this.unwritten.add(key);
      this.scheduleRepair();
      throw err;
    }
    this.unwritten.delete(key);
  }

  private async guardedDelete(key: string): Promise<boolean> {
    if (this.held.has(key)) return false;
    const id = this.leaseId ?? this.undeleted.get(key);
    // No lease: nothing of ours can be left under this key but keys of a lost lease, which expire anyway.
    if (!id) return false;
    try {
      const res = await this.client.kv.txn({
        compare: [{ key: keyBuf(key), target: 'Lease', result: 'Equal', lease: id }],
        success: [{ request_delete_range: { key: keyBuf(key) } }],
      });
      this.undeleted.delete(key);
      return res.succeeded && res.responses[0]?.response_delete_range.deleted !== '0';
    } catch (err) {
      if (this.closed) throw err;
      this.undeleted.set(key, id);
      this.scheduleRepair();
      throw err;
    }
  }

  /** etcd says the lease is gone (it expired while etcd was away): start over with a new one. */
  private dropLease(): void {
    const lease = this.lease;
    if (lease) this.onLost(lease, new Error('etcd reports the lease as expired'));
  }

  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(key) ?? Promise.resolve();
    const run = prev.then(fn);
    const tail = run.then(() => undefined, () => undefined);
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return run;
  }

  private scheduleRepair(delayMs = this.repairDelayMs): void {
    if (this.closed || this.repairing) return;
    if (this.repairTimer && delayMs > 0) return;
    clearTimeout(this.repairTimer);
    this.repairTimer = setTimeout(() => {
      this.repairTimer = undefined;
      void this.repair();
    }, delayMs);
  }

  /** Writes every unwritten key and deletes every undeleted one, a bounded number at a time. */
  private async repair(): Promise<void> {
    if (this.closed || this.repairing) return;
    this.repairing = true;
    const pending = this.unwritten.size;
    try {
      await this.id();
      const jobs: (() => Promise<unknown>)[] = [
        ...[...this.undeleted.keys()].map((key) => () => this.serial(key, () => this.guardedDelete(key))),
        ...[...this.unwritten].map((key) => () => this.serial(key, () => this.write(key, this.held.get(key) ?? ''))),
      ];
      await runBounded(jobs, REPAIR_CONCURRENCY);
    } catch {
      // Still unreachable; the next round comes after a longer pause.
    } finally {
      this.repairing = false;
    }
    if (this.closed) return;
    if (this.unwritten.size > 0 || this.undeleted.size > 0) {
      this.repairDelayMs = Math.min(REPAIR_MAX_MS, this.repairDelayMs * 2);
      this.scheduleRepair(this.repairDelayMs);
    } else {
      if (pending > 0) this.log.info({ keys: pending, lease: this.leaseId }, 'held keys written again');
      this.repairDelayMs = REPAIR_MIN_MS;
    }
  }
}

/** Runs every job, at most `limit` at once; failures are left to the caller's bookkeeping. */
async function runBounded(jobs: readonly (() => Promise<unknown>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      await job().catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
}
