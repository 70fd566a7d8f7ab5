/**
 * The control plane's only view of etcd. One implementation (etcd-store.ts, on the etcd3 package);
 * the discovery server, the CLI and the tests all go through this interface.
 */
import type { InstanceRecord, InvalidStoredResource, Resource, ResourceKind, SidecarStatus, StoredResource } from '../resources/types.js';

export interface StoreOptions {
  /** etcd endpoints, e.g. ["http://127.0.0.1:2379"]. */
  readonly endpoints: readonly string[];
  /** Key prefix, default "/remora/". Always ends with "/". */
  readonly prefix: string;
  /** Lease TTL in seconds for registrations and status (default 10). */
  readonly leaseTtlSeconds: number;
  /** This control-plane replica's id (registrations and status are attached to its lease). */
  readonly replicaId: string;
}

/** Everything the control plane needs to build config, read in one consistent etcd range. */
export interface StoreSnapshot {
  /** etcd revision the snapshot was read at; watch() resumes after it. */
  readonly revision: string;
  readonly resources: readonly StoredResource[];
  readonly instances: readonly InstanceRecord[];
  readonly invalid: readonly InvalidStoredResource[];
}

export type StoreEvent =
  | { readonly type: 'resource-put'; readonly resource: StoredResource; readonly revision: string }
  | { readonly type: 'resource-delete'; readonly kind: ResourceKind; readonly namespace: string; readonly name: string; readonly revision: string }
  | { readonly type: 'resource-invalid'; readonly invalid: InvalidStoredResource; readonly revision: string }
  | { readonly type: 'instance-put'; readonly instance: InstanceRecord; readonly revision: string }
  | { readonly type: 'instance-delete'; readonly namespace: string; readonly service: string; readonly instanceId: string; readonly revision: string }
  /**
   * The watch lost history (compaction) or reconnected in a way that may have missed events: reload with load().
   * It is the last event of its watch: start a new watch() from the new snapshot's revision.
   */
  | { readonly type: 'resync-needed'; readonly reason: string };

export interface Watch {
  close(): Promise<void>;
}

export interface Store {
  /** Reads all resources and instances at one revision. */
  load(): Promise<StoreSnapshot>;
  /**
   * Watches the prefix from `afterRevision` (exclusive); reconnects and resumes by itself.
   * `onEvent` gets events in revision order; events of one etcd transaction arrive together
   * in one call so a multi-document apply is pushed as one change.
   */
  watch(afterRevision: string, onEvent: (events: readonly StoreEvent[]) => void): Promise<Watch>;

  /** Validated resources written in one transaction: all or nothing. Returns the new revision. */
  applyResources(resources: readonly Resource[]): Promise<string>;
  getResources(kind?: ResourceKind, name?: string, namespace?: string): Promise<{ resources: StoredResource[]; invalid: InvalidStoredResource[] }>;
  /** Returns false if no such resource existed. */
  deleteResource(kind: ResourceKind, name: string, namespace: string): Promise<boolean>;

  /**
   * Puts the instance on this replica's lease (overwriting another replica's registration); its
   * `controlPlane` is set to this replica's id. Rejects if etcd cannot be reached, but the
   * registration stays held and is written once etcd is back (also after a lost lease), until
   * deregistered. Same for putStatus.
   */
  registerInstance(instance: InstanceRecord): Promise<void>;
  /** Deletes the instance now, but only if this replica still holds its registration. */
  deregisterInstance(namespace: string, service: string, instanceId: string): Promise<void>;

  putStatus(status: SidecarStatus): Promise<void>;
  deleteStatus(namespace: string, service: string, instanceId: string): Promise<void>;
  listStatus(): Promise<SidecarStatus[]>;

  /** etcd's current revision (cheap: one range of at most one key). */
  currentRevision(): Promise<string>;

  /** Revokes this replica's lease (its registrations and status vanish at once) and disconnects. */
  close(opts?: { revokeLease?: boolean }): Promise<void>;
}
