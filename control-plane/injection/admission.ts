/**
 * The mutating admission webhook's logic: an `admission.k8s.io/v1` AdmissionReview of a Pod in,
 * the AdmissionReview response out, with an RFC 6902 JSON Patch when the pod gets a sidecar.
 *
 * Pods are always allowed: a pod this code does not understand is admitted as it is (with a
 * warning the user sees in kubectl) rather than blocked. Only a body that is not an AdmissionReview
 * at all is an error (HTTP 400; the webhook's failurePolicy decides what the API server does).
 */
import { injectPod, type InjectStatus } from './inject.js';
import { jsonPatch } from './json-patch.js';
import type { InjectOptions } from './options.js';

export class BadAdmissionRequest extends Error {
  readonly code = 'REMORA_BAD_ADMISSION_REQUEST';
  readonly httpStatus = 400;
  constructor(message: string) {
    super(message);
    this.name = 'BadAdmissionRequest';
  }
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: true;
  readonly patchType?: 'JSONPatch';
  /** base64 of the JSON Patch. */
  readonly patch?: string;
  readonly warnings?: string[];
}

export interface AdmissionReviewResponse {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

export interface AdmissionOutcome {
  readonly review: AdmissionReviewResponse;
  readonly injected: boolean;
  /** injected, or why not (for the webhook's log). */
  readonly status: InjectStatus | 'ignored';
  readonly reason: string;
  /** What the pod is called in logs: namespace/name (generateName* for pods not yet named). */
  readonly pod: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Kubernetes shows warnings to users; keep them short (it truncates long ones). */
function warning(reason: string): string {
  const w = `remora: sidecar not injected: ${reason}`;
  return w.length > 240 ? `${w.slice(0, 237)}...` : w;
}

/**
 * Answers one AdmissionReview. Throws BadAdmissionRequest when `body` is not an
 * admission.k8s.io/v1 AdmissionReview with a request uid.
 */
export function handleAdmissionReview(body: unknown, opts: InjectOptions): AdmissionOutcome {
  if (!isObject(body) || body.kind !== 'AdmissionReview') throw new BadAdmissionRequest('expected an AdmissionReview');
  if (body.apiVersion !== 'admission.k8s.io/v1') throw new BadAdmissionRequest(`expected apiVersion admission.k8s.io/v1, got ${JSON.stringify(body.apiVersion)} (set admissionReviewVersions: [v1])`);
  const request = body.request;
  if (!isObject(request)) throw new BadAdmissionRequest('AdmissionReview has no request');
  const uid = str(request.uid);
  if (!uid) throw new BadAdmissionRequest('AdmissionReview request has no uid');

  const object = request.object;
  const md = isObject(object) && isObject(object.metadata) ? object.metadata : {};
  const namespace = str(request.namespace) ?? str(md.namespace) ?? '';
  const name = str(md.name) ?? str(request.name) ?? (str(md.generateName) ? `${str(md.generateName)}*` : '<unnamed>');
  const pod = namespace ? `${namespace}/${name}` : name;
  const allow = (status: AdmissionOutcome['status'], reason: string, warn: boolean): AdmissionOutcome => ({
    review: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true, ...(warn ? { warnings: [warning(reason)] } : {}) } },
    injected: false,
    status,
    reason,
    pod,
  });

  const kind = isObject(request.kind) ? request.kind : {};
  if (kind.kind !== 'Pod' || (kind.group ?? '') !== '') return allow('ignored', `not a Pod (${String(kind.kind)})`, false);
  if (request.operation !== 'CREATE') return allow('ignored', `operation ${String(request.operation)}, not CREATE`, false);
  if (str(request.subResource)) return allow('ignored', `subresource ${String(request.subResource)}`, false);
  if (!isObject(object)) return allow('invalid', 'the request carries no pod object', true);

  const r = injectPod(object, opts);
  if (!r.changed) return allow(r.status, r.reason, r.status === 'invalid');
  const patch = jsonPatch(object, r.template);
  return {
    review: {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') },
    },
    injected: true,
    status: 'injected',
    reason: 'injected',
    pod,
  };
}
