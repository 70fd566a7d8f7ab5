/**
 * Finding the pod template inside a Kubernetes object: a Pod is its own template, workloads keep
 * theirs at spec.template (CronJob: spec.jobTemplate.spec.template), a List holds items.
 * Anything else passes through unchanged.
 */
import { injectPod, type InjectStatus, type JsonObject } from './inject.js';
import type { InjectOptions } from './options.js';

/** Path from the object to its pod template, by kind. */
const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
});

export type ObjectStatus = InjectStatus | 'not-a-pod-template';

export interface ObjectResult {
  /** As written in the object (Deployment, Pod, ...); '' when it has none. */
  readonly kind: string;
  readonly name: string;
  readonly injected: boolean;
  readonly status: ObjectStatus;
  readonly reason: string;
  /** Something the user should know about an injected object. */
  readonly note?: string;
}

export interface ObjectInjection {
  /** A new object when anything was injected, else the input itself. */
  readonly object: unknown;
  readonly changed: boolean;
  /** One per object: one for a plain object, one per item of a List. */
  readonly results: ObjectResult[];
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nameOf(obj: JsonObject): string {
  const md = obj.metadata;
  if (isObject(md)) {
    if (typeof md.name === 'string' && md.name !== '') return md.name;
    if (typeof md.generateName === 'string' && md.generateName !== '') return `${md.generateName}*`;
  }
  return '<unnamed>';
}

/** Injects the pod template of one object (or of each item of a List). */
export function injectObject(obj: unknown, opts: InjectOptions): ObjectInjection {
  if (!isObject(obj)) return { object: obj, changed: false, results: [{ kind: '', name: '<not an object>', injected: false, status: 'not-a-pod-template', reason: 'not a Kubernetes object' }] };
  const kind = typeof obj.kind === 'string' ? obj.kind : '';
  const name = nameOf(obj);
  if (kind.endsWith('List') && Array.isArray(obj.items)) {
    const items = obj.items.map((item) => injectObject(item, opts));
    const changed = items.some((i) => i.changed);
    return {
      object: changed ? { ...obj, items: items.map((i) => i.object) } : obj,
      changed,
      results: items.flatMap((i) => i.results),
    };
  }
  const path = TEMPLATE_PATHS[kind];
  if (!path) return { object: obj, changed: false, results: [{ kind, name, injected: false, status: 'not-a-pod-template', reason: 'not a pod template' }] };

  let holder: unknown = obj;
  for (const key of path) holder = isObject(holder) ? holder[key] : undefined;
  if (holder === undefined) return { object: obj, changed: false, results: [{ kind, name, injected: false, status: 'invalid', reason: `no ${path.join('.')}` }] };
  const r = injectPod(holder, opts, kind === 'Pod' ? {} : { workloadName: name.endsWith('*') ? undefined : name });
  if (!r.changed) return { object: obj, changed: false, results: [{ kind, name, injected: false, status: r.status, reason: r.reason }] };

  // Rebuild the path down to the template with shallow copies: the input stays untouched.
  const rebuild = (node: JsonObject, i: number): JsonObject => (i === path.length ? (r.template as JsonObject) : { ...node, [path[i]!]: rebuild(node[path[i]!] as JsonObject, i + 1) });
  const note = opts.mode === 'classic' && (kind === 'Job' || kind === 'CronJob')
    ? 'a classic sidecar keeps running after the job\'s container exits, so the Job never completes; use --mode native'
    : undefined;
  return { object: rebuild(obj, 0), changed: true, results: [{ kind, name, injected: true, status: 'injected', reason: 'injected', ...(note ? { note } : {}) }] };
}
