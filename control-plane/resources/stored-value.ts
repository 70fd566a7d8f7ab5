/**
 * Values read back from etcd are untrusted: anyone with etcdctl can write anything under the
 * prefix. validateStoredValue turns one key/value into a typed value or an `invalid` report, and
 * never throws, so one bad value is reported and skipped while everything else loads.
 */
import { deepFreeze } from '../../lib/validate.js';
import { FieldChecker } from './fields.js';
import { checkInstanceRecord, checkSidecarStatus } from './instance.js';
import { DEFAULT_PREFIX, parseKey } from './keys.js';
import { KIND_NAMES } from './kinds.js';
import { checkResource } from './resource.js';
import type { InstanceRecord, InvalidStoredResource, SidecarStatus, StoredResource } from './types.js';

export type StoredValue =
  | { readonly type: 'resource'; readonly resource: StoredResource }
  | { readonly type: 'instance'; readonly instance: InstanceRecord }
  | { readonly type: 'status'; readonly status: SidecarStatus }
  | { readonly type: 'invalid'; readonly invalid: InvalidStoredResource }
  /** Under the prefix but outside config/, endpoints/ and status/ (e.g. a later ca/): not ours to judge. */
  | { readonly type: 'ignored' };

export interface StoredValueOptions {
  /** The store's key prefix (default `/remora/`). */
  readonly prefix?: string;
  /** The etcd mod_revision of the value, kept on resources for `watch` and optimistic writes. */
  readonly modRevision?: string;
}

const invalid = (key: string, problems: readonly string[]): StoredValue => ({
  type: 'invalid',
  invalid: deepFreeze({ key, problems: [...problems] }),
});

function decode(value: string | Uint8Array): string {
  return typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
}

export function validateStoredValue(key: string, value: string | Uint8Array, opts: StoredValueOptions = {}): StoredValue {
  try {
    const parsed = parseKey(opts.prefix ?? DEFAULT_PREFIX, key);
    if (parsed.area === 'other') return { type: 'ignored' };
    if (parsed.area === 'malformed') return invalid(key, [parsed.problem]);
    let json: unknown;
    try {
      json = JSON.parse(decode(value));
    } catch (err) {
      return invalid(key, [`value is not JSON: ${(err as Error).message}`]);
    }
    const c = new FieldChecker();
    if (parsed.area === 'config') {
      const r = checkResource(c, json);
      if (!r) return invalid(key, c.problems);
      if (r.kind !== parsed.kind || r.metadata.namespace !== parsed.namespace || r.metadata.name !== parsed.name) {
        const keyRef = `${KIND_NAMES[parsed.kind].singular} ${parsed.namespace}/${parsed.name}`;
        const valueRef = `${KIND_NAMES[r.kind].singular} ${r.metadata.namespace}/${r.metadata.name}`;
        return invalid(key, [`the key is for ${keyRef} but the value is ${valueRef}`]);
      }
      return { type: 'resource', resource: deepFreeze({ ...r, modRevision: opts.modRevision ?? '0' }) };
    }
    const record = parsed.area === 'endpoints' ? checkInstanceRecord(c, json) : checkSidecarStatus(c, json);
    // A record with a problem (a dropped label) is invalid as a whole, like a resource.
    if (!record || c.problems.length > 0) return invalid(key, c.problems);
    if (record.namespace !== parsed.namespace || record.service !== parsed.service || record.instanceId !== parsed.instanceId) {
      return invalid(key, [
        `the key is for ${parsed.namespace}/${parsed.service}/${parsed.instanceId} but the value is ${record.namespace}/${record.service}/${record.instanceId}`,
      ]);
    }
    return parsed.area === 'endpoints'
      ? { type: 'instance', instance: record as InstanceRecord }
      : { type: 'status', status: record as SidecarStatus };
  } catch (err) {
    // Nothing above should throw; if something does (a pathological value), it is still one bad key.
    return invalid(key, [`cannot be read: ${err instanceof Error ? err.message : String(err)}`]);
  }
}
