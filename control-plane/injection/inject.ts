/**
 * Sidecar injection into one pod template: a pure function from a parsed Pod (or a workload's
 * `spec.template`) to an injected copy. The input is never modified.
 *
 * What it adds (see docs/kubernetes.md): the `remora-init` init container (iptables), the sidecar
 * (a native sidecar, i.e. an init container with restartPolicy Always, or in classic mode the first
 * app container with a postStart hook that holds the app until the proxy is up), two volumes (a
 * projected service-account token for the mesh CA and the `remora-roots` ConfigMap) and annotations.
 *
 * Anything it does not understand is left alone with a reason: injection must never be the
 * reason a pod does not start.
 */
import { DNS_LABEL } from '../../lib/validate.js';
import type { InjectOptions } from './options.js';

export type JsonObject = { [key: string]: unknown };

export const SIDECAR_CONTAINER = 'remora-sidecar';
export const INIT_CONTAINER = 'remora-init';
export const TOKEN_VOLUME = 'remora-token';
export const ROOTS_VOLUME = 'remora-roots';
export const ROOTS_CONFIGMAP = 'remora-roots';
export const TOKEN_AUDIENCE = 'remora-ca';
export const TOKEN_DIR = '/var/run/secrets/remora';
export const ROOTS_DIR = '/var/run/remora/roots';

export const ANNOTATIONS = Object.freeze({
  inject: 'remora.io/inject',
  injected: 'remora.io/injected',
  service: 'remora.io/service',
  appPort: 'remora.io/app-port',
  excludeInboundPorts: 'remora.io/exclude-inbound-ports',
  excludeOutboundPorts: 'remora.io/exclude-outbound-ports',
  excludeOutboundIps: 'remora.io/exclude-outbound-ips',
  proxyCpu: 'remora.io/proxy-cpu',
  proxyMemory: 'remora.io/proxy-memory',
  proxyCpuLimit: 'remora.io/proxy-cpu-limit',
  proxyMemoryLimit: 'remora.io/proxy-memory-limit',
});

/** Ports the sidecar listens on in the pod's network namespace; an app using one cannot be injected. */
export const PROXY_PORTS: readonly number[] = Object.freeze([15000, 15001, 15006, 15020]);
export const OUTBOUND_PORT = 15001;
export const INBOUND_PORT = 15006;
export const STATS_PORT = 15020;
/** Never redirected inbound: the sidecar's health/metrics port and Istio's habitual health port. */
const ALWAYS_EXCLUDED_INBOUND = [STATS_PORT, 15021];

/**
 * injected: changed, see `template`. already-injected / opted-out / not-applicable: left alone on
 * purpose. invalid: left alone because something about the pod (or its annotations) is wrong; the
 * webhook turns these into warnings the user sees.
 */
export type InjectStatus = 'injected' | 'already-injected' | 'opted-out' | 'not-applicable' | 'invalid';

export interface PodInjection {
  readonly status: InjectStatus;
  readonly changed: boolean;
  readonly reason: string;
  /** The injected copy when changed; otherwise the input itself. */
  readonly template: unknown;
}

export interface PodContext {
  /** The workload's name: the service name when the pod has neither `app` label nor annotation. */
  readonly workloadName?: string;
}

class Skip extends Error {
  constructor(readonly status: Exclude<InjectStatus, 'injected'>, reason: string) {
    super(reason);
  }
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function objectAt(parent: JsonObject, key: string, where: string): JsonObject | undefined {
  const v = parent[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new Skip('invalid', `${where}.${key} is not an object`);
  return v;
}

function stringMap(parent: JsonObject | undefined, key: string, where: string): Record<string, string> {
  if (!parent) return {};
  const m = objectAt(parent, key, where);
  if (!m) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) {
    if (typeof v !== 'string') throw new Skip('invalid', `${where}.${key}[${JSON.stringify(k)}] is not a string`);
    out[k] = v;
  }
  return out;
}

function containerList(spec: JsonObject, key: 'containers' | 'initContainers'): JsonObject[] {
  const v = spec[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Skip('invalid', `spec.${key} is not a list`);
  v.forEach((c, i) => {
    if (!isObject(c) || typeof c.name !== 'string' || c.name === '') throw new Skip('invalid', `spec.${key}[${i}] is not a container with a name`);
  });
  return v as JsonObject[];
}

function portsOf(c: JsonObject): JsonObject[] {
  const ports = c.ports;
  if (ports === undefined || ports === null) return [];
  if (!Array.isArray(ports) || !ports.every(isObject)) throw new Skip('invalid', `container ${String(c.name)}: ports is not a list of objects`);
  return ports;
}

function portList(value: string, annotation: string): number[] {
  const parts = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return parts.map((p) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || n < 1 || n > 65535) throw new Skip('invalid', `annotation ${annotation}=${JSON.stringify(value)} is not a comma-separated list of ports`);
    return n;
  });
}

const IP_OR_CIDR = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)(\/\d{1,3})?$/;

function ipList(value: string, annotation: string): string[] {
  const parts = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const p of parts) {
    if (!IP_OR_CIDR.test(p)) throw new Skip('invalid', `annotation ${annotation}=${JSON.stringify(value)} is not a comma-separated list of IP addresses or CIDRs`);
  }
  return parts;
}

const SUFFIX: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };

/** A Kubernetes quantity ("100m", "64Mi", "0.5") as a number, or a Skip naming the annotation. */
function quantity(value: string, annotation: string): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(value.trim());
  if (!m) throw new Skip('invalid', `annotation ${annotation}=${JSON.stringify(value)} is not a Kubernetes quantity (e.g. 100m, 128Mi)`);
  return Number(m[1]) * SUFFIX[m[2] ?? '']!;
}

function resources(ann: Record<string, string>): JsonObject {
  const cpu = ann[ANNOTATIONS.proxyCpu]?.trim() || '100m';
  const memory = ann[ANNOTATIONS.proxyMemory]?.trim() || '64Mi';
  const cpuLimit = ann[ANNOTATIONS.proxyCpuLimit]?.trim();
  let memoryLimit = ann[ANNOTATIONS.proxyMemoryLimit]?.trim();
  const memRequest = quantity(memory, ANNOTATIONS.proxyMemory);
  const cpuRequest = quantity(cpu, ANNOTATIONS.proxyCpu);
  if (memoryLimit === undefined || memoryLimit === '') {
    // 256Mi, or the request if that is larger: a limit below the request is rejected by the API server.
    memoryLimit = memRequest > 256 * 2 ** 20 ? memory : '256Mi';
  } else if (quantity(memoryLimit, ANNOTATIONS.proxyMemoryLimit) < memRequest) {
    throw new Skip('invalid', `annotation ${ANNOTATIONS.proxyMemoryLimit}=${memoryLimit} is below the memory request ${memory}`);
  }
  if (cpuLimit && quantity(cpuLimit, ANNOTATIONS.proxyCpuLimit) < cpuRequest) {
    throw new Skip('invalid', `annotation ${ANNOTATIONS.proxyCpuLimit}=${cpuLimit} is below the cpu request ${cpu}`);
  }
  return { requests: { cpu, memory }, limits: { ...(cpuLimit ? { cpu: cpuLimit } : {}), memory: memoryLimit } };
}

function serviceName(labels: Record<string, string>, ann: Record<string, string>, ctx: PodContext): string {
  const candidates: [string, string | undefined][] = [
    [`annotation ${ANNOTATIONS.service}`, ann[ANNOTATIONS.service]],
    ['label app', labels.app],
    ['label app.kubernetes.io/name', labels['app.kubernetes.io/name']],
    ['workload name', ctx.workloadName],
  ];
  for (const [source, value] of candidates) {
    if (value === undefined || value === '') continue;
    if (!DNS_LABEL.test(value) || value.length > 63) throw new Skip('invalid', `service name ${JSON.stringify(value)} (from ${source}) is not a lower-case DNS label`);
    return value;
  }
  throw new Skip('invalid', `no service name: set the label app or the annotation ${ANNOTATIONS.service}`);
}

function appPort(containers: JsonObject[], ann: Record<string, string>): number | undefined {
  const fromAnnotation = ann[ANNOTATIONS.appPort];
  if (fromAnnotation !== undefined) {
    const n = Number(fromAnnotation);
    if (!/^\d+$/.test(fromAnnotation.trim()) || n < 1 || n > 65535) throw new Skip('invalid', `annotation ${ANNOTATIONS.appPort}=${JSON.stringify(fromAnnotation)} is not a port`);
    return n;
  }
  const first = containers[0];
  const port = first ? portsOf(first)[0]?.containerPort : undefined;
  return typeof port === 'number' && Number.isInteger(port) ? port : undefined;
}

function env(name: string, value: string): JsonObject {
  return { name, value };
}

function fieldEnv(name: string, fieldPath: string): JsonObject {
  return { name, valueFrom: { fieldRef: { fieldPath } } };
}

function probe(path: string, periodSeconds: number, failureThreshold: number): JsonObject {
  return { httpGet: { path, port: STATS_PORT }, periodSeconds, timeoutSeconds: 3, failureThreshold };
}

interface Plan {
  readonly service: string;
  readonly serviceAccount: string;
  readonly appPort: number | undefined;
  readonly version: string | undefined;
  readonly resources: JsonObject;
  readonly excludeInbound: number[];
  readonly excludeOutboundPorts: number[];
  readonly excludeOutboundIps: string[];
}

function initContainer(plan: Plan, opts: InjectOptions): JsonObject {
  const command = [
    'remora', 'init-iptables',
    '--proxy-uid', String(opts.proxyUid),
    '--outbound-port', String(OUTBOUND_PORT),
    '--inbound-port', String(INBOUND_PORT),
    '--exclude-inbound-ports', [...new Set(plan.excludeInbound)].join(','),
  ];
  if (plan.excludeOutboundPorts.length > 0) command.push('--exclude-outbound-ports', [...new Set(plan.excludeOutboundPorts)].join(','));
  if (plan.excludeOutboundIps.length > 0) command.push('--exclude-outbound-ips', plan.excludeOutboundIps.join(','));
  return {
    name: INIT_CONTAINER,
    image: opts.image,
    command,
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    securityContext: {
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      runAsUser: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
    },
  };
}

function sidecarContainer(plan: Plan, opts: InjectOptions): JsonObject {
  const envs: JsonObject[] = [
    env('REMORA_SERVICE', plan.service),
    fieldEnv('REMORA_NAMESPACE', 'metadata.namespace'),
    env('REMORA_SERVICE_ACCOUNT', plan.serviceAccount),
    fieldEnv('REMORA_INSTANCE_ID', 'metadata.name'),
    fieldEnv('REMORA_ADVERTISE_ADDRESS', 'status.podIP'),
    ...(plan.appPort !== undefined ? [env('REMORA_APP_PORT', String(plan.appPort))] : []),
    ...(plan.version !== undefined ? [env('REMORA_LABELS', `version=${plan.version}`)] : []),
    env('REMORA_CONTROL_PLANE', opts.controlPlane),
    env('REMORA_CONTROL_PLANE_CA_FILE', `${ROOTS_DIR}/roots.pem`),
    env('REMORA_CA_TOKEN_FILE', `${TOKEN_DIR}/token`),
    env('REMORA_INBOUND_ADDRESS', '0.0.0.0'),
    env('REMORA_STATS_ADDRESS', '0.0.0.0'),
  ];
  const c: JsonObject = {
    name: SIDECAR_CONTAINER,
    image: opts.image,
    args: ['sidecar'],
    env: envs,
    ports: [
      { name: 'remora-inbound', containerPort: INBOUND_PORT, protocol: 'TCP' },
      { name: 'remora-stats', containerPort: STATS_PORT, protocol: 'TCP' },
    ],
    resources: plan.resources,
    securityContext: {
      runAsUser: opts.proxyUid,
      runAsGroup: opts.proxyUid,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
    // The startup probe asks only for a live process: readiness also needs the app to answer, and
    // in native mode the app starts only once this probe passes.
    startupProbe: probe('/healthz/live', 1, 60),
    livenessProbe: probe('/healthz/live', 10, 3),
    readinessProbe: probe('/healthz/ready', 2, 3),
    volumeMounts: [
      { name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true },
      { name: ROOTS_VOLUME, mountPath: ROOTS_DIR, readOnly: true },
    ],
  };
  if (opts.mode === 'native') {
    c.restartPolicy = 'Always';
  } else {
    // Kubernetes starts containers in order and waits for a postStart hook before starting the
    // next one: the app (after us) starts once the proxy is up.
    c.lifecycle = { postStart: { exec: { command: ['remora', 'wait-ready', '--port', String(STATS_PORT), '--timeout-s', '60'] } } };
  }
  return c;
}

function volumes(): JsonObject[] {
  return [
    {
      name: TOKEN_VOLUME,
      projected: { sources: [{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: 3600, path: 'token' } }] },
    },
    { name: ROOTS_VOLUME, configMap: { name: ROOTS_CONFIGMAP } },
  ];
}

function plan(template: JsonObject, ctx: PodContext): { plan: Plan; spec: JsonObject; annotations: Record<string, string> } {
  const metadata = objectAt(template, 'metadata', 'pod');
  const labels = stringMap(metadata, 'labels', 'metadata');
  const annotations = stringMap(metadata, 'annotations', 'metadata');
  const spec = objectAt(template, 'spec', 'pod');
  if (!spec) throw new Skip('invalid', 'pod has no spec');
  const containers = containerList(spec, 'containers');
  const inits = containerList(spec, 'initContainers');

  const names = [...containers, ...inits].map((c) => c.name);
  if (annotations[ANNOTATIONS.injected] !== undefined) throw new Skip('already-injected', `already injected (${ANNOTATIONS.injected}=${annotations[ANNOTATIONS.injected]})`);
  if (names.includes(SIDECAR_CONTAINER) || names.includes(INIT_CONTAINER)) throw new Skip('already-injected', `already injected (has a container named ${names.includes(SIDECAR_CONTAINER) ? SIDECAR_CONTAINER : INIT_CONTAINER})`);
  if (annotations[ANNOTATIONS.inject] === 'false') throw new Skip('opted-out', `annotation ${ANNOTATIONS.inject}=false`);
  if (labels[ANNOTATIONS.inject] === 'false') throw new Skip('opted-out', `label ${ANNOTATIONS.inject}=false`);
  if (spec.hostNetwork === true) throw new Skip('not-applicable', 'hostNetwork pod: its iptables rules would be the node\'s');
  if (containers.length === 0) throw new Skip('invalid', 'pod has no containers');
  for (const c of [...inits, ...containers]) {
    for (const p of portsOf(c)) {
      if (typeof p.containerPort === 'number' && PROXY_PORTS.includes(p.containerPort)) {
        throw new Skip('invalid', `container ${String(c.name)} uses port ${p.containerPort}, which the sidecar needs (${PROXY_PORTS.join(', ')})`);
      }
    }
  }
  const vols = spec.volumes;
  if (vols !== undefined && vols !== null) {
    if (!Array.isArray(vols)) throw new Skip('invalid', 'spec.volumes is not a list');
    for (const v of vols) {
      if (isObject(v) && (v.name === TOKEN_VOLUME || v.name === ROOTS_VOLUME)) throw new Skip('invalid', `a volume named ${String(v.name)} already exists`);
    }
  }
  if (spec.serviceAccountName !== undefined && typeof spec.serviceAccountName !== 'string') throw new Skip('invalid', 'spec.serviceAccountName is not a string');
  const serviceAccount = (spec.serviceAccountName as string | undefined) || (typeof spec.serviceAccount === 'string' ? spec.serviceAccount : '') || 'default';
  const version = labels.version !== undefined && /^[A-Za-z0-9._-]{1,63}$/.test(labels.version) ? labels.version : undefined;
  return {
    spec,
    annotations,
    plan: {
      service: serviceName(labels, annotations, ctx),
      serviceAccount,
      appPort: appPort(containers, annotations),
      version,
      resources: resources(annotations),
      excludeInbound: [...ALWAYS_EXCLUDED_INBOUND, ...portList(annotations[ANNOTATIONS.excludeInboundPorts] ?? '', ANNOTATIONS.excludeInboundPorts)],
      excludeOutboundPorts: portList(annotations[ANNOTATIONS.excludeOutboundPorts] ?? '', ANNOTATIONS.excludeOutboundPorts),
      excludeOutboundIps: ipList(annotations[ANNOTATIONS.excludeOutboundIps] ?? '', ANNOTATIONS.excludeOutboundIps),
    },
  };
}

/**
 * Injects the sidecar into a Pod or a pod template (anything with `metadata` and `spec.containers`).
 * Returns a new object when it injects; the input is never modified. Idempotent: an injected
 * template comes back unchanged with status `already-injected`.
 */
export function injectPod(template: unknown, opts: InjectOptions, ctx: PodContext = {}): PodInjection {
  if (!isObject(template)) return { status: 'invalid', changed: false, reason: 'pod is not an object', template };
  let p: ReturnType<typeof plan>;
  try {
    p = plan(template, ctx);
  } catch (err) {
    if (err instanceof Skip) return { status: err.status, changed: false, reason: err.message, template };
    throw err;
  }
  const out = structuredClone(template);
  const metadata = isObject(out.metadata) ? out.metadata : (out.metadata = {});
  const annotations = isObject(metadata.annotations) ? metadata.annotations : (metadata.annotations = {});
  const spec = out.spec as JsonObject;
  const containers = spec.containers as JsonObject[];
  const inits = Array.isArray(spec.initContainers) ? (spec.initContainers as JsonObject[]) : [];
  const appContainer = containers[0]!.name as string;

  const sidecar = sidecarContainer(p.plan, opts);
  if (opts.mode === 'native') {
    // remora-init first (rules in place), then the proxy, then the user's init containers, which
    // therefore already have a working mesh.
    spec.initContainers = [initContainer(p.plan, opts), sidecar, ...inits];
  } else {
    spec.initContainers = [initContainer(p.plan, opts), ...inits];
    spec.containers = [sidecar, ...containers];
  }
  spec.volumes = [...(Array.isArray(spec.volumes) ? spec.volumes : []), ...volumes()];

  annotations[ANNOTATIONS.injected] = opts.version;
  // Never take over an app's own Prometheus annotations.
  if (annotations['prometheus.io/scrape'] === undefined && annotations['prometheus.io/port'] === undefined && annotations['prometheus.io/path'] === undefined) {
    annotations['prometheus.io/scrape'] = 'true';
    annotations['prometheus.io/port'] = String(STATS_PORT);
    annotations['prometheus.io/path'] = '/metrics';
  }
  // kubectl logs/exec default to the app, not to the sidecar (first in classic mode).
  if (annotations['kubectl.kubernetes.io/default-container'] === undefined) annotations['kubectl.kubernetes.io/default-container'] = appContainer;
  return { status: 'injected', changed: true, reason: 'injected', template: out };
}
