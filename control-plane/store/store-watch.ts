/**
 * Store.watch on etcd: one etcd watch on the whole prefix, turned into StoreEvents and delivered
 * one callback per etcd revision, so the documents of one `remora apply` (one transaction, one
 * revision) arrive together and become one push.
 *
 * Resuming: etcd3 reconnects by itself and re-creates the watch from the revision after the last
 * one it saw. But it moves that resume point to the *current* revision as soon as etcd confirms
 * the new watch, before the catch-up events have arrived; a second disconnect in that window would
 * skip them. So on every disconnect the resume point is set back to just after the last revision
 * this class delivered, and replayed events at or below it are dropped.
 *
 * If etcd cancels the watch (the history it needs was compacted away), the consumer gets one
 * `resync-needed` and this watch ends: it must load() again and start a new watch from there.
 */
import type { Etcd3, IEvent, IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from '../../lib/log.js';
import { parseKey } from '../resources/keys.js';
import { validateStoredValue } from '../resources/stored-value.js';
import type { StoreEvent, Watch } from './store.js';

const CANCEL_WAIT_MS = 1_000;

export class StoreWatch implements Watch {
  private last: bigint;
  private readonly watcher: Watcher;
  private ended = false;
  private disconnectedAt: number | undefined;

  constructor(
    client: Etcd3,
    private readonly prefix: string,
    afterRevision: string,
    private readonly onEvent: (events: readonly StoreEvent[]) => void,
    private readonly log: Logger,
  ) {
    this.last = BigInt(afterRevision);
    // watcher() rather than create(): listeners must be in place before etcd can answer, or an
    // early cancellation would be an unhandled 'error' event.
    this.watcher = client.watch().prefix(prefix).startRevision(String(this.last + 1n)).watcher();
    this.watcher.on('data', (res: IWatchResponse) => this.onData(res));
    this.watcher.on('disconnected', (err: Error) => this.onDisconnected(err));
    this.watcher.on('connected', () => this.onConnected());
    this.watcher.on('error', (err: Error) => this.onCancelled(err));
  }

  /** The last etcd revision whose events were delivered (or skipped as not ours). */
  get revision(): string {
    return this.last.toString();
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await Promise.race([this.watcher.cancel().catch(() => undefined), sleep(CANCEL_WAIT_MS)]);
  }

  private onData(res: IWatchResponse): void {
    if (this.ended) return;
    try {
      let batch: StoreEvent[] = [];
      let batchRev: bigint | undefined;
      for (const ev of res.events) {
        const rev = BigInt(ev.kv.mod_revision);
        if (rev <= this.last) continue;
        if (batchRev !== undefined && rev !== batchRev) {
          this.deliver(batchRev, batch);
          batch = [];
        }
        batchRev = rev;
        const e = this.toEvent(ev, rev.toString());
        if (e) batch.push(e);
      }
      if (batchRev !== undefined) this.deliver(batchRev, batch);
    } catch (err) {
      // etcd3 rethrows listener exceptions asynchronously, which would crash the process.
      this.log.error({ err: (err as Error).message }, 'watch event handling failed');
    }
  }

  private deliver(rev: bigint, events: StoreEvent[]): void {
    this.last = rev;
    if (events.length === 0) return;
    try {
      this.onEvent(events);
    } catch (err) {
      this.log.error({ err: (err as Error).message, revision: rev.toString() }, 'watch consumer threw; continuing');
    }
  }

  private toEvent(ev: IEvent, revision: string): StoreEvent | undefined {
    const key = ev.kv.key.toString('utf8');
    const k = parseKey(this.prefix, key);
    // Status writes (one per sidecar ACK) are most of the traffic under the prefix: skip them
    // before any parsing.
    if (k.area === 'status' || k.area === 'other') return undefined;
    if (ev.type === 'Delete') {
      if (k.area === 'config') return { type: 'resource-delete', kind: k.kind, namespace: k.namespace, name: k.name, revision };
      if (k.area === 'endpoints') return { type: 'instance-delete', namespace: k.namespace, service: k.service, instanceId: k.instanceId, revision };
      return undefined;
    }
    const v = validateStoredValue(key, ev.kv.value, { prefix: this.prefix, modRevision: revision });
    switch (v.type) {
      case 'resource':
        return { type: 'resource-put', resource: v.resource, revision };
      case 'instance':
        return { type: 'instance-put', instance: v.instance, revision };
      case 'invalid':
        // Also for a bad instance record: the consumer keeps one list of bad keys, whatever they hold.
        return { type: 'resource-invalid', invalid: v.invalid, revision };
      case 'status':
      case 'ignored':
        return undefined;
    }
  }

  private onDisconnected(err: Error): void {
    if (this.ended) return;
    this.watcher.request.start_revision = (this.last + 1n).toString();
    // etcd3 reports every failed reconnect attempt: log the outage once, not each attempt.
    if (this.disconnectedAt !== undefined) return;
    this.disconnectedAt = Date.now();
    this.log.warn({ err: err.message, resumeFrom: this.watcher.request.start_revision }, 'etcd watch disconnected; reconnecting');
  }

  private onConnected(): void {
    if (this.disconnectedAt === undefined) return;
    this.log.info({ downMs: Date.now() - this.disconnectedAt, resumeAfter: this.revision }, 'etcd watch resumed');
    this.disconnectedAt = undefined;
  }

  private onCancelled(err: Error): void {
    if (this.ended) return;
    this.ended = true;
    const reason = `etcd cancelled the watch (${err.message}); events after revision ${this.revision} may have been compacted away: load() again`;
    this.log.warn({ reason }, 'watch needs a resync');
    try {
      this.onEvent([{ type: 'resync-needed', reason }]);
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'watch consumer threw on resync-needed');
    }
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
