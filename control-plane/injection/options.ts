/**
 * What sidecar injection needs to know besides the pod: the image, the mode, where the control
 * plane is. Validated once, then frozen (both the CLI and the webhook build one at start-up).
 */
export type InjectMode = 'native' | 'classic';

export interface InjectOptions {
  /** Image of the sidecar and of the remora-init container; its entrypoint is `remora`. */
  readonly image: string;
  /** native: an init container with restartPolicy Always (Kubernetes 1.29+); classic: first app container. */
  readonly mode: InjectMode;
  /** host:port of the control plane's TLS discovery port, as seen from pods. */
  readonly controlPlane: string;
  /** uid the sidecar runs as; remora-init exempts its traffic from redirection. */
  readonly proxyUid: number;
  /** Written to the pod annotation remora.io/injected. */
  readonly version: string;
}

export const DEFAULT_INJECT_OPTIONS: InjectOptions = Object.freeze({
  image: 'localhost/remora:local',
  mode: 'native',
  controlPlane: 'remora-control-plane.remora-system.svc:15012',
  proxyUid: 1337,
  version: 'dev',
});

export class InjectOptionsError extends Error {
  readonly code = 'REMORA_INJECT_OPTIONS';
  constructor(message: string) {
    super(message);
    this.name = 'InjectOptionsError';
  }
}

/** Defaults filled in, checked, frozen. Throws InjectOptionsError naming the bad option. */
export function injectOptions(partial: Partial<InjectOptions> = {}): InjectOptions {
  const o: InjectOptions = { ...DEFAULT_INJECT_OPTIONS, ...stripUndefined(partial) };
  if (typeof o.image !== 'string' || o.image.trim() === '' || /\s/.test(o.image)) throw new InjectOptionsError(`image must be an image reference without spaces, got ${JSON.stringify(o.image)}`);
  if (o.mode !== 'native' && o.mode !== 'classic') throw new InjectOptionsError(`mode must be native or classic, got ${JSON.stringify(o.mode)}`);
  if (typeof o.controlPlane !== 'string' || !/^[^\s:]+:\d{1,5}$/.test(o.controlPlane)) throw new InjectOptionsError(`control plane must be host:port, got ${JSON.stringify(o.controlPlane)}`);
  if (!Number.isInteger(o.proxyUid) || o.proxyUid <= 0 || o.proxyUid > 2 ** 31 - 1) throw new InjectOptionsError(`proxy uid must be a positive integer (not root), got ${JSON.stringify(o.proxyUid)}`);
  if (typeof o.version !== 'string' || o.version === '') throw new InjectOptionsError('version must be a non-empty string');
  return Object.freeze(o);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
