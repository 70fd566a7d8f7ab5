/**
 * Checks for what the control plane itself writes on its lease: instance registrations and sidecar
 * status. They are validated on write (a sidecar's Hello is untrusted input) and on read (etcd may
 * hold anything someone typed into etcdctl).
 */
import { Checker, deepFreeze } from '../../lib/validate.js';
import { at, dnsLabel, FieldChecker, rootObject, text } from './fields.js';
import type { InstanceRecord, SidecarStatus } from './types.js';

/** Instance ids become an etcd key segment: no "/", nothing that needs quoting in a shell. */
export const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;
const INSTANCE_HINT = 'letters, digits, . _ : -, at most 253 characters';

function identity(c: Checker, o: Record<string, unknown>, path: string) {
  const service = dnsLabel(c, o.service, at(path, 'service'));
  const namespace = dnsLabel(c, o.namespace, at(path, 'namespace'));
  const instanceId = c.string(o.instanceId, at(path, 'instanceId'), INSTANCE_ID, INSTANCE_HINT);
  return { service, namespace, instanceId };
}

export function checkInstanceRecord(c: Checker, v: unknown): InstanceRecord | undefined {
  const path = '';
  const o = rootObject(c, v, 'an instance record');
  if (!o) return undefined;
  c.known(o, path, ['service', 'namespace', 'instanceId', 'address', 'port', 'zone', 'labels', 'serviceAccount', 'health', 'controlPlane']);
  const { service, namespace, instanceId } = identity(c, o, path);
  const address = c.string(o.address, at(path, 'address'));
  const port = c.int(o.port, at(path, 'port'), 1, 65535);
  const zone = text(c, o.zone, at(path, 'zone'), '');
  const labels = c.labels(o.labels, at(path, 'labels'));
  const serviceAccount = text(c, o.serviceAccount, at(path, 'serviceAccount'), 'default');
  const health = c.oneOf(o.health, at(path, 'health'), ['SERVING', 'NOT_SERVING'] as const, 'SERVING');
  const controlPlane = text(c, o.controlPlane, at(path, 'controlPlane'), '');
  if (
    service === undefined || namespace === undefined || instanceId === undefined || address === undefined ||
    port === undefined || zone === undefined || serviceAccount === undefined || health === undefined || controlPlane === undefined
  ) return undefined;
  return deepFreeze({ service, namespace, instanceId, address, port, zone, labels, serviceAccount, health, controlPlane });
}

function nack(c: Checker, v: unknown, path: string): SidecarStatus['lastNack'] | undefined {
  if (v === null || v === undefined) return null;
  const o = c.object(v, path);
  if (!o) return undefined;
  c.known(o, path, ['version', 'at', 'errors']);
  const version = text(c, o.version, at(path, 'version'));
  const when = text(c, o.at, at(path, 'at'));
  const errors = (c.array(o.errors, at(path, 'errors')) ?? []).map((e, i) => text(c, e, `${at(path, 'errors')}[${i}]`));
  if (version === undefined || when === undefined || errors.some((e) => e === undefined)) return undefined;
  return { version, at: when, errors: errors as string[] };
}

export function checkSidecarStatus(c: Checker, v: unknown): SidecarStatus | undefined {
  const path = '';
  const o = rootObject(c, v, 'a sidecar status');
  if (!o) return undefined;
  c.known(o, path, ['service', 'namespace', 'instanceId', 'controlPlane', 'connectedAt', 'appliedVersion', 'lastNack']);
  const { service, namespace, instanceId } = identity(c, o, path);
  const controlPlane = text(c, o.controlPlane, at(path, 'controlPlane'), '');
  const connectedAt = text(c, o.connectedAt, at(path, 'connectedAt'), '');
  const appliedVersion = text(c, o.appliedVersion, at(path, 'appliedVersion'), '');
  const lastNack = nack(c, o.lastNack, at(path, 'lastNack'));
  if (
    service === undefined || namespace === undefined || instanceId === undefined || controlPlane === undefined ||
    connectedAt === undefined || appliedVersion === undefined || lastNack === undefined
  ) return undefined;
  return deepFreeze({ service, namespace, instanceId, controlPlane, connectedAt, appliedVersion, lastNack });
}

export function instanceProblems(v: unknown): string[] {
  const c = new FieldChecker();
  checkInstanceRecord(c, v);
  return c.problems;
}

export function statusProblems(v: unknown): string[] {
  const c = new FieldChecker();
  checkSidecarStatus(c, v);
  return c.problems;
}
