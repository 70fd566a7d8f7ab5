/**
 * The control plane's in-memory copy of the mesh: every valid resource and registered instance, at
 * one etcd revision. Filled by Store.load() and kept current by Store.watch() events.
 */
import type { InstanceRecord, InvalidStoredResource, StoredResource } from '../resources/types.js';
import type { StoreEvent, StoreSnapshot } from '../store/store.js';
import { kindFromKeySegment } from '../resources/kinds.js';

const resourceKey = (kind: string, ns: string, name: string) => `${kind}/${ns}/${name}`;

/** `<prefix>config/<kind>/<ns>/<name>` → the resource key, so an invalid value replaces what the key held. */
function keyOfInvalid(bad: InvalidStoredResource): string {
  const m = /\/config\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(bad.key);
  const kind = m ? kindFromKeySegment(m[1]!) : undefined;
  return kind ? resourceKey(kind, m![2]!, m![3]!) : bad.key;
}
const instanceKey = (ns: string, service: string, id: string) => `${ns}/${service}/${id}`;

export class MeshState {
  revision = '0';
  readonly resources = new Map<string, StoredResource>();
  readonly instances = new Map<string, InstanceRecord>();
  readonly invalid = new Map<string, InvalidStoredResource>();

  reset(snapshot: StoreSnapshot): void {
    this.resources.clear();
    this.instances.clear();
    this.invalid.clear();
    for (const r of snapshot.resources) this.resources.set(resourceKey(r.kind, r.metadata.namespace, r.metadata.name), r);
    for (const i of snapshot.instances) this.instances.set(instanceKey(i.namespace, i.service, i.instanceId), i);
    for (const bad of snapshot.invalid) this.invalid.set(keyOfInvalid(bad), bad);
    this.revision = snapshot.revision;
  }

  /** Applies watch events; returns true if anything a sidecar sees may have changed. */
  apply(events: readonly StoreEvent[]): boolean {
    let changed = false;
    for (const e of events) {
      switch (e.type) {
        case 'resource-put': {
          const key = resourceKey(e.resource.kind, e.resource.metadata.namespace, e.resource.metadata.name);
          this.resources.set(key, e.resource);
          this.invalid.delete(key);
          changed = true;
          break;
        }
        case 'resource-delete': {
          const key = resourceKey(e.kind, e.namespace, e.name);
          this.invalid.delete(key);
          changed = this.resources.delete(key) || changed;
          break;
        }
        case 'resource-invalid': {
          // The key now holds something unusable: its last valid version is gone too.
          const key = keyOfInvalid(e.invalid);
          this.invalid.set(key, e.invalid);
          changed = this.resources.delete(key) || changed;
          break;
        }
        case 'instance-put':
          this.instances.set(instanceKey(e.instance.namespace, e.instance.service, e.instance.instanceId), e.instance);
          changed = true;
          break;
        case 'instance-delete':
          changed = this.instances.delete(instanceKey(e.namespace, e.service, e.instanceId)) || changed;
          break;
        case 'resync-needed':
          break;
      }
      if ('revision' in e && BigInt(e.revision) > BigInt(this.revision)) this.revision = e.revision;
    }
    return changed;
  }
}
