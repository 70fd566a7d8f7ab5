/**
 * Store on etcd (the etcd3 package). Key layout in ../resources/keys.ts; design notes in
 * docs/control-plane-store.md. In short:
 * - user resources are written in one transaction per apply, guarded by the mod revisions they
 *   were compared against, so "created / configured / unchanged" is exactly what happened;
 * - load() reads at one revision, and watch() resumes right after it;
 * - registrations and status live on this replica's lease (see replica-lease.ts);
 * - anything invalid found in etcd is returned as `invalid` (load, getResources) or as a
 *   `resource-invalid` event (watch) and skipped, never thrown.
 */
import type { Etcd3 } from 'etcd3';
import { createLogger, type Logger } from '../../lib/log.js';
import { FieldChecker } from '../resources/fields.js';
import { checkInstanceRecord, checkSidecarStatus } from '../resources/instance.js';
import { configKey, configPrefix, endpointKey, endpointsPrefix, normalizePrefix, statusKey, statusPrefix } from '../resources/keys.js';
import { ResourceValidationError } from '../resources/parse.js';
import { checkResource, resourceJson } from '../resources/resource.js';
import { validateStoredValue } from '../resources/stored-value.js';
import type {
  InstanceRecord,
  InvalidStoredResource,
  Resource,
  ResourceKind,
  SidecarStatus,
  StoredResource,
} from '../resources/types.js';
import { createEtcdClient } from './etcd-client.js';
import { keyBuf, rangePrefix } from './kv.js';
import { ReplicaLease } from './replica-lease.js';
import { StoreWatch } from './store-watch.js';
import type { Store, StoreEvent, StoreOptions, StoreSnapshot, Watch } from './store.js';

export interface EtcdStoreTuning {
  /** Deadline of each etcd call (default 5000 ms), so nothing waits forever on an unreachable etcd. */
  readonly callTimeoutMs?: number;
  readonly log?: Logger;
}

export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  /** The revision of the write, or the current revision if nothing changed. */
  readonly revision: string;
  readonly results: readonly { readonly resource: Resource; readonly outcome: ApplyOutcome }[];
}

/** etcd's default --max-txn-ops: one apply is one transaction, so it holds at most this many resources. */
export const MAX_APPLY_RESOURCES = 128;
const APPLY_ATTEMPTS = 5;

export class EtcdStore implements Store {
  readonly prefix: string;
  private readonly client: Etcd3;
  private readonly log: Logger;
  private readonly lease: ReplicaLease;
  private readonly watches = new Set<StoreWatch>();
  private closed = false;

  constructor(
    private readonly options: StoreOptions,
    tuning: EtcdStoreTuning = {},
  ) {
    this.prefix = normalizePrefix(options.prefix);
    this.log = tuning.log ?? createLogger('store');
    this.client = createEtcdClient(options.endpoints, { callTimeoutMs: tuning.callTimeoutMs ?? 5_000 });
    this.lease = new ReplicaLease(this.client, options.leaseTtlSeconds, this.log);
  }

  async load(): Promise<StoreSnapshot> {
    const config = await rangePrefix(this.client, configPrefix(this.prefix));
    const endpoints = await rangePrefix(this.client, endpointsPrefix(this.prefix), config.revision);
    const resources: StoredResource[] = [];
    const instances: InstanceRecord[] = [];
    const invalid: InvalidStoredResource[] = [];
    for (const kv of [...config.kvs, ...endpoints.kvs]) {
      const v = validateStoredValue(kv.key.toString('utf8'), kv.value, { prefix: this.prefix, modRevision: kv.mod_revision });
      if (v.type === 'resource') resources.push(v.resource);
      else if (v.type === 'instance') instances.push(v.instance);
      else if (v.type === 'invalid') invalid.push(v.invalid);
    }
    // Reported to the caller (which logs them once), not logged here as well.
    return { revision: config.revision, resources, instances, invalid };
  }

  async watch(afterRevision: string, onEvent: (events: readonly StoreEvent[]) => void): Promise<Watch> {
    this.assertOpen();
    const w = new StoreWatch(this.client, this.prefix, afterRevision, onEvent, this.log);
    this.watches.add(w);
    return {
      close: async () => {
        this.watches.delete(w);
        await w.close();
      },
    };
  }

  async currentRevision(): Promise<string> {
    this.assertOpen();
    return (await this.client.kv.range({ key: keyBuf(this.prefix), limit: 1 })).header.revision;
  }

  /** A document under `<prefix><path>` outside the resource areas (the CA's state), with its mod revision. */
  async readDocument(path: string): Promise<{ value: string; modRevision: string } | undefined> {
    this.assertOpen();
    const res = await this.client.kv.range({ key: keyBuf(this.prefix + path) });
    const kv = res.kvs[0];
    return kv ? { value: kv.value.toString('utf8'), modRevision: kv.mod_revision } : undefined;
  }

  /** Writes the document only if it is still at `modRevision` ('0': only if absent). False if someone else wrote first. */
  async writeDocument(path: string, value: string, modRevision: string): Promise<boolean> {
    this.assertOpen();
    const key = keyBuf(this.prefix + path);
    const txn = await this.client.kv.txn({
      compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: modRevision }],
      success: [{ request_put: { key, value: keyBuf(value) } }],
    });
    return txn.succeeded;
  }

  /** Calls `onChange` with each new value of the document (reconnecting by itself). */
  async watchDocument(path: string, onChange: (value: string) => void): Promise<Watch> {
    this.assertOpen();
    const watcher = await this.client.watch().key(this.prefix + path).create();
    watcher.on('put', (kv) => onChange(kv.value.toString('utf8')));
    watcher.on('error', (err: Error) => this.log.warn({ err: err.message, path }, 'document watch error'));
    return { close: async () => void (await watcher.cancel().catch(() => undefined)) };
  }

  async applyResources(resources: readonly Resource[]): Promise<string> {
    return (await this.applyResourcesDetailed(resources)).revision;
  }

  /**
   * applyResources, reporting per resource whether it was created, changed or already so.
   * Unchanged resources are not rewritten, so re-applying a file pushes nothing to sidecars.
   */
  async applyResourcesDetailed(input: readonly Resource[]): Promise<ApplyResult> {
    this.assertOpen();
    const resources = this.revalidate(input);
    if (resources.length === 0) return { revision: (await this.client.kv.range({ key: keyBuf(this.prefix), limit: 1 })).header.revision, results: [] };
    const keys = resources.map((r) => configKey(this.prefix, r.kind, r.metadata.namespace, r.metadata.name));
    for (let attempt = 1; ; attempt++) {
      // One read of every key in one (read-only) transaction, so all are compared at one revision.
      const read = await this.client.kv.txn({ success: keys.map((k) => ({ request_range: { key: keyBuf(k) } })) });
      const current = read.responses.map((r) => r.response_range.kvs[0]);
      const results = resources.map((resource, i) => {
        const kv = current[i];
        if (!kv) return { resource, outcome: 'created' as const };
        const stored = validateStoredValue(keys[i]!, kv.value, { prefix: this.prefix });
        const same = stored.type === 'resource' && resourceJson(stored.resource) === resourceJson(resource);
        return { resource, outcome: same ? ('unchanged' as const) : ('configured' as const) };
      });
      const writes = results.flatMap((r, i) => (r.outcome === 'unchanged' ? [] : [i]));
      if (writes.length === 0) return { revision: read.header.revision, results };
      const txn = await this.client.kv.txn({
        // Guards every key (unchanged ones too), so the outcome reported is the outcome written.
        compare: keys.map((k, i) => ({ key: keyBuf(k), target: 'Mod' as const, result: 'Equal' as const, mod_revision: current[i]?.mod_revision ?? '0' })),
        success: writes.map((i) => ({ request_put: { key: keyBuf(keys[i]!), value: keyBuf(resourceJson(resources[i]!)) } })),
      });
      if (txn.succeeded) return { revision: txn.header.revision, results };
      if (attempt >= APPLY_ATTEMPTS) throw new Error(`apply lost ${APPLY_ATTEMPTS} races with concurrent writers; try again`);
    }
  }

  async getResources(kind?: ResourceKind, name?: string, namespace?: string): Promise<{ resources: StoredResource[]; invalid: InvalidStoredResource[] }> {
    const range = await rangePrefix(this.client, kind && namespace && name ? configKey(this.prefix, kind, namespace, name) : configPrefix(this.prefix, kind, namespace));
    const resources: StoredResource[] = [];
    const invalid: InvalidStoredResource[] = [];
    for (const kv of range.kvs) {
      const v = validateStoredValue(kv.key.toString('utf8'), kv.value, { prefix: this.prefix, modRevision: kv.mod_revision });
      if (v.type === 'resource') {
        const r = v.resource;
        if ((!name || r.metadata.name === name) && (!namespace || r.metadata.namespace === namespace)) resources.push(r);
      } else if (v.type === 'invalid') {
        invalid.push(v.invalid);
      }
    }
    return { resources, invalid };
  }

  async deleteResource(kind: ResourceKind, name: string, namespace: string): Promise<boolean> {
    this.assertOpen();
    const res = await this.client.kv.deleteRange({ key: keyBuf(configKey(this.prefix, kind, namespace, name)) });
    return res.deleted !== '0';
  }

  async registerInstance(instance: InstanceRecord): Promise<void> {
    const c = new FieldChecker();
    const record = checkInstanceRecord(c, { ...instance, controlPlane: this.options.replicaId });
    if (!record) throw new ResourceValidationError(c.problems);
    await this.lease.hold(endpointKey(this.prefix, record.namespace, record.service, record.instanceId), JSON.stringify(record));
  }

  async deregisterInstance(namespace: string, service: string, instanceId: string): Promise<void> {
    await this.lease.release(endpointKey(this.prefix, namespace, service, instanceId));
  }

  async putStatus(status: SidecarStatus): Promise<void> {
    const c = new FieldChecker();
    const record = checkSidecarStatus(c, status);
    if (!record) throw new ResourceValidationError(c.problems);
    await this.lease.hold(statusKey(this.prefix, record.namespace, record.service, record.instanceId), JSON.stringify(record));
  }

  /** Like deregisterInstance: a replica never deletes the status another replica now keeps. */
  async deleteStatus(namespace: string, service: string, instanceId: string): Promise<void> {
    await this.lease.release(statusKey(this.prefix, namespace, service, instanceId));
  }

  async listStatus(): Promise<SidecarStatus[]> {
    return (await this.readStatus()).statuses;
  }

  /** listStatus plus the status values that did not validate (for `remora status` warnings). */
  async readStatus(): Promise<{ statuses: SidecarStatus[]; invalid: InvalidStoredResource[] }> {
    const range = await rangePrefix(this.client, statusPrefix(this.prefix));
    const statuses: SidecarStatus[] = [];
    const invalid: InvalidStoredResource[] = [];
    for (const kv of range.kvs) {
      const v = validateStoredValue(kv.key.toString('utf8'), kv.value, { prefix: this.prefix });
      if (v.type === 'status') statuses.push(v.status);
      else if (v.type === 'invalid') invalid.push(v.invalid);
    }
    return { statuses, invalid };
  }

  /** This replica's lease id (granting it if needed): for diagnostics and tests. */
  leaseId(): Promise<string> {
    return this.lease.id();
  }

  async close(opts: { revokeLease?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
    this.watches.clear();
    await this.lease.close(opts.revokeLease ?? true);
    this.client.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the store is closed');
  }

  private revalidate(input: readonly Resource[]): Resource[] {
    if (input.length > MAX_APPLY_RESOURCES) {
      throw new ResourceValidationError([
        `${input.length} resources in one apply; at most ${MAX_APPLY_RESOURCES} fit in one etcd transaction (etcd's --max-txn-ops): split the file`,
      ]);
    }
    const problems: string[] = [];
    const seen = new Set<string>();
    const out: Resource[] = [];
    input.forEach((r, i) => {
      // Callers in code (not only `remora apply`) may hand over anything: check it like a file.
      const c = new FieldChecker();
      const valid = checkResource(c, { kind: r.kind, metadata: r.metadata, spec: r.spec });
      for (const p of c.problems) problems.push(`resources[${i}] (${r.kind} ${r.metadata?.namespace}/${r.metadata?.name}): ${p}`);
      if (!valid) return;
      const id = `${valid.kind}/${valid.metadata.namespace}/${valid.metadata.name}`;
      if (seen.has(id)) problems.push(`resources[${i}]: ${id} appears twice`);
      seen.add(id);
      out.push(valid);
    });
    if (problems.length > 0) throw new ResourceValidationError(problems);
    return out;
  }
}
